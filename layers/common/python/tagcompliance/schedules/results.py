"""Schedules as the tools return them, and the runs a tick fired."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from tagcompliance.store import ScheduledAuditRecord

from .definitions import DeliveryFormat, ScheduleStatus, ScheduleType
from .recipients import mask_recipient
from .timing import canonical_timezone, describe_schedule


class ScheduleResult(BaseModel):
    """One scheduled audit as the tools return it."""

    schedule_id: str
    status: ScheduleStatus
    schedule: ScheduleType
    description: str
    time: str | None
    day_of_week: str | None
    day_of_month: int | None
    cron_expression: str | None
    timezone: str
    next_run: datetime | None = Field(
        description="The next run in the schedule's time zone, with its UTC offset; null unless active."
    )
    next_run_utc: datetime | None = Field(description="The same instant in UTC; null unless active.")
    resource_types: list[str]
    regions: list[str] = Field(description="Empty: the server's default regions when the audit runs.")
    recipients: list[str] = Field(description="Slack webhook secrets are masked.")
    format: DeliveryFormat
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_run: datetime | None
    last_run_status: str | None
    last_snapshot_id: str | None
    last_error: str | None
    external_id: str | None = Field(description="The EventBridge Scheduler schedule ARN, when synced.")

    @classmethod
    def from_record(cls, record: ScheduledAuditRecord) -> ScheduleResult:
        active = record.status == "active"
        try:
            zone: tzinfo = ZoneInfo(canonical_timezone(record.timezone))
        except ValueError:  # a zone since removed from the tz database: still listable, shown in UTC
            zone = UTC
        shown = {  # what the tools show differently from the record
            "schedule": record.schedule_type,
            "description": describe_schedule(record),
            "next_run": record.next_run.astimezone(zone) if active else None,
            "next_run_utc": record.next_run.astimezone(UTC) if active else None,
            "recipients": [mask_recipient(item) for item in record.recipients],
        }
        stored = {
            name: getattr(record, name) for name in cls.model_fields.keys() - shown if hasattr(record, name)
        }
        return cls(**stored, **shown)


class ScheduleListResult(BaseModel):
    schedules: list[ScheduleResult]
    total: int


class FiredRun(BaseModel):
    """One run started by ``run_due_schedules``."""

    schedule_id: str
    scheduled_for: datetime = Field(description="The next_run that was due (UTC).")
    started_at: datetime
    next_run: datetime = Field(description="When the schedule runs next (UTC).")
    status: Literal["success", "error"]
    snapshot_id: str | None = None
    error: str | None = None

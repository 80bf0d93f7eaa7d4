"""What a user asks for (``ScheduleSpec``), validated and normalised, and how it maps onto a record."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tagcompliance.errors import InvalidInputError
from tagcompliance.resources import resolve_resource_types, validate_region_names
from tagcompliance.scope import MAX_REGIONS
from tagcompliance.store import ScheduledAuditRecord

from .cron import CronExpression
from .definitions import (
    DEFAULT_DAY_OF_MONTH,
    DEFAULT_DAY_OF_WEEK,
    MAX_RECIPIENTS,
    WEEKDAYS,
    DeliveryFormat,
    ScheduleType,
)
from .recipients import is_email, is_slack_webhook, recipient_as_shown
from .timing import WALL_CLOCK_TIME, canonical_timezone


def _describe_validation(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "value_error" and "error" in item.get("ctx", {}):
            message = str(item["ctx"]["error"])
        elif item["type"] == "extra_forbidden":
            message = "is not a schedule parameter"
        else:
            message = item["msg"]
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class ScheduleSpec(BaseModel):
    """What a user asks for; validated and normalised. Errors are InvalidInputError naming the field.

    ``resource_types`` is stored resolved ([] or ["all"] become every supported type, fixed at
    creation); ``regions`` [] means the server's default regions when the audit runs, ["all"] every
    enabled region then. ``format`` may be left out: it follows from the recipients.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    schedule: ScheduleType = Field(description="daily, weekly, monthly or cron.")
    time: str | None = Field(
        default=None, description="HH:MM on a 24-hour clock in `timezone`; not for cron schedules."
    )
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. America/New_York.")
    day_of_week: str | None = Field(
        default=None, description="Weekly schedules: monday..sunday (or mon..sun); default monday."
    )
    day_of_month: int | None = Field(
        default=None,
        ge=1,
        le=31,
        description="Monthly schedules: 1-31, default 1; a day the month lacks means its last day.",
    )
    cron_expression: str | None = Field(
        default=None, description="Cron schedules: minute hour day-of-month month day-of-week."
    )
    resource_types: list[str] = Field(
        default_factory=list, validate_default=True, description="Types to audit; empty = all."
    )
    regions: list[str] = Field(
        default_factory=list, description="Regions to audit; empty = the server's default regions."
    )
    recipients: list[str] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="Email addresses and/or Slack incoming-webhook URLs (https://hooks.slack.com/services/...).",
    )
    format: DeliveryFormat | None = Field(
        default=None, description="email, slack or both; inferred from the recipients when omitted."
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise InvalidInputError(f"invalid schedule: {_describe_validation(error)}") from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> ScheduleSpec:  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as error:
            raise InvalidInputError(f"invalid schedule: {_describe_validation(error)}") from None

    @classmethod
    def from_record(cls, record: ScheduledAuditRecord) -> ScheduleSpec:
        return cls(**spec_fields(record))

    @field_validator("schedule", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = WALL_CLOCK_TIME.fullmatch(value)
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"{value!r} is not a time as HH:MM on a 24-hour clock (e.g. '09:00', '17:30')")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return canonical_timezone(value)

    @field_validator("day_of_week")
    @classmethod
    def _check_day_of_week(cls, value: str | None) -> str | None:
        if value is None:
            return None
        lowered = value.lower()
        for name in WEEKDAYS:
            if lowered in (name, name[:3]):
                return name
        raise ValueError(f"{value!r} is not a day of the week (monday..sunday)")

    @field_validator("cron_expression")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return None if value is None else CronExpression.parse(value).text

    @field_validator("resource_types")
    @classmethod
    def _check_resource_types(cls, value: list[str]) -> list[str]:
        return resolve_resource_types(value)

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, value: list[str]) -> list[str]:
        if value == ["all"]:
            return value
        if "all" in value:
            raise ValueError('"all" cannot be combined with other regions')
        unique = validate_region_names(value)
        if len(unique) > MAX_REGIONS:
            raise ValueError(f"at most {MAX_REGIONS} regions, got {len(unique)}")
        return unique

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not (is_email(item) or is_slack_webhook(item))]
        if bad:
            shown = ", ".join(repr(recipient_as_shown(item)) for item in bad[:5])
            raise ValueError(
                f"neither an email address nor a Slack incoming-webhook URL "
                f"(https://hooks.slack.com/services/...): {shown}"
            )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_combination(self) -> ScheduleSpec:
        kind = self.schedule
        if kind == "cron":
            if self.cron_expression is None:
                raise ValueError("cron_expression: required for a cron schedule")
            for name in ("time", "day_of_week", "day_of_month"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: does not apply to a cron schedule (the expression says when)")
        else:
            if self.time is None:
                raise ValueError(f"time: required for a {kind} schedule (HH:MM, 24-hour)")
            if self.cron_expression is not None:
                raise ValueError(f"cron_expression: only for schedule 'cron', not '{kind}'")
        if kind == "weekly":
            self.day_of_week = self.day_of_week or DEFAULT_DAY_OF_WEEK
        elif self.day_of_week is not None:
            raise ValueError(f"day_of_week: only for weekly schedules, not '{kind}'")
        if kind == "monthly":
            self.day_of_month = self.day_of_month or DEFAULT_DAY_OF_MONTH
        elif self.day_of_month is not None:
            raise ValueError(f"day_of_month: only for monthly schedules, not '{kind}'")
        self.format = _check_format(self.format, self.recipients)
        return self


def _check_format(wanted: DeliveryFormat | None, recipients: Sequence[str]) -> DeliveryFormat:
    emails = sum(1 for item in recipients if is_email(item))
    webhooks = len(recipients) - emails
    if wanted is None:
        return "both" if emails and webhooks else "email" if emails else "slack"
    if wanted == "email" and webhooks:
        raise ValueError("format: 'email' but recipients include Slack webhook URLs; use format 'both'")
    if wanted == "slack" and emails:
        raise ValueError("format: 'slack' but recipients include email addresses; use format 'both'")
    if wanted == "both" and not (emails and webhooks):
        missing = "a Slack incoming-webhook URL" if emails else "an email address"
        raise ValueError(f"format: 'both' needs at least one email address and one webhook; add {missing}")
    return wanted


# A ScheduleSpec field stored under another name in ScheduledAuditRecord (the rest share theirs).
_STORED_AS = {"schedule": "schedule_type"}


def spec_fields(record: ScheduledAuditRecord) -> dict[str, Any]:
    """The ScheduleSpec arguments that describe a stored schedule (lists copied)."""
    return {
        name: copy.copy(getattr(record, _STORED_AS.get(name, name))) for name in ScheduleSpec.model_fields
    }


TIMING_FIELDS = ("schedule", "time", "timezone", "day_of_week", "day_of_month", "cron_expression")


def apply_spec(record: ScheduledAuditRecord, spec: ScheduleSpec) -> ScheduledAuditRecord:
    assert spec.format is not None  # set by validation
    return replace(
        record,
        **{_STORED_AS.get(name, name): copy.copy(getattr(spec, name)) for name in ScheduleSpec.model_fields},
    )

"""Keeping EventBridge Scheduler in step with the store, and recording the runs it started."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from tagcompliance.errors import TagComplianceError
from tagcompliance.store import ScheduledAuditRecord, Store

from .definitions import SCHEDULE_ID_PREFIX, SchedulerSyncError
from .eventbridge import FEBRUARY_SUFFIX, EventBridgeScheduler, aws_schedule_expressions
from .timing import aware_utc, next_run


class ScheduleSyncReport(BaseModel):
    """What ``reconcile_schedules`` changed in EventBridge Scheduler."""

    synced: list[str] = Field(description="Schedules created or updated from the store (active and paused).")
    deleted: list[str] = Field(description="Deleted schedules removed from EventBridge.")
    orphans_removed: list[str] = Field(
        description="EventBridge schedules with no scheduled audit behind them."
    )
    daily_snapshot: str | None = Field(default=None, description="The daily snapshot schedule's ARN.")
    errors: list[str] = Field(default_factory=list)


def reconcile_schedules(
    store: Store, backend: EventBridgeScheduler, daily_snapshot_time: str | None = None
) -> ScheduleSyncReport:
    """Bring EventBridge Scheduler in line with the ``scheduled_audits`` table (the source of truth).

    Every active or paused schedule is written (paused ones disabled); deleted ones and schedules
    of this product that the table does not know are removed; with ``daily_snapshot_time`` the daily
    snapshot schedule is kept at that time. A failure on one schedule is reported, the others go on.
    """
    report = ScheduleSyncReport(synced=[], deleted=[], orphans_removed=[])
    wanted: set[str] = set()
    for record in store.list_scheduled_audits():
        try:
            if record.status == "deleted":
                backend.delete(record)
                report.deleted.append(record.schedule_id)
                continue
            backend.update(record)
            wanted.update(record.schedule_id + suffix for suffix, _ in aws_schedule_expressions(record))
            report.synced.append(record.schedule_id)
        except (SchedulerSyncError, TagComplianceError) as error:
            wanted.update((record.schedule_id, record.schedule_id + FEBRUARY_SUFFIX))  # never delete on doubt
            report.errors.append(f"{record.schedule_id}: {error}")
    try:
        for name in backend.schedule_names():
            if name.startswith(SCHEDULE_ID_PREFIX) and name not in wanted:
                backend.delete_name(name)
                report.orphans_removed.append(name)
        if daily_snapshot_time:
            report.daily_snapshot = backend.put_daily_snapshot(daily_snapshot_time)
    except SchedulerSyncError as error:
        report.errors.append(str(error))
    return report


def record_external_run(
    store: Store,
    schedule_id: str,
    started_at: datetime,
    snapshot_id: str | None,
    error: str | None,
    early_tolerance: timedelta = timedelta(minutes=2),
) -> ScheduledAuditRecord | None:
    """A run that EventBridge Scheduler started has ended: move the schedule's next run past it and
    record its last run (time, status, snapshot, error). None for an unknown schedule.

    The same claim as the local loop, so a delivery seen twice moves ``next_run`` once.
    """
    started_at = aware_utc(started_at, "started_at")
    record = store.get_scheduled_audit(schedule_id)
    if record is None:
        return None
    if record.status == "active" and record.next_run <= started_at + early_tolerance:
        try:
            following = next_run(record, max(started_at, record.next_run))
        except TagComplianceError:
            following = started_at + timedelta(days=1)
        store.claim_scheduled_run(schedule_id, record.next_run, following, started_at)
    store.record_scheduled_run(schedule_id, started_at, snapshot_id, error)
    return store.get_scheduled_audit(schedule_id)

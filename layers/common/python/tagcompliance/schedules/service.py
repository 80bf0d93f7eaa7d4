"""The schedule service: create, read, update, pause, resume and delete, kept in step with EventBridge."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

from tagcompliance.errors import InvalidInputError, StoreError
from tagcompliance.store import ConcurrentUpdateError, ScheduledAuditRecord, Store

from .definitions import SCHEDULE_ID_PREFIX, UPDATE_ATTEMPTS, ScheduleNotFoundError
from .eventbridge import SchedulerBackend
from .results import ScheduleListResult, ScheduleResult
from .spec import TIMING_FIELDS, ScheduleSpec, apply_spec, spec_fields
from .timing import aware_utc, describe_schedule, next_run

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ScheduleService:
    """Create, read, change, pause, resume and delete scheduled audits.

    The store is the source of truth; a ``scheduler`` backend, when given, mirrors every change
    (create -> create, pause -> disabled, delete -> deleted). An AWS failure leaves the store as it
    was; a store failure after AWS changed is undone in AWS as far as possible.
    """

    LIST_STATUSES: ClassVar[tuple[str, ...]] = ("active", "paused", "deleted", "all")

    def __init__(
        self,
        store: Store,
        scheduler: SchedulerBackend | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self._clock = clock

    def create(self, spec: ScheduleSpec | Mapping[str, Any], created_by: str = "unknown") -> ScheduleResult:
        spec = spec if isinstance(spec, ScheduleSpec) else ScheduleSpec.model_validate(dict(spec))
        now = self._now()
        record = apply_spec(
            ScheduledAuditRecord(
                schedule_id=self._new_schedule_id(),
                schedule_type=spec.schedule,
                time=None,
                timezone=spec.timezone,
                recipients=[],
                format="email",
                next_run=next_run(spec, now),
                status="active",
                created_by=created_by or "unknown",
                created_at=now,
                updated_at=now,
            ),
            spec,
        )
        if self.scheduler is not None:
            record = replace(record, external_id=self.scheduler.create(record))
        try:
            stored = self.store.create_scheduled_audit(record)
        except BaseException:
            if self.scheduler is not None:
                self._undo(partial(self.scheduler.delete, record), record.schedule_id)
            raise
        logger.info("scheduled audit %s created: %s", stored.schedule_id, describe_schedule(stored))
        return ScheduleResult.from_record(stored)

    def get(self, schedule_id: str) -> ScheduleResult:
        return ScheduleResult.from_record(self._require(schedule_id))

    def list(self, status: str | None = None) -> ScheduleListResult:
        """Active and paused schedules by default; ``status`` one of active, paused, deleted, all."""
        if status is not None and status not in self.LIST_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(self.LIST_STATUSES)}, got {status!r}")
        if status is None:
            records = [record for record in self.store.list_scheduled_audits() if record.status != "deleted"]
        else:
            records = self.store.list_scheduled_audits(None if status == "all" else status)
        return ScheduleListResult(
            schedules=[ScheduleResult.from_record(r) for r in records], total=len(records)
        )

    def update(self, schedule_id: str, changes: Mapping[str, Any]) -> ScheduleResult:
        """Change some of the schedule's parameters (the ScheduleSpec fields); the rest stay.

        Changing the schedule type drops the old type's timing fields; changing recipients without
        a format infers the format again. The next run is recomputed when the timing changes.
        """
        changes = dict(changes)

        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted; create a new one")
            base = spec_fields(current)
            if changes.get("schedule", current.schedule_type) != current.schedule_type:
                for name in ("time", "day_of_week", "day_of_month", "cron_expression"):
                    base.pop(name)
            if "recipients" in changes and "format" not in changes:
                base.pop("format")
            spec = ScheduleSpec.model_validate({**base, **changes})
            updated = apply_spec(current, spec)
            before = spec_fields(current)
            timing_changed = any(getattr(spec, name) != before[name] for name in TIMING_FIELDS)
            if timing_changed and current.status == "active":
                updated = replace(updated, next_run=next_run(spec, now))
            return replace(updated, updated_at=now)

        return self._change(schedule_id, build)

    def pause(self, schedule_id: str) -> ScheduleResult:
        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted and cannot be paused")
            if current.status == "paused":
                return None
            return replace(current, status="paused", updated_at=now)

        return self._change(schedule_id, build)

    def resume(self, schedule_id: str) -> ScheduleResult:
        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted and cannot be resumed")
            if current.status == "active":
                return None
            # Runs missed while paused are not made up: the next one is after now.
            return replace(current, status="active", next_run=next_run(current, now), updated_at=now)

        return self._change(schedule_id, build)

    def delete(self, schedule_id: str) -> ScheduleResult:
        """Soft delete: the row stays (status deleted) for the record; it never runs again."""

        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                return None
            return replace(current, status="deleted", updated_at=now)

        return self._change(schedule_id, build)

    # --- internals ---------------------------------------------------------------------

    def _change(
        self,
        schedule_id: str,
        build: Callable[[ScheduledAuditRecord, datetime], ScheduledAuditRecord | None],
    ) -> ScheduleResult:
        for _ in range(UPDATE_ATTEMPTS):
            current = self._require(schedule_id)
            updated = build(current, self._now())
            if updated is None:
                return ScheduleResult.from_record(current)
            if self.scheduler is not None:
                external_id = self._sync(updated)
                updated = replace(updated, external_id=external_id or current.external_id)
            try:
                stored = self.store.update_scheduled_audit(updated)
            except ConcurrentUpdateError:
                continue  # a run was claimed or another edit landed: start again from the new row
            except BaseException:
                self._undo(partial(self._sync, current), schedule_id)
                raise
            logger.info("scheduled audit %s is now %s", schedule_id, stored.status)
            return ScheduleResult.from_record(stored)
        latest = self.store.get_scheduled_audit(schedule_id)
        if latest is not None and self.scheduler is not None:
            self._undo(partial(self._sync, latest), schedule_id)
        raise StoreError(f"schedule {schedule_id} kept changing while being updated; try again")

    def _sync(self, record: ScheduledAuditRecord) -> str | None:
        assert self.scheduler is not None
        if record.status == "deleted":
            self.scheduler.delete(record)
            return record.external_id
        return self.scheduler.update(record)

    def _undo(self, action: Callable[[], object], schedule_id: str) -> None:
        """Best effort: put EventBridge back in line with the store after the store refused a write."""
        try:
            action()
        except Exception:
            logger.exception("could not undo the EventBridge change to schedule %s", schedule_id)

    def _require(self, schedule_id: str) -> ScheduledAuditRecord:
        record = self.store.get_scheduled_audit(schedule_id) if isinstance(schedule_id, str) else None
        if record is None:
            raise ScheduleNotFoundError(
                f"no scheduled audit {schedule_id!r}; list them to see the ids ({SCHEDULE_ID_PREFIX}...)"
            )
        return record

    def _new_schedule_id(self) -> str:
        for _ in range(8):
            candidate = f"{SCHEDULE_ID_PREFIX}{secrets.token_hex(4)}"
            if self.store.get_scheduled_audit(candidate) is None:
                return candidate
        raise StoreError("could not find an unused schedule id")  # 8 collisions in 2**32: not by chance

    def _now(self) -> datetime:
        return aware_utc(self._clock(), "the clock's time")

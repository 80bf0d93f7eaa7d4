"""The SQL store's scheduled audits (``ScheduleStore``): rows of ``scheduled_audits`` and run claims."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from tagcompliance.errors import StoreError

from .base import ConcurrentUpdateError, ScheduledAuditRecord
from .sqlbase import SqlBase, Table, check_limit, utc

_SCHEDULED_AUDITS = Table(
    "scheduled_audits",
    ScheduledAuditRecord,
    {
        "time": "time",
        "recipients": "text_array",
        "next_run": "datetime",
        "created_at": "datetime",
        "updated_at": "datetime",
        "resource_types": "json",
        "regions": "json",
        "last_run": "datetime",
    },
)
# What update_scheduled_audit rewrites: every column but the key and the revision it checks.
_SCHEDULE_UPDATE_COLUMNS = tuple(
    (column, kind)
    for column, kind in _SCHEDULED_AUDITS.insert_kinds
    if column not in ("schedule_id", "revision")
)


class ScheduleSql(SqlBase):
    """``ScheduleStore`` over SQL."""

    def create_scheduled_audit(self, record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        record = replace(record, revision=0)
        row = self._encode(_SCHEDULED_AUDITS, record)
        with (
            self._errors(f"create scheduled audit {record.schedule_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, _SCHEDULED_AUDITS.insert_sql, row)
        return record

    def get_scheduled_audit(self, schedule_id: str) -> ScheduledAuditRecord | None:
        sql = f"{_SCHEDULED_AUDITS.select_sql} WHERE schedule_id = ?"
        with self._errors(f"read scheduled audit {schedule_id}"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (schedule_id,)).fetchone()
        return None if row is None else self._decode(_SCHEDULED_AUDITS, row)

    def list_scheduled_audits(self, status: str | None = None) -> list[ScheduledAuditRecord]:
        where = "" if status is None else " WHERE status = ?"
        params: tuple[Any, ...] = () if status is None else (status,)
        sql = f"{_SCHEDULED_AUDITS.select_sql}{where} ORDER BY created_at, schedule_id"
        with self._errors("list scheduled audits"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_SCHEDULED_AUDITS, row) for row in rows]

    def update_scheduled_audit(self, record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        assignments = ", ".join(f'"{column}" = ?' for column, _ in _SCHEDULE_UPDATE_COLUMNS)
        sql = (
            f"UPDATE scheduled_audits SET {assignments}, revision = revision + 1 "
            "WHERE schedule_id = ? AND revision = ?"
        )
        stored = replace(record, revision=record.revision + 1)
        params: list[Any] = [
            self._encode_value(kind, column, getattr(stored, column))
            for column, kind in _SCHEDULE_UPDATE_COLUMNS
        ]
        params += [record.schedule_id, record.revision]
        with (
            self._errors(f"update scheduled audit {record.schedule_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            if self._execute(conn, sql, params).rowcount == 1:
                return stored
            found = self._execute(
                conn, "SELECT revision FROM scheduled_audits WHERE schedule_id = ?", (record.schedule_id,)
            ).fetchone()
        if found is None:
            raise StoreError(f"scheduled audit {record.schedule_id} does not exist")
        raise ConcurrentUpdateError(
            f"scheduled audit {record.schedule_id} changed since it was read "
            f"(revision {found[0]}, not {record.revision}); read it again"
        )

    def due_scheduled_audits(self, now: datetime, limit: int = 100) -> list[ScheduledAuditRecord]:
        sql = (
            f"{_SCHEDULED_AUDITS.select_sql} WHERE status = 'active' AND next_run <= ? "
            "ORDER BY next_run, schedule_id LIMIT ?"
        )
        params = (self._dialect.encode_datetime(utc(now, "now")), check_limit(limit))
        with self._errors("list due scheduled audits"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_SCHEDULED_AUDITS, row) for row in rows]

    def claim_scheduled_run(
        self, schedule_id: str, expected_next_run: datetime, new_next_run: datetime, now: datetime
    ) -> bool:
        # One conditional UPDATE: PostgreSQL re-checks the WHERE clause against the row a concurrent
        # claimer committed (READ COMMITTED), SQLite serialises writers; either way one caller wins.
        encode = self._dialect.encode_datetime
        sql = (
            "UPDATE scheduled_audits SET next_run = ?, last_run = ?, last_run_status = 'running', "
            "last_error = NULL, revision = revision + 1 "
            "WHERE schedule_id = ? AND status = 'active' AND next_run = ?"
        )
        params = (
            encode(utc(new_next_run, "new_next_run")),
            encode(utc(now, "now")),
            schedule_id,
            encode(utc(expected_next_run, "expected_next_run")),
        )
        with (
            self._errors(f"claim a run of scheduled audit {schedule_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, params).rowcount == 1)

    def record_scheduled_run(
        self, schedule_id: str, run_at: datetime, snapshot_id: str | None, error: str | None
    ) -> bool:
        sql = (
            "UPDATE scheduled_audits SET last_run_status = ?, last_snapshot_id = ?, last_error = ?, "
            "revision = revision + 1 WHERE schedule_id = ? AND last_run = ?"
        )
        params = (
            "success" if error is None else "error",
            snapshot_id,
            error,
            schedule_id,
            self._dialect.encode_datetime(utc(run_at, "run_at")),
        )
        with (
            self._errors(f"record the run of scheduled audit {schedule_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, params).rowcount == 1)

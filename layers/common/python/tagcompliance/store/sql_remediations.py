"""The SQL store's tag remediation journal (``RemediationStore``): ``tag_remediations`` and its items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .remediations import ItemOutcome, RemediationItemRecord, RemediationRecord
from .sqlbase import SqlBase, Table, check_limit, utc

_REMEDIATIONS = Table(
    "tag_remediations",
    RemediationRecord,
    {"created_at": "datetime", "updated_at": "datetime", "finished_at": "datetime", "summary": "json"},
)
_ITEMS = Table(
    "tag_remediation_items",
    RemediationItemRecord,
    {
        "before_tags": "json",
        "set_tags": "json",
        "remove_keys": "json",
        "after_tags": "json",
        "updated_at": "datetime",
    },
)


class RemediationSql(SqlBase):
    """``RemediationStore`` over SQL."""

    def create_remediation(self, record: RemediationRecord, items: Sequence[RemediationItemRecord]) -> None:
        # One transaction: either the whole journal of the run exists, or none of it (and no write).
        with (
            self._errors(f"journal remediation {record.remediation_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, _REMEDIATIONS.insert_sql, self._encode(_REMEDIATIONS, record))
            if items:
                conn.cursor().executemany(
                    self._sql(_ITEMS.insert_sql), [self._encode(_ITEMS, item) for item in items]
                )

    def record_item_outcomes(
        self, remediation_id: str, outcomes: Sequence[ItemOutcome], at: datetime
    ) -> None:
        if not outcomes:
            return
        when = self._dialect.encode_datetime(utc(at, "at"))
        sql = (
            "UPDATE tag_remediation_items SET status = ?, error = ?, updated_at = ? "
            "WHERE remediation_id = ? AND resource_arn = ?"
        )
        rows = [(o.status, o.error, when, remediation_id, o.resource_arn) for o in outcomes]
        with (
            self._errors(f"record outcomes of remediation {remediation_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            conn.cursor().executemany(self._sql(sql), rows)
            touch = "UPDATE tag_remediations SET updated_at = ? WHERE remediation_id = ?"
            self._execute(conn, touch, (when, remediation_id))

    def finish_remediation(
        self, remediation_id: str, status: str, summary: dict[str, Any], at: datetime
    ) -> None:
        when = self._dialect.encode_datetime(utc(at, "at"))
        sql = (
            "UPDATE tag_remediations SET status = ?, summary = ?, updated_at = ?, finished_at = ? "
            "WHERE remediation_id = ?"
        )
        params = (status, self._dialect.encode_json(summary), when, when, remediation_id)
        with (
            self._errors(f"finish remediation {remediation_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, sql, params)

    def get_remediation(self, remediation_id: str) -> RemediationRecord | None:
        sql = f"{_REMEDIATIONS.select_sql} WHERE remediation_id = ?"
        with self._errors(f"read remediation {remediation_id}"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (remediation_id,)).fetchone()
        return None if row is None else self._decode(_REMEDIATIONS, row)

    def list_remediation_items(self, remediation_id: str) -> list[RemediationItemRecord]:
        sql = f"{_ITEMS.select_sql} WHERE remediation_id = ? ORDER BY resource_arn"
        with (
            self._errors(f"read the items of remediation {remediation_id}"),
            self._dialect.connection() as conn,
        ):
            rows = self._execute(conn, sql, (remediation_id,)).fetchall()
        return [self._decode(_ITEMS, row) for row in rows]

    def list_remediations(
        self, since: datetime | None = None, kind: str | None = None, limit: int = 100
    ) -> list[RemediationRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(self._dialect.encode_datetime(utc(since, "since")))
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # The newest `limit`, returned oldest first.
        sql = f"{_REMEDIATIONS.select_sql}{where} ORDER BY created_at DESC, remediation_id LIMIT ?"
        params.append(check_limit(limit))
        with self._errors("list remediations"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_REMEDIATIONS, row) for row in reversed(rows)]

    def find_undo(self, remediation_id: str) -> RemediationRecord | None:
        sql = f"{_REMEDIATIONS.select_sql} WHERE undoes = ? ORDER BY created_at DESC LIMIT 1"
        with (
            self._errors(f"find the undo of remediation {remediation_id}"),
            self._dialect.connection() as conn,
        ):
            row = self._execute(conn, sql, (remediation_id,)).fetchone()
        return None if row is None else self._decode(_REMEDIATIONS, row)

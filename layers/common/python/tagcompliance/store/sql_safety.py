"""The SQL store's agent-safety records (``SafetyStore``): confirmations, beliefs, regret events."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from tagcompliance.errors import InvalidInputError

from .base import BeliefRecord, ConfirmationRecord, RegretEventRecord
from .sqlbase import SqlBase, Table, check_limit, utc


class SafetySql(SqlBase):
    """``SafetyStore`` over SQL."""

    _CONFIRMATIONS = Table(
        "safety_confirmations",
        ConfirmationRecord,
        {
            "parameters": "json",
            "estimate": "json",
            "created_at": "datetime",
            "expires_at": "datetime",
            "used_at": "datetime",
        },
    )
    _BELIEFS = Table(
        "safety_beliefs",
        BeliefRecord,
        {
            "created_at": "datetime",
            "understood": "json",
            "assumptions": "json",
            "alternatives": "json",
            "estimate": "json",
            "warnings": "json",
            "outcome": "json",
            "outcome_matched": "bool",
            "resolved_at": "datetime",
        },
    )
    _REGRET_EVENTS = Table(
        "safety_regret_events",
        RegretEventRecord,
        {"created_at": "datetime", "value": "json", "resolved_at": "datetime"},
        generated=frozenset({"id"}),
    )

    def save_confirmation(self, record: ConfirmationRecord) -> None:
        row = self._encode(self._CONFIRMATIONS, record)
        with (
            self._errors("save a confirmation token"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._CONFIRMATIONS.insert_sql, row)

    def get_confirmation(self, token_hash: str) -> ConfirmationRecord | None:
        sql = f"{self._CONFIRMATIONS.select_sql} WHERE token_hash = ?"
        with self._errors("read a confirmation token"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (token_hash,)).fetchone()
        return None if row is None else self._decode(self._CONFIRMATIONS, row)

    def consume_confirmation(self, token_hash: str, now: datetime) -> bool:
        encoded = self._dialect.encode_datetime(utc(now, "now"))
        sql = (
            "UPDATE safety_confirmations SET used_at = ? "
            "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"
        )
        with (
            self._errors("use a confirmation token"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, (encoded, token_hash, encoded)).rowcount == 1)

    def record_belief(self, record: BeliefRecord) -> None:
        row = self._encode(self._BELIEFS, record)
        with (
            self._errors(f"record belief {record.belief_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._BELIEFS.insert_sql, row)

    def update_belief_outcome(
        self,
        belief_id: str,
        outcome: dict[str, Any],
        matched: bool | None,
        notes: str | None,
        resolved_at: datetime,
        stage: str | None = None,
    ) -> bool:
        sql = (
            "UPDATE safety_beliefs SET outcome = ?, outcome_matched = ?, outcome_notes = ?, resolved_at = ?, "
            "stage = COALESCE(?, stage) WHERE belief_id = ?"
        )
        params = (
            self._dialect.encode_json(outcome),
            None if matched is None else bool(matched),
            notes,
            self._dialect.encode_datetime(utc(resolved_at, "resolved_at")),
            stage,
            belief_id,
        )
        with (
            self._errors(f"record the outcome of belief {belief_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, params).rowcount == 1)

    def list_beliefs(
        self,
        organization: str | None = None,
        limit: int = 100,
        tool_name: str | None = None,
        user_id: str | None = None,
        stage: str | None = None,
        since: datetime | None = None,
    ) -> list[BeliefRecord]:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("organization", organization),
            ("tool_name", tool_name),
            ("user_id", user_id),
            ("stage", stage),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            conditions.append("created_at >= ?")
            params.append(self._dialect.encode_datetime(utc(since, "since")))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        params.append(check_limit(limit))
        sql = f"{self._BELIEFS.select_sql}{where} ORDER BY created_at DESC, belief_id DESC LIMIT ?"
        with self._errors("list beliefs"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(self._BELIEFS, row) for row in rows]

    def record_regret_event(self, record: RegretEventRecord) -> RegretEventRecord:
        row = self._encode(self._REGRET_EVENTS, record)
        with (
            self._errors(f"record a {record.rule_id} regret warning"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            found = self._execute(conn, f"{self._REGRET_EVENTS.insert_sql} RETURNING id", row).fetchone()
        return replace(record, id=int(found[0]))

    def open_regret_events(self, organization: str, user_id: str, tool_name: str) -> list[RegretEventRecord]:
        sql = (
            f"{self._REGRET_EVENTS.select_sql} WHERE organization = ? AND user_id = ? AND tool_name = ? "
            "AND status = 'shown' ORDER BY id"
        )
        with self._errors("list open regret warnings"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, (organization, user_id, tool_name)).fetchall()
        return [self._decode(self._REGRET_EVENTS, row) for row in rows]

    def resolve_regret_event(self, event_id: int, status: str, resolved_at: datetime) -> bool:
        if status not in ("corrected", "kept"):
            raise InvalidInputError(f"a regret warning resolves as corrected or kept, not {status!r}")
        sql = "UPDATE safety_regret_events SET status = ?, resolved_at = ? WHERE id = ? AND status = 'shown'"
        params = (status, self._dialect.encode_datetime(utc(resolved_at, "resolved_at")), event_id)
        with (
            self._errors(f"resolve regret warning {event_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, params).rowcount == 1)

    def regret_correction_counts(self, organization: str) -> dict[str, int]:
        sql = (
            "SELECT rule_id, COUNT(*) FROM safety_regret_events "
            "WHERE organization = ? AND status = 'corrected' GROUP BY rule_id"
        )
        with self._errors("count regret corrections"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, (organization,)).fetchall()
        return {str(rule_id): int(count) for rule_id, count in rows}

"""The one SQL implementation of the ``Store`` port, shared by the SQLite and PostgreSQL backends.

The backends differ only in connection handling, placeholder style, column types and value
conversion. A ``Dialect`` holds exactly those differences; ``SqlStore`` holds everything else.

Migrations are the ``migrations/NNNN_name.sql`` files, one set for both backends. Where the two
databases spell a type differently the file says ``{{TOKEN}}`` and each dialect's ``ddl_types``
supplies the spelling. Statements end with a semicolon at the end of a line.

``SqlStore`` implements every area's port (``base.py``, ``oauth.py``) and is over 600 lines on
purpose: each method is one short statement over the shared encoding, decoding and error handling,
and splitting the class by area would spread that one table-to-record mapping over several files.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from datetime import time as time_of_day
from importlib import resources
from itertools import islice
from typing import Any, Literal, Protocol

from tagcompliance.errors import InvalidInputError, StoreError

from .base import (
    AuditRecord,
    BeliefRecord,
    ConcurrentUpdateError,
    ConfirmationRecord,
    InventoryCount,
    RegretEventRecord,
    ResourceStateRecord,
    ScheduledAuditRecord,
    SnapshotRecord,
    StoreInfo,
)
from .oauth import OAuthClientRecord, OAuthCodeRecord, OAuthConsentRecord, OAuthSessionRecord

logger = logging.getLogger(__name__)

SAVE_BATCH_SIZE = 1000  # resource states per executemany: memory stays flat for 100,000-resource scans
STREAM_BATCH_SIZE = 1000  # rows fetched per round trip by iter_resource_states

_TOKEN = re.compile(r"\{\{(\w+)\}\}")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+)\.sql")

# Created before any migration runs, so it cannot be a migration itself.
_SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at {{TIMESTAMPTZ}} NOT NULL
)
"""


def one_line(error: BaseException) -> str:
    """A driver error as one line: libpq messages span several."""
    return " ".join(str(error).split()) or type(error).__name__


def render_ddl(sql: str, ddl_types: Mapping[str, str]) -> str:
    """``sql`` with every ``{{TOKEN}}`` replaced by the dialect's spelling of it."""

    def spelling(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in ddl_types:
            raise KeyError(f"migration token {{{{{token}}}}} has no spelling in this dialect")
        return ddl_types[token]

    return _TOKEN.sub(spelling, sql)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, ddl_types: Mapping[str, str]) -> list[str]:
        # Comment lines go first so that a semicolon or a token in a comment means nothing.
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [render_ddl(part.strip(), ddl_types) for part in _STATEMENT_END.split(body) if part.strip()]


def load_migrations() -> list[Migration]:
    """The packaged migrations, oldest first."""
    folder = resources.files(__package__) / "migrations"
    migrations = [
        Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if (match := _MIGRATION_FILE.fullmatch(entry.name))
    ]
    return sorted(migrations, key=lambda migration: migration.version)


class Dialect(Protocol):
    """What differs between the backends; everything else lives in ``SqlStore``."""

    backend: str  # StoreInfo.backend
    name: str  # for messages
    location: str  # never holds a password
    placeholder: str  # the driver's parameter marker; shared SQL is written with "?"
    ddl_types: Mapping[str, str]  # migration token -> this database's spelling
    database_errors: tuple[type[Exception], ...]  # what the driver raises; becomes StoreError

    def connection(self) -> AbstractContextManager[Any]:
        """A connection in autocommit mode: transactions are opened explicitly."""
        ...

    def transaction(self, conn: Any) -> AbstractContextManager[object]: ...

    def migration_lock(self, conn: Any) -> AbstractContextManager[object]:
        """Held while migrating, so two processes starting at once do not both migrate."""
        ...

    def stream(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        """The query's rows, fetched in batches rather than all at once."""
        ...

    def encode_json(self, value: Any) -> Any: ...

    def decode_json(self, raw: Any) -> Any: ...

    def encode_text_array(self, value: list[str]) -> Any:
        """For a ``{{TEXT_ARRAY}}`` column."""
        ...

    def decode_text_array(self, raw: Any) -> list[str]: ...

    def encode_datetime(self, value: datetime) -> Any:
        """``value`` is already timezone-aware UTC."""
        ...

    def decode_datetime(self, raw: Any) -> datetime:
        """Timezone-aware UTC."""
        ...

    def details(self, conn: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


ColumnKind = Literal["json", "datetime", "bool", "inet", "text_array", "time"]


class _Table:
    """A table whose columns are named after a record's fields; its SQL is built once."""

    def __init__(
        self,
        name: str,
        record_type: type[Any],
        kinds: Mapping[str, ColumnKind],  # columns that need converting; the others pass through
        generated: frozenset[str] = frozenset(),  # assigned by the database, never inserted
    ) -> None:
        self.record_type = record_type
        self.columns = tuple(field.name for field in fields(record_type))
        if unknown := set(kinds) - set(self.columns):
            raise ValueError(f"{name}: {sorted(unknown)} are not fields of {record_type.__name__}")
        self.column_kinds = tuple(kinds.get(column) for column in self.columns)
        self.insert_kinds = tuple(
            (column, kinds.get(column)) for column in self.columns if column not in generated
        )
        self.select_sql = f"SELECT {_quoted(self.columns)} FROM {name}"
        insert_columns = [column for column, _ in self.insert_kinds]
        self.insert_sql = (
            f"INSERT INTO {name} ({_quoted(insert_columns)}) VALUES ({', '.join('?' * len(insert_columns))})"
        )


def _quoted(columns: Iterable[str]) -> str:
    # Quoted because some field names ("trigger", "timestamp") are SQL keywords.
    return ", ".join(f'"{column}"' for column in columns)


_SNAPSHOTS = _Table(
    "compliance_snapshots",
    SnapshotRecord,
    {
        "created_at": "datetime",
        "regions": "json",
        "resource_types": "json",
        "policy": "json",
        "counts_by_type": "json",
        "counts_by_region": "json",
        "counts_by_violation": "json",
        "failed_shards": "json",
        "scheduled": "bool",
        "accounts": "json",
        "counts_by_account": "json",
    },
)
_STATES = _Table("resource_tag_state", ResourceStateRecord, {"tags": "json", "compliant": "bool"})
_AUDIT_LOGS = _Table(
    "audit_logs",
    AuditRecord,
    {"timestamp": "datetime", "parameters": "json", "result_summary": "json", "ip_address": "inet"},
    generated=frozenset({"id"}),
)
_SCHEDULED_AUDITS = _Table(
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


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got {value.isoformat()}")
    return value.astimezone(UTC)


def _ip_address(value: str) -> str | None:
    """The address in canonical form, or None when it is not one.

    The column is INET on PostgreSQL; a malformed client header must not make the audit write fail
    there while SQLite accepts it, so both backends drop what is not an address.
    """
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        logger.debug("audit record ip_address %r is not an IP address; stored as NULL", value)
        return None


_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _time_text(value: str, what: str) -> str:
    """An "HH:MM" time of day, as both backends accept it (TIME on PostgreSQL, TEXT on SQLite)."""
    if not isinstance(value, str) or not _TIME_OF_DAY.fullmatch(value):
        raise InvalidInputError(f"{what} must be a time of day as HH:MM (24-hour), got {value!r}")
    return value


def _check_limit(limit: int) -> int:
    if limit < 0:
        raise InvalidInputError(f"limit must be zero or more, got {limit}")
    return limit


class SqlStore:
    """Every store port (``Store``: snapshots, call log, schedules, safety, OAuth) over any ``Dialect``."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    def migrate(self) -> int:
        dialect = self._dialect
        with (
            self._errors("apply the schema migrations"),
            dialect.connection() as conn,
            dialect.migration_lock(conn),
        ):
            with dialect.transaction(conn):
                conn.cursor().execute(render_ddl(_SCHEMA_MIGRATIONS_DDL, dialect.ddl_types))
            for migration in load_migrations():
                with dialect.transaction(conn):
                    # Checked inside the write transaction: on SQLite, BEGIN IMMEDIATE (not a lock)
                    # is what keeps two processes from applying the same migration.
                    applied = "SELECT 1 FROM schema_migrations WHERE version = ?"
                    if self._execute(conn, applied, (migration.version,)).fetchone():
                        continue
                    for statement in migration.statements(dialect.ddl_types):
                        conn.cursor().execute(statement)
                    self._execute(
                        conn,
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.name, dialect.encode_datetime(datetime.now(UTC))),
                    )
                logger.info(
                    "%s store at %s: applied migration %04d_%s",
                    dialect.name,
                    dialect.location,
                    migration.version,
                    migration.name,
                )
            return self._schema_version(conn)

    def info(self) -> StoreInfo:
        dialect = self._dialect
        with self._errors("read its schema version"), dialect.connection() as conn:
            return StoreInfo(
                dialect.backend, dialect.location, self._schema_version(conn), dialect.details(conn)
            )

    def save_snapshot(self, snapshot: SnapshotRecord, resources: Iterable[ResourceStateRecord]) -> None:
        dialect = self._dialect
        snapshot_row = self._encode(_SNAPSHOTS, snapshot)
        insert_state = self._sql(_STATES.insert_sql)
        states = iter(resources)
        with (
            self._errors(f"save snapshot {snapshot.snapshot_id}"),
            dialect.connection() as conn,
            dialect.transaction(conn),
        ):
            self._execute(conn, _SNAPSHOTS.insert_sql, snapshot_row)
            cursor = conn.cursor()
            while batch := list(islice(states, SAVE_BATCH_SIZE)):
                cursor.executemany(insert_state, [self._encode_state(snapshot.snapshot_id, s) for s in batch])

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        sql = f"{_SNAPSHOTS.select_sql} WHERE snapshot_id = ?"
        with self._errors(f"read snapshot {snapshot_id}"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (snapshot_id,)).fetchone()
        return None if row is None else self._decode(_SNAPSHOTS, row)

    def list_snapshots(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[SnapshotRecord]:
        conditions: list[str] = []
        params: list[Any] = []
        if since is not None:
            conditions.append("created_at >= ?")
            params.append(self._dialect.encode_datetime(_utc(since, "since")))
        if until is not None:
            conditions.append("created_at < ?")
            params.append(self._dialect.encode_datetime(_utc(until, "until")))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"{_SNAPSHOTS.select_sql}{where} ORDER BY created_at, snapshot_id LIMIT ?"
        params.append(_check_limit(limit))
        with self._errors("list snapshots"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_SNAPSHOTS, row) for row in rows]

    def latest_snapshot(self) -> SnapshotRecord | None:
        sql = f"{_SNAPSHOTS.select_sql} ORDER BY created_at DESC, snapshot_id DESC LIMIT 1"
        with self._errors("read the latest snapshot"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, ()).fetchone()
        return None if row is None else self._decode(_SNAPSHOTS, row)

    def iter_resource_states(self, snapshot_id: str) -> Iterator[ResourceStateRecord]:
        # resource_arn sorts by code point on both backends (COLLATE "C" on PostgreSQL), the same
        # order as Python's str comparison, so callers can merge two snapshots' streams.
        sql = self._sql(f"{_STATES.select_sql} WHERE snapshot_id = ? ORDER BY resource_arn")
        with (
            self._errors(f"read the resource states of snapshot {snapshot_id}"),
            self._dialect.connection() as conn,
        ):
            for row in self._dialect.stream(conn, sql, (snapshot_id,)):
                yield self._decode(_STATES, row)

    def record_audit(self, record: AuditRecord) -> None:
        row = self._encode(_AUDIT_LOGS, record)
        with (
            self._errors(f"record the audit entry for {record.tool_name}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, _AUDIT_LOGS.insert_sql, row)

    def list_audit_logs(self, limit: int = 100, tool_name: str | None = None) -> list[AuditRecord]:
        where = "" if tool_name is None else " WHERE tool_name = ?"
        params: list[Any] = [] if tool_name is None else [tool_name]
        params.append(_check_limit(limit))
        sql = f"{_AUDIT_LOGS.select_sql}{where} ORDER BY timestamp DESC, id DESC LIMIT ?"
        with self._errors("list audit logs"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_AUDIT_LOGS, row) for row in rows]

    # --- scheduled audits ------------------------------------------------------------------

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
        params = (self._dialect.encode_datetime(_utc(now, "now")), _check_limit(limit))
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
            encode(_utc(new_next_run, "new_next_run")),
            encode(_utc(now, "now")),
            schedule_id,
            encode(_utc(expected_next_run, "expected_next_run")),
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
            self._dialect.encode_datetime(_utc(run_at, "run_at")),
        )
        with (
            self._errors(f"record the run of scheduled audit {schedule_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, params).rowcount == 1)

    # --- agent safety (tagcompliance.safety) ------------------------------------------------

    _CONFIRMATIONS = _Table(
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
    _BELIEFS = _Table(
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
    _REGRET_EVENTS = _Table(
        "safety_regret_events",
        RegretEventRecord,
        {"created_at": "datetime", "value": "json", "resolved_at": "datetime"},
        generated=frozenset({"id"}),
    )
    # How many recent snapshots inventory_counts considers when looking for the newest read of a pair.
    INVENTORY_SNAPSHOT_WINDOW = 500

    def inventory_counts(
        self, resource_types: Sequence[str] | None = None, regions: Sequence[str] | None = None
    ) -> list[InventoryCount]:
        wanted_types = None if resource_types is None else set(resource_types)
        wanted_regions = None if regions is None else set(regions)
        decode_json = self._dialect.decode_json
        scopes_sql = (
            "SELECT snapshot_id, created_at, regions, resource_types, failed_shards "
            "FROM compliance_snapshots ORDER BY created_at DESC, snapshot_id DESC LIMIT ?"
        )
        with self._errors("count the stored inventory"), self._dialect.connection() as conn:
            scopes = self._execute(conn, scopes_sql, (self.INVENTORY_SNAPSHOT_WINDOW,)).fetchall()
            # The newest snapshot that read each (type, region) pair without failing it.
            chosen: dict[tuple[str, str], tuple[str, datetime]] = {}
            for snapshot_id, created_at, raw_regions, raw_types, raw_failed in scopes:
                failed = {
                    (shard.get("resource_type"), shard.get("region"))
                    for shard in decode_json(raw_failed) or []
                    if isinstance(shard, dict)
                }
                taken_at = self._dialect.decode_datetime(created_at)
                for type_id in decode_json(raw_types) or []:
                    if wanted_types is not None and type_id not in wanted_types:
                        continue
                    for region in decode_json(raw_regions) or []:
                        if wanted_regions is not None and region not in wanted_regions:
                            continue
                        if (type_id, region) not in chosen and (type_id, region) not in failed:
                            chosen[(type_id, region)] = (snapshot_id, taken_at)
            snapshot_ids = sorted({snapshot_id for snapshot_id, _ in chosen.values()})
            counted: dict[tuple[str, str, str], int] = {}
            for start in range(0, len(snapshot_ids), 200):
                batch = snapshot_ids[start : start + 200]
                count_sql = (
                    "SELECT snapshot_id, resource_type, region, COUNT(*) FROM resource_tag_state "
                    f"WHERE snapshot_id IN ({', '.join('?' * len(batch))}) "
                    "GROUP BY snapshot_id, resource_type, region"
                )
                for snapshot_id, type_id, region, count in self._execute(conn, count_sql, batch).fetchall():
                    counted[(snapshot_id, type_id, region)] = int(count)
        return [
            InventoryCount(
                type_id, region, counted.get((snapshot_id, type_id, region), 0), snapshot_id, taken_at
            )
            for (type_id, region), (snapshot_id, taken_at) in sorted(chosen.items())
        ]

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
        encoded = self._dialect.encode_datetime(_utc(now, "now"))
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
            self._dialect.encode_datetime(_utc(resolved_at, "resolved_at")),
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
            params.append(self._dialect.encode_datetime(_utc(since, "since")))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        params.append(_check_limit(limit))
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
        params = (status, self._dialect.encode_datetime(_utc(resolved_at, "resolved_at")), event_id)
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

    # --- OAuth authorization server: hashes only, never a raw token, code or secret ------------

    _OAUTH_CLIENTS = _Table(
        "oauth_clients",
        OAuthClientRecord,
        {"metadata": "json", "created_at": "datetime", "last_used_at": "datetime"},
    )
    _OAUTH_CONSENTS = _Table(
        "oauth_consents",
        OAuthConsentRecord,
        {"scopes": "text_array", "created_at": "datetime", "expires_at": "datetime"},
    )
    _OAUTH_CODES = _Table(
        "oauth_authorization_codes",
        OAuthCodeRecord,
        {
            "scopes": "text_array",
            "redirect_uri_provided_explicitly": "bool",
            "expires_at": "datetime",
            "created_at": "datetime",
            "used_at": "datetime",
        },
    )
    _OAUTH_SESSIONS = _Table(
        "oauth_sessions",
        OAuthSessionRecord,
        {
            "scopes": "text_array",
            "expires_at": "datetime",
            "refresh_expires_at": "datetime",
            "created_at": "datetime",
            "rotated_at": "datetime",
            "revoked_at": "datetime",
        },
        generated=frozenset({"id"}),
    )

    def save_oauth_client(self, record: OAuthClientRecord) -> None:
        row = self._encode(self._OAUTH_CLIENTS, record)
        with (
            self._errors(f"register OAuth client {record.client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_CLIENTS.insert_sql, row)

    def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None:
        sql = f"{self._OAUTH_CLIENTS.select_sql} WHERE client_id = ?"
        with self._errors("read an OAuth client"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (client_id,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_CLIENTS, row)

    def save_oauth_code(self, record: OAuthCodeRecord) -> None:
        row = self._encode(self._OAUTH_CODES, record)
        with (
            self._errors("save an OAuth authorization code"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_CODES.insert_sql, row)

    def get_oauth_code(self, code_hash: str) -> OAuthCodeRecord | None:
        sql = f"{self._OAUTH_CODES.select_sql} WHERE code_hash = ?"
        with self._errors("read an OAuth authorization code"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (code_hash,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_CODES, row)

    def consume_oauth_code(self, code_hash: str, now: datetime) -> bool:
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        sql = (
            "UPDATE oauth_authorization_codes SET used_at = ? "
            "WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?"
        )
        with (
            self._errors("use an OAuth authorization code"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, (stamp, code_hash, stamp)).rowcount == 1)

    def create_oauth_session(self, record: OAuthSessionRecord) -> None:
        row = self._encode(self._OAUTH_SESSIONS, record)
        with (
            self._errors(f"save an OAuth session of grant {record.grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_SESSIONS.insert_sql, row)

    def find_oauth_session(
        self, *, access_token_hash: str | None = None, refresh_token_hash: str | None = None
    ) -> OAuthSessionRecord | None:
        if (access_token_hash is None) == (refresh_token_hash is None):
            raise InvalidInputError(
                "find_oauth_session needs exactly one of access_token_hash and refresh_token_hash"
            )
        column = "access_token_hash" if access_token_hash is not None else "refresh_token_hash"
        sql = f"{self._OAUTH_SESSIONS.select_sql} WHERE {column} = ?"
        with self._errors("read an OAuth session"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (access_token_hash or refresh_token_hash,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_SESSIONS, row)

    def rotate_oauth_session(
        self, refresh_token_hash: str, successor: OAuthSessionRecord, now: datetime
    ) -> bool:
        # The conditional UPDATE decides: of concurrent refreshes with one token exactly one wins.
        sql = (
            "UPDATE oauth_sessions SET rotated_at = ? "
            "WHERE refresh_token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL AND grant_id = ?"
        )
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        row = self._encode(self._OAUTH_SESSIONS, successor)
        with (
            self._errors(f"rotate an OAuth session of grant {successor.grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            if self._execute(conn, sql, (stamp, refresh_token_hash, successor.grant_id)).rowcount != 1:
                return False
            self._execute(conn, self._OAUTH_SESSIONS.insert_sql, row)
            return True

    def revoke_oauth_grant(self, grant_id: str, now: datetime) -> int:
        sql = "UPDATE oauth_sessions SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL"
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        with (
            self._errors(f"revoke OAuth grant {grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return int(self._execute(conn, sql, (stamp, grant_id)).rowcount)

    def delete_expired_oauth(self, now: datetime) -> int:
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        with (
            self._errors("delete expired OAuth codes and sessions"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            codes = self._execute(
                conn, "DELETE FROM oauth_authorization_codes WHERE expires_at <= ?", (stamp,)
            )
            sessions = self._execute(
                conn,
                "DELETE FROM oauth_sessions WHERE expires_at <= ? AND (refresh_expires_at IS NULL "
                "OR refresh_expires_at <= ? OR rotated_at IS NOT NULL OR revoked_at IS NOT NULL)",
                (stamp, stamp),
            )
            consents = self._execute(conn, "DELETE FROM oauth_consents WHERE expires_at <= ?", (stamp,))
            return int(codes.rowcount) + int(sessions.rowcount) + int(consents.rowcount)

    def mark_oauth_client_used(self, client_id: str, now: datetime) -> None:
        sql = "UPDATE oauth_clients SET last_used_at = ? WHERE client_id = ? AND last_used_at IS NULL"
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        with (
            self._errors(f"record the use of OAuth client {client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, sql, (stamp, client_id))

    def delete_unused_oauth_clients(self, registered_before: datetime) -> int:
        sql = "DELETE FROM oauth_clients WHERE last_used_at IS NULL AND created_at <= ?"
        stamp = self._dialect.encode_datetime(_utc(registered_before, "registered_before"))
        with (
            self._errors("delete unused OAuth clients"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return int(self._execute(conn, sql, (stamp,)).rowcount)

    def save_oauth_consent(self, record: OAuthConsentRecord) -> None:
        row = self._encode(self._OAUTH_CONSENTS, record)
        with (
            self._errors(f"save the consent of {record.user_id} for OAuth client {record.client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(
                conn,
                "DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ? AND redirect_uri = ?",
                (record.user_id, record.client_id, record.redirect_uri),
            )
            self._execute(conn, self._OAUTH_CONSENTS.insert_sql, row)

    def find_oauth_consent(
        self, user_id: str, client_id: str, redirect_uri: str, scopes: list[str], now: datetime
    ) -> OAuthConsentRecord | None:
        sql = (
            f"{self._OAUTH_CONSENTS.select_sql} WHERE user_id = ? AND client_id = ? AND redirect_uri = ? "
            "AND expires_at > ?"
        )
        params = (user_id, client_id, redirect_uri, self._dialect.encode_datetime(_utc(now, "now")))
        with self._errors("read an OAuth consent"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        # Scopes are compared as sets in Python: the two dialects store arrays differently.
        wanted = set(scopes)
        return next(
            (
                record
                for record in (self._decode(self._OAUTH_CONSENTS, row) for row in rows)
                if set(record.scopes) == wanted
            ),
            None,
        )

    def list_oauth_consents(self, user_id: str, now: datetime) -> list[OAuthConsentRecord]:
        sql = (
            f"{self._OAUTH_CONSENTS.select_sql} WHERE user_id = ? AND expires_at > ? "
            "ORDER BY created_at DESC, consent_id"
        )
        params = (user_id, self._dialect.encode_datetime(_utc(now, "now")))
        with self._errors("list OAuth consents"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(self._OAUTH_CONSENTS, row) for row in rows]

    def revoke_oauth_consent(self, user_id: str, consent_id: str, now: datetime) -> OAuthConsentRecord | None:
        select = f"{self._OAUTH_CONSENTS.select_sql} WHERE consent_id = ? AND user_id = ?"
        stamp = self._dialect.encode_datetime(_utc(now, "now"))
        with (
            self._errors(f"revoke OAuth consent {consent_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            row = self._execute(conn, select, (consent_id, user_id)).fetchone()
            if row is None:
                return None
            record: OAuthConsentRecord = self._decode(self._OAUTH_CONSENTS, row)
            self._execute(conn, "DELETE FROM oauth_consents WHERE consent_id = ?", (consent_id,))
            self._execute(
                conn,
                "UPDATE oauth_sessions SET revoked_at = ? "
                "WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
                (stamp, user_id, record.client_id),
            )
            return record

    def close(self) -> None:
        self._dialect.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn the driver's exceptions into a StoreError that names the backend and the location."""
        try:
            yield
        except self._dialect.database_errors as error:
            dialect = self._dialect
            raise StoreError(
                f"The {dialect.name} store at {dialect.location} could not {action}: {one_line(error)}"
            ) from error

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._dialect.placeholder)

    def _execute(self, conn: Any, sql: str, params: Sequence[Any]) -> Any:
        cursor = conn.cursor()
        cursor.execute(self._sql(sql), params)
        return cursor

    def _schema_version(self, conn: Any) -> int:
        row = self._execute(conn, "SELECT MAX(version) FROM schema_migrations", ()).fetchone()
        return int(row[0] or 0)

    def _encode_state(self, snapshot_id: str, state: ResourceStateRecord) -> tuple[Any, ...]:
        if state.snapshot_id != snapshot_id:
            raise InvalidInputError(
                f"resource state {state.resource_arn} belongs to snapshot {state.snapshot_id}, "
                f"not to snapshot {snapshot_id} being saved"
            )
        return self._encode(_STATES, state)

    def _encode(self, table: _Table, record: Any) -> tuple[Any, ...]:
        return tuple(
            self._encode_value(kind, column, getattr(record, column)) for column, kind in table.insert_kinds
        )

    def _encode_value(self, kind: ColumnKind | None, column: str, value: Any) -> Any:
        if value is None:
            return None
        match kind:
            case "json":
                return self._dialect.encode_json(value)
            case "datetime":
                return self._dialect.encode_datetime(_utc(value, column))
            case "bool":
                return bool(value)
            case "inet":
                return _ip_address(value)
            case "text_array":
                return self._dialect.encode_text_array(list(value))
            case "time":
                return _time_text(value, column)
        return value

    def _decode(self, table: _Table, row: Sequence[Any]) -> Any:
        return table.record_type(
            **{
                column: self._decode_value(kind, raw)
                for column, kind, raw in zip(table.columns, table.column_kinds, row, strict=True)
            }
        )

    def _decode_value(self, kind: ColumnKind | None, raw: Any) -> Any:
        if raw is None:
            return None
        match kind:
            case "json":
                return self._dialect.decode_json(raw)
            case "datetime":
                return self._dialect.decode_datetime(raw)
            case "bool":
                return bool(raw)
            case "inet":
                return str(raw)
            case "text_array":
                return self._dialect.decode_text_array(raw)
            case "time":
                # PostgreSQL's TIME comes back as a time of day, SQLite's as the text written.
                return raw.strftime("%H:%M") if isinstance(raw, time_of_day) else str(raw)[:5]
        return raw

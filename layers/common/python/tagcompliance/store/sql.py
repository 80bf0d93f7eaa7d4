"""The one SQL implementation of the ``Store`` port, shared by the SQLite and PostgreSQL backends.

The backends differ only in connection handling, placeholder style, column types and value
conversion. A ``Dialect`` holds exactly those differences; ``SqlStore`` holds everything else.

Migrations are the ``migrations/NNNN_name.sql`` files, one set for both backends. Where the two
databases spell a type differently the file says ``{{TOKEN}}`` and each dialect's ``ddl_types``
supplies the spelling. Statements end with a semicolon at the end of a line.
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
    ConcurrentUpdateError,
    ResourceStateRecord,
    ScheduledAuditRecord,
    SnapshotRecord,
    StoreInfo,
)

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
    """The ``Store`` protocol over any ``Dialect``."""

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

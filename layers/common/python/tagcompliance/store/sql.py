"""The one SQL implementation of the ``Store`` port, shared by the SQLite and PostgreSQL backends.

The backends differ only in connection handling, placeholder style, column types and value
conversion. A ``Dialect`` holds exactly those differences; ``SqlStore`` holds everything else.

Migrations are the ``migrations/NNNN_name.sql`` files, one set for both backends. Where the two
databases spell a type differently the file says ``{{TOKEN}}`` and each dialect's ``ddl_types``
supplies the spelling. Statements end with a semicolon at the end of a line.

``SqlStore`` implements every area's port (``base.py``, ``oauth.py``): snapshots, resource states,
inventory counts and the call log here, the other areas in mixins (``sql_schedules.py``,
``sql_safety.py``, ``sql_oauth.py``, ``sql_remediations.py``) over the shared row mapping and error
handling of ``sqlbase.py``, where the ``Dialect`` port is defined too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from itertools import islice
from typing import Any

from tagcompliance.errors import InvalidInputError

from .base import (
    CallRecord,
    InventoryCount,
    ResourceStateRecord,
    SnapshotRecord,
    StoreInfo,
)
from .sql_oauth import OAuthSql
from .sql_remediations import RemediationSql
from .sql_safety import SafetySql
from .sql_schedules import ScheduleSql
from .sqlbase import Table, check_limit, utc

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


_SNAPSHOTS = Table(
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
_STATES = Table("resource_tag_state", ResourceStateRecord, {"tags": "json", "compliant": "bool"})
_CALL_LOG = Table(
    "call_log",
    CallRecord,
    {"timestamp": "datetime", "parameters": "json", "result_summary": "json", "ip_address": "inet"},
    generated=frozenset({"id"}),
)


class SqlStore(ScheduleSql, SafetySql, OAuthSql, RemediationSql):
    """Every store port (``Store``: snapshots, call log, schedules, safety, OAuth) over any ``Dialect``."""

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
            params.append(self._dialect.encode_datetime(utc(since, "since")))
        if until is not None:
            conditions.append("created_at < ?")
            params.append(self._dialect.encode_datetime(utc(until, "until")))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"{_SNAPSHOTS.select_sql}{where} ORDER BY created_at, snapshot_id LIMIT ?"
        params.append(check_limit(limit))
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

    def record_call(self, record: CallRecord) -> None:
        row = self._encode(_CALL_LOG, record)
        with (
            self._errors(f"record the call of {record.tool_name}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            # Idempotent by call_id (both backends): replaying the spool never duplicates a row.
            self._execute(conn, f"{_CALL_LOG.insert_sql} ON CONFLICT (call_id) DO NOTHING", row)

    def list_calls(self, limit: int = 100, tool_name: str | None = None) -> list[CallRecord]:
        where = "" if tool_name is None else " WHERE tool_name = ?"
        params: list[Any] = [] if tool_name is None else [tool_name]
        params.append(check_limit(limit))
        sql = f"{_CALL_LOG.select_sql}{where} ORDER BY timestamp DESC, id DESC LIMIT ?"
        with self._errors("list the call log"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(_CALL_LOG, row) for row in rows]

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

    def close(self) -> None:
        self._dialect.close()

    def _encode_state(self, snapshot_id: str, state: ResourceStateRecord) -> tuple[Any, ...]:
        if state.snapshot_id != snapshot_id:
            raise InvalidInputError(
                f"resource state {state.resource_arn} belongs to snapshot {state.snapshot_id}, "
                f"not to snapshot {snapshot_id} being saved"
            )
        return self._encode(_STATES, state)

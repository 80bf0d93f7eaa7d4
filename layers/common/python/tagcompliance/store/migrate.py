"""Copy an embedded SQLite store into PostgreSQL, then verify the copy table by table.

    python -m tagcompliance.store.migrate --source ~/.tag-compliance/tagcompliance.db \\
        --target postgresql://user@host:5432/dbname [--force] [--verify-only] [--upgrade-source]

What it does, in order:

1. Opens the source read-only and checks it is a tagcompliance store at this code's schema
   version (``--upgrade-source`` applies the missing migrations to it first; a store written by a
   newer tagcompliance is refused).
2. Brings the target's schema to the same version with the store's own migrations (a target at a
   newer version is refused), then compares the two schemas: the same tables with the same columns.
3. In ONE PostgreSQL transaction: refuses a target that holds rows in any table, unless ``force``,
   which empties those tables with ``TRUNCATE`` inside that same transaction; copies every table
   (parents before the tables whose foreign keys point at them) with ``COPY``, streaming the
   source in batches so memory stays flat whatever the size; moves every serial / identity
   sequence past the copied ids; reads every table back and compares row counts and checksums.
   Any error or mismatch rolls the whole transaction back: the target is left as it was.

Tables are discovered from the schema (every table but ``schema_migrations``), so tables added by
later migrations are copied without changing this module. Values are converted to the target
column's type, read from PostgreSQL's catalog.

The checksum of a table is order-independent: the sum, modulo 2**256, of the SHA-256 of each row's
canonical form. Both sides use the same canonical form, driven by the target column types:
timestamps as UTC ISO 8601 with microseconds, JSON with sorted keys and numbers by value, booleans,
arrays as JSON lists, times of day as ``HH:MM:SS``, IP addresses with their prefix length.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, computed_field

from tagcompliance.errors import StoreError

from .postgres import PostgresStore, describe_postgres_url
from .sql import load_migrations
from .sqlbase import one_line
from .sqlite import SqliteStore

DEFAULT_BATCH_SIZE = 1000  # source rows fetched per round trip
CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT = "15s"  # waiting longer for a table lock means something is using the target
SQLITE_HEADER = b"SQLite format 3\x00"
EXCLUDED_TABLES = frozenset({"schema_migrations"})  # each side keeps its own, written by migrate()
CHECKSUM_MODULUS = 2**256

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3

Kind = Literal["json", "timestamptz", "bool", "array", "time", "inet", "int", "number", "text"]

_KINDS: dict[str, Kind] = {
    "json": "json",
    "jsonb": "json",
    "timestamp with time zone": "timestamptz",
    "boolean": "bool",
    "ARRAY": "array",
    "time without time zone": "time",
    "inet": "inet",
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "double precision": "number",
    "real": "number",
    "numeric": "number",
}


def column_kind(data_type: str) -> Kind:
    """How a PostgreSQL column type (``information_schema.columns.data_type``) is converted and compared."""
    return _KINDS.get(data_type, "text")


class MigrationError(StoreError):
    """The copy cannot start or did not complete; the message says why and what was (not) written."""


class TableReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str
    source_rows: int
    target_rows: int
    source_checksum: str = Field(description="64 hex digits, order-independent")
    target_checksum: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def match(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


class MigrationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    target: str  # never holds a password
    schema_version: int
    copied: bool = Field(description="False for a verification alone")
    truncated: bool = Field(description="The target's rows were deleted first (--force)")
    tables: list[TableReport]
    sequences: dict[str, int] = Field(
        default_factory=dict, description="table.column -> the next value the sequence gives"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(table.match for table in self.tables)

    def text(self) -> str:
        action = "Copied" if self.copied else "Compared"
        lines = [
            f"{action} {self.source} -> {self.target} (schema version {self.schema_version})"
            + (", after emptying the target (--force)" if self.truncated else ""),
            f"{'table':<28} {'source rows':>11} {'target rows':>11}  {'source checksum':<16}  "
            f"{'target checksum':<16}  match",
        ]
        for table in self.tables:
            lines.append(
                f"{table.table:<28} {table.source_rows:>11} {table.target_rows:>11}  "
                f"{table.source_checksum[:16]:<16}  {table.target_checksum[:16]:<16}  "
                f"{'yes' if table.match else 'NO'}"
            )
        if self.sequences:
            moved = ", ".join(f"{name} -> {value}" for name, value in self.sequences.items())
            lines.append(f"Sequences advanced (next value): {moved}")
        bad = [table.table for table in self.tables if not table.match]
        lines.append(
            f"MISMATCH in {', '.join(bad)}"
            if bad
            else f"All {len(self.tables)} tables match (row counts and checksums)."
        )
        return "\n".join(lines)


class VerificationError(MigrationError):
    """The copy was read back different from the source; the transaction was rolled back."""

    def __init__(self, report: MigrationReport) -> None:
        bad = ", ".join(table.table for table in report.tables if not table.match)
        super().__init__(
            f"verification failed for {bad}: the copy was rolled back, nothing was written to {report.target}"
        )
        self.report = report


# --- canonical form and checksums --------------------------------------------------------------


def _number(value: int | float | Decimal) -> str:
    # By value: 1, 1.0 and 1E+0 are one number (jsonb and SQLite REAL may spell it differently).
    decimal = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return str(decimal.normalize()) if decimal.is_finite() else str(decimal)


def _canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, numbers by value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = sorted((str(key), item) for key, item in value.items())
        return (
            "{"
            + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{_canonical(item)}" for key, item in items)
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # e.g. a date or UUID inside a value


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    # The SQLite store always writes +00:00; a naive value can only mean UTC there.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _text_list(value: Any) -> list[Any]:
    items = _json_value(value)
    if not isinstance(items, list):
        raise ValueError(f"expected a list, got {type(items).__name__}")
    return items


def _bool(value: Any) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "t", "f"):
        return value.lower() in ("true", "t")
    raise ValueError(f"{value!r} is not a boolean")


def _time(value: time | str) -> time:
    return time.fromisoformat(value) if isinstance(value, str) else value


def normalise(kind: Kind, value: Any) -> Any:
    """``value``, read from either database, in the form both sides' checksums are computed from."""
    if value is None:
        return None
    match kind:
        case "json":
            return _json_value(value)
        case "timestamptz":
            return _utc(value).isoformat(timespec="microseconds")
        case "bool":
            return _bool(value)
        case "array":
            return _text_list(value)
        case "time":
            return _time(value).isoformat()
        case "inet":
            return str(ipaddress.ip_interface(str(value)))
        case "int":
            return int(value)
        case "number":
            return float(value)
        case _:
            # Text, and types without a kind (uuid, date ...): SQLite holds the text COPY parsed.
            return value.hex() if isinstance(value, bytes) else str(value)


def row_digest(values: Sequence[Any]) -> int:
    """One row's hash from its normalised values (in column-name order) as an integer."""
    digest = hashlib.sha256(_canonical(list(values)).encode("utf-8")).digest()
    return int.from_bytes(digest, "big")


class Checksum:
    """Order-independent: a sum of row hashes, so the same rows in any order give the same value."""

    def __init__(self) -> None:
        self.rows = 0
        self._total = 0

    def add(self, digest: int) -> None:
        self.rows += 1
        self._total = (self._total + digest) % CHECKSUM_MODULUS

    @property
    def hex(self) -> str:
        return f"{self._total:064x}"


# --- the schema ----------------------------------------------------------------------------


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    data_type: str


class Table(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: tuple[Column, ...]  # sorted by name: the checksum's column order

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def parse_source(value: str) -> Path:
    """A path, or a ``sqlite:///relative`` / ``sqlite:////absolute`` URL."""
    if value.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
            raise MigrationError(
                f"source {value!r} is not a SQLite URL: use sqlite:///relative/path or sqlite:////absolute/path"
            )
        value = value[len("sqlite:///") :]
    return Path(value).expanduser()


def _check_target_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise MigrationError("target must be a PostgreSQL URL: postgresql://user[:password]@host:port/dbname")
    return describe_postgres_url(url)  # raises StoreError for a malformed URL, never shows the password


def _open_source(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise MigrationError(f"source {path} does not exist")
    if not path.is_file():
        raise MigrationError(f"source {path} is not a file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise MigrationError(f"source {path} cannot be read: {error.strerror or error}") from None
    if header != SQLITE_HEADER:
        raise MigrationError(f"source {path} is not a SQLite database (no SQLite header)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise MigrationError(f"source {path} cannot be opened as SQLite: {one_line(error)}") from None
    return conn


def _source_version(conn: sqlite3.Connection, path: Path) -> int:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    if found.fetchone() is None:
        raise MigrationError(
            f"source {path} is a SQLite database but not a tagcompliance store (no schema_migrations)"
        )
    return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)


def _check_version(side: str, location: str, version: int, expected: int, hint: str) -> None:
    if version > expected:
        raise MigrationError(
            f"the {side} {location} is at schema version {version}, newer than this tagcompliance "
            f"(version {expected}): run the migration with the tagcompliance release that wrote it"
        )
    if version < expected:
        raise MigrationError(
            f"the {side} {location} is at schema version {version}, this tagcompliance expects "
            f"{expected}: {hint}"
        )


def _source_tables(conn: sqlite3.Connection) -> dict[str, tuple[list[str], set[str]]]:
    """Table -> (its columns, the tables its foreign keys reference)."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name"
        )
        if row[0] not in EXCLUDED_TABLES
    ]
    tables: dict[str, tuple[list[str], set[str]]] = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({quoted})")]
        parents = {row[2] for row in conn.execute(f"PRAGMA foreign_key_list({quoted})")} - {name}
        tables[name] = (columns, parents)
    return tables


def _copy_order(tables: dict[str, tuple[list[str], set[str]]]) -> list[str]:
    """Parents before children (foreign keys are checked row by row on PostgreSQL)."""
    order: list[str] = []
    placed: set[str] = set()
    pending = sorted(tables)
    while pending:
        ready = [name for name in pending if tables[name][1] & set(tables) <= placed]
        if not ready:
            raise MigrationError(
                f"the foreign keys of {', '.join(pending)} form a cycle: no copy order exists"
            )
        order += ready
        placed.update(ready)
        pending = [name for name in pending if name not in placed]
    return order


def _target_tables(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        if table not in EXCLUDED_TABLES:
            tables.setdefault(table, {})[column] = data_type
    return tables


def _schema(
    source: dict[str, tuple[list[str], set[str]]], target: dict[str, dict[str, str]], location: str
) -> list[Table]:
    """The tables to copy, in copy order, after checking both sides have the same tables and columns."""
    problems: list[str] = []
    if only_source := sorted(set(source) - set(target)):
        problems.append(f"tables only in the source: {', '.join(only_source)}")
    if only_target := sorted(set(target) - set(source)):
        problems.append(f"tables only in the target: {', '.join(only_target)}")
    for name in sorted(set(source) & set(target)):
        if set(source[name][0]) != set(target[name]):
            problems.append(
                f"{name} has columns {sorted(source[name][0])} in the source, "
                f"{sorted(target[name])} in the target"
            )
    if problems:
        raise MigrationError(
            f"the source and the target {location} have different schemas: {'; '.join(problems)}"
        )
    return [
        Table(
            name=name,
            columns=tuple(
                Column(name=column, kind=column_kind(data_type), data_type=data_type)
                for column, data_type in sorted(target[name].items())
            ),
        )
        for name in _copy_order(source)
    ]


# --- reading, converting, writing --------------------------------------------------------------


def _source_rows(conn: sqlite3.Connection, table: Table, batch_size: int) -> Iterator[Sequence[Any]]:
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in table.column_names)
    cursor = conn.execute(f'SELECT {columns} FROM "{table.name}"')
    try:
        while batch := cursor.fetchmany(batch_size):
            yield from batch
    finally:
        cursor.close()


def _target_rows(conn: psycopg.Connection[Any], table: Table, batch_size: int) -> Iterator[Sequence[Any]]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)), sql.Identifier(table.name)
    )
    # A server-side cursor: rows arrive batch_size at a time (it needs the open transaction).
    with conn.cursor(name=f"verify_{table.name}") as cursor:
        cursor.itersize = batch_size
        cursor.execute(query)
        yield from cursor


def _to_target(kind: Kind, value: Any) -> Any:
    """A SQLite value as the Python value psycopg writes into a column of ``kind``."""
    if value is None:
        return None
    match kind:
        case "json":
            return Jsonb(_json_value(value))
        case "timestamptz":
            return _utc(value)
        case "bool":
            return _bool(value)
        case "array":
            return _text_list(value)
        case "time":
            return _time(value)
        case "inet":
            return str(ipaddress.ip_interface(str(value)))
        case "int":
            return int(value)
        case "number":
            return float(value)
        case _:
            return value


def _converted(
    table: Table, row: Sequence[Any], number: int, convert: Callable[[Kind, Any], Any]
) -> list[Any]:
    values = []
    for column, raw in zip(table.columns, row, strict=True):
        try:
            values.append(convert(column.kind, raw))
        except (ValueError, TypeError) as error:
            shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
            raise MigrationError(
                f"{table.name}.{column.name}, source row {number}: {shown} is not a valid "
                f"{column.data_type} ({error})"
            ) from None
    return values


def _checksum(table: Table, rows: Iterator[Sequence[Any]]) -> Checksum:
    checksum = Checksum()
    for number, row in enumerate(rows, start=1):
        checksum.add(row_digest(_converted(table, row, number, normalise)))
    return checksum


def _copy_table(
    source: sqlite3.Connection, target: psycopg.Connection[Any], table: Table, batch_size: int
) -> Checksum:
    """Stream one table into the target with COPY; the source checksum is computed on the way."""
    checksum = Checksum()
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    )
    with target.cursor() as cursor, cursor.copy(statement) as copy:
        for number, row in enumerate(_source_rows(source, table, batch_size), start=1):
            checksum.add(row_digest(_converted(table, row, number, normalise)))
            copy.write_row(_converted(table, row, number, _to_target))
    return checksum


def _advance_sequences(target: psycopg.Connection[Any], tables: Sequence[Table]) -> dict[str, int]:
    """Every serial / identity sequence set so its next value follows the largest copied id."""
    advanced: dict[str, int] = {}
    for table in tables:
        qualified = sql.Identifier(table.name).as_string(target)
        for column in table.columns:
            if column.kind != "int":
                continue
            row = target.execute("SELECT pg_get_serial_sequence(%s, %s)", (qualified, column.name)).fetchone()
            if row is None or row[0] is None:
                continue
            maximum = target.execute(
                sql.SQL("SELECT MAX({}) FROM {}").format(
                    sql.Identifier(column.name), sql.Identifier(table.name)
                )
            ).fetchone()
            following = int(maximum[0]) + 1 if maximum and maximum[0] is not None else 1
            target.execute("SELECT setval(%s, %s, false)", (row[0], following))
            advanced[f"{table.name}.{column.name}"] = following
    return advanced


def _scalar(target: psycopg.Connection[Any], query: sql.Composable) -> int:
    row = target.execute(query).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _row_counts(target: psycopg.Connection[Any], tables: Sequence[Table]) -> dict[str, int]:
    counts = {}
    for table in tables:
        query = sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table.name))
        counts[table.name] = _scalar(target, query)
    return counts


def _lock(target: psycopg.Connection[Any], tables: Sequence[Table], force: bool) -> None:
    names = sql.SQL(", ").join(sql.Identifier(table.name) for table in tables)
    target.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    if force:
        # Transactional on PostgreSQL: rolled back with the rest if the copy fails.
        target.execute(sql.SQL("TRUNCATE TABLE {}").format(names))
    else:
        # Blocks writers (and a second copy) until this transaction ends; readers carry on.
        target.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(names))


# --- the two operations ----------------------------------------------------------------------


@contextmanager
def _connections(
    source_path: Path, target_url: str
) -> Iterator[tuple[sqlite3.Connection, psycopg.Connection[Any], str]]:
    location = _check_target_url(target_url)
    with closing(_open_source(source_path)) as source:
        try:
            target = psycopg.connect(target_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True)
        except psycopg.Error as error:
            raise MigrationError(f"could not connect to the target {location}: {one_line(error)}") from None
        with target:
            yield source, target, location


def _target_version(target: psycopg.Connection[Any]) -> int:
    exists = target.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    return _scalar(target, sql.SQL("SELECT MAX(version) FROM schema_migrations"))


def _prepare(source_path: Path, target_url: str, *, upgrade_source: bool, migrate_target: bool) -> int:
    """Check both sides' schema versions (upgrading the source or target when asked); the version."""
    expected = max((migration.version for migration in load_migrations()), default=0)
    location = _check_target_url(target_url)
    with closing(_open_source(source_path)) as source:
        source_version = _source_version(source, source_path)
    if upgrade_source and source_version < expected:
        store = SqliteStore(source_path)
        try:
            store.migrate()
        finally:
            store.close()
        source_version = expected
    _check_version(
        "source",
        str(source_path),
        source_version,
        expected,
        "pass --upgrade-source to apply the missing migrations to it first (it is written to), "
        "or start the application on it once",
    )
    try:
        with psycopg.connect(target_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True) as target:
            target_version = _target_version(target)
    except psycopg.Error as error:
        raise MigrationError(f"could not connect to the target {location}: {one_line(error)}") from None
    if target_version < expected and migrate_target:
        store = PostgresStore(target_url)
        try:
            store.migrate()
        finally:
            store.close()
        target_version = expected
    _check_version(
        "target",
        location,
        target_version,
        expected,
        "copy into it first (the copy applies the store's migrations to the target)",
    )
    return expected


def migrate_sqlite_to_postgres(
    source: str | Path,
    target_url: str,
    *,
    force: bool = False,
    upgrade_source: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> MigrationReport:
    """Copy every table of the SQLite store ``source`` into ``target_url`` and verify the copy.

    Raises ``MigrationError`` (nothing written) when the target already holds rows and ``force`` is
    false, on bad input, on any database error, and ``VerificationError`` (a ``MigrationError``
    carrying the report; nothing written) when the copy reads back different from the source.
    """
    source_path = parse_source(str(source)) if isinstance(source, str) else source
    if batch_size < 1:
        raise MigrationError(f"batch size must be at least 1, got {batch_size}")
    version = _prepare(source_path, target_url, upgrade_source=upgrade_source, migrate_target=True)
    with _connections(source_path, target_url) as (src, target, location):
        try:
            src.execute("BEGIN")  # one read snapshot of the source for the copy and its checksums
            tables = _schema(_source_tables(src), _target_tables(target), location)
            with target.transaction():
                _lock(target, tables, force)
                if not force:
                    occupied = {name: rows for name, rows in _row_counts(target, tables).items() if rows}
                    if occupied:
                        held = ", ".join(f"{name} ({rows} rows)" for name, rows in occupied.items())
                        raise MigrationError(
                            f"the target {location} already holds data in {held}; no row was written. "
                            "Pass --force to empty every copied table of the target (TRUNCATE, in the "
                            "same transaction as the copy, so a failed copy keeps the old rows) and copy "
                            "again"
                        )
                source_sums = {table.name: _copy_table(src, target, table, batch_size) for table in tables}
                sequences = _advance_sequences(target, tables)
                report = MigrationReport(
                    source=str(source_path),
                    target=location,
                    schema_version=version,
                    copied=True,
                    truncated=force,
                    tables=[
                        _table_report(
                            table,
                            source_sums[table.name],
                            _checksum(table, _target_rows(target, table, batch_size)),
                        )
                        for table in tables
                    ],
                    sequences=sequences,
                )
                if not report.ok:
                    raise VerificationError(report)
        except sqlite3.Error as error:
            raise MigrationError(
                f"reading the source {source_path} failed: {one_line(error)}; nothing was written"
            ) from None
        except psycopg.Error as error:
            raise MigrationError(
                f"writing the target {location} failed: {one_line(error)}; the transaction was rolled back, "
                "nothing was written"
            ) from None
        finally:
            if src.in_transaction:
                src.execute("ROLLBACK")
    return report


def verify_copy(
    source: str | Path, target_url: str, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> MigrationReport:
    """Compare every table of ``source`` with ``target_url`` (row counts and checksums); writes nothing."""
    source_path = parse_source(str(source)) if isinstance(source, str) else source
    if batch_size < 1:
        raise MigrationError(f"batch size must be at least 1, got {batch_size}")
    version = _prepare(source_path, target_url, upgrade_source=False, migrate_target=False)
    with _connections(source_path, target_url) as (src, target, location):
        try:
            src.execute("BEGIN")
            tables = _schema(_source_tables(src), _target_tables(target), location)
            target.read_only = True
            target.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot of every table
            with target.transaction():
                reports = [
                    _table_report(
                        table,
                        _checksum(table, _source_rows(src, table, batch_size)),
                        _checksum(table, _target_rows(target, table, batch_size)),
                    )
                    for table in tables
                ]
        except sqlite3.Error as error:
            raise MigrationError(f"reading the source {source_path} failed: {one_line(error)}") from None
        except psycopg.Error as error:
            raise MigrationError(f"reading the target {location} failed: {one_line(error)}") from None
        finally:
            if src.in_transaction:
                src.execute("ROLLBACK")
    return MigrationReport(
        source=str(source_path),
        target=location,
        schema_version=version,
        copied=False,
        truncated=False,
        tables=reports,
    )


def _table_report(table: Table, source: Checksum, target: Checksum) -> TableReport:
    return TableReport(
        table=table.name,
        source_rows=source.rows,
        target_rows=target.rows,
        source_checksum=source.hex,
        target_checksum=target.hex,
    )


# --- the command -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tagcompliance.store.migrate",
        description=(
            "Copy an embedded SQLite tagcompliance store into PostgreSQL in one transaction, then verify "
            "row counts and content checksums per table. Exit codes: 0 copied (or verified) and "
            "matching, 1 error (nothing written), 2 bad arguments, 3 checksums or counts differ."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help="the SQLite store: a file path, or sqlite:///path (sqlite:////abs/path)",
    )
    parser.add_argument("--target", required=True, help="postgresql://user[:password]@host:port/dbname")
    parser.add_argument(
        "--force",
        action="store_true",
        help=(
            "copy into a target that already holds rows: every copied table of the target is emptied "
            "(TRUNCATE) first, in the same transaction as the copy, so a failure keeps the old rows"
        ),
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="compare the source with the target; write nothing"
    )
    parser.add_argument(
        "--upgrade-source",
        action="store_true",
        help="apply this release's migrations to an older source store first (this writes to the source)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows read per round trip (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verify_only and (args.force or args.upgrade_source):
        print(
            "error: --verify-only writes nothing: it cannot be combined with --force or --upgrade-source",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.verify_only:
            report = verify_copy(args.source, args.target, batch_size=args.batch_size)
        else:
            report = migrate_sqlite_to_postgres(
                args.source,
                args.target,
                force=args.force,
                upgrade_source=args.upgrade_source,
                batch_size=args.batch_size,
            )
    except VerificationError as error:
        print(error.report.model_dump_json(indent=2) if args.json else error.report.text())
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MISMATCH
    except StoreError as error:  # MigrationError included
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: the transaction was rolled back, nothing was written", file=sys.stderr)
        return EXIT_ERROR
    print(report.model_dump_json(indent=2) if args.json else report.text())
    return EXIT_OK if report.ok else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())

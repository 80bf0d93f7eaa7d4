"""The two operations, each in one PostgreSQL transaction: copying the source into the target
(streamed with COPY, sequences advanced, read back and compared) and comparing an existing copy."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tagcompliance.store.postgres import PostgresStore
from tagcompliance.store.sql import load_migrations
from tagcompliance.store.sqlbase import one_line
from tagcompliance.store.sqlite import SqliteStore

from .report import MigrationError, MigrationReport, TableReport, VerificationError
from .schema import (
    Table,
    check_target_url,
    check_version,
    open_source,
    parse_source,
    source_schema_version,
    source_tables,
    tables_to_copy,
    target_tables,
)
from .values import Checksum, Kind, normalise, row_digest, to_target

DEFAULT_BATCH_SIZE = 1000  # source rows fetched per round trip
CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT = "15s"  # waiting longer for a table lock means something is using the target


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
            copy.write_row(_converted(table, row, number, to_target))
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


@contextmanager
def _connections(
    source_path: Path, target_url: str
) -> Iterator[tuple[sqlite3.Connection, psycopg.Connection[Any], str]]:
    location = check_target_url(target_url)
    with closing(open_source(source_path)) as source:
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
    location = check_target_url(target_url)
    with closing(open_source(source_path)) as source:
        source_version = source_schema_version(source, source_path)
    if upgrade_source and source_version < expected:
        store = SqliteStore(source_path)
        try:
            store.migrate()
        finally:
            store.close()
        source_version = expected
    check_version(
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
    check_version(
        "target",
        location,
        target_version,
        expected,
        "copy into it first (the copy applies the store's migrations to the target)",
    )
    return expected


def _checked_source(source: str | Path, batch_size: int) -> Path:
    """The source's path (from a path or a ``sqlite:///`` URL), after checking the batch size."""
    if batch_size < 1:
        raise MigrationError(f"batch size must be at least 1, got {batch_size}")
    return parse_source(str(source)) if isinstance(source, str) else source


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
    source_path = _checked_source(source, batch_size)
    version = _prepare(source_path, target_url, upgrade_source=upgrade_source, migrate_target=True)
    with _connections(source_path, target_url) as (src, target, location):
        try:
            src.execute("BEGIN")  # one read snapshot of the source for the copy and its checksums
            tables = tables_to_copy(source_tables(src), target_tables(target), location)
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
    source_path = _checked_source(source, batch_size)
    version = _prepare(source_path, target_url, upgrade_source=False, migrate_target=False)
    with _connections(source_path, target_url) as (src, target, location):
        try:
            src.execute("BEGIN")
            tables = tables_to_copy(source_tables(src), target_tables(target), location)
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

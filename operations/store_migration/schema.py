"""Both sides opened and checked: the SQLite source (a tagcompliance store, read-only), the
PostgreSQL target URL, their schema versions, and the tables to copy with their columns, in copy
order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict

from tagcompliance.store.postgres import describe_postgres_url
from tagcompliance.store.sqlbase import one_line

from .report import MigrationError
from .values import Kind, column_kind

SQLITE_HEADER = b"SQLite format 3\x00"
EXCLUDED_TABLES = frozenset({"schema_migrations"})  # each side keeps its own, written by migrate()


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


def check_target_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise MigrationError("target must be a PostgreSQL URL: postgresql://user[:password]@host:port/dbname")
    return describe_postgres_url(url)  # raises StoreError for a malformed URL, never shows the password


def open_source(path: Path) -> sqlite3.Connection:
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


def source_schema_version(conn: sqlite3.Connection, path: Path) -> int:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    if found.fetchone() is None:
        raise MigrationError(
            f"source {path} is a SQLite database but not a tagcompliance store (no schema_migrations)"
        )
    return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)


def check_version(side: str, location: str, version: int, expected: int, hint: str) -> None:
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


def source_tables(conn: sqlite3.Connection) -> dict[str, tuple[list[str], set[str]]]:
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


def target_tables(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
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


def tables_to_copy(
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

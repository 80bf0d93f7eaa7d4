"""What every area of the SQL store shares: the ``Dialect`` port, table mappings and ``SqlBase``.

``SqlBase`` turns records into rows and back (through a ``Table``), runs SQL with the dialect's
placeholder, and turns driver errors into ``StoreError``. The areas (``sql.py``: snapshots and the
call log; ``sql_schedules.py``, ``sql_safety.py``, ``sql_oauth.py``) build on it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from datetime import time as time_of_day
from typing import Any, Literal, Protocol

from tagcompliance.errors import InvalidInputError, StoreError

logger = logging.getLogger(__name__)


def one_line(error: BaseException) -> str:
    """A driver error as one line: libpq messages span several."""
    return " ".join(str(error).split()) or type(error).__name__


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


class Table:
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
        self.select_sql = f"SELECT {quoted_columns(self.columns)} FROM {name}"
        insert_columns = [column for column, _ in self.insert_kinds]
        placeholders = ", ".join("?" * len(insert_columns))
        self.insert_sql = f"INSERT INTO {name} ({quoted_columns(insert_columns)}) VALUES ({placeholders})"


def quoted_columns(columns: Iterable[str]) -> str:
    # Quoted because some field names ("trigger", "timestamp") are SQL keywords.
    return ", ".join(f'"{column}"' for column in columns)


def utc(value: datetime, what: str) -> datetime:
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


def check_limit(limit: int) -> int:
    if limit < 0:
        raise InvalidInputError(f"limit must be zero or more, got {limit}")
    return limit


class SqlBase:
    """Row encoding, decoding, SQL execution and error translation over one ``Dialect``."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

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

    def _encode(self, table: Table, record: Any) -> tuple[Any, ...]:
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
                return self._dialect.encode_datetime(utc(value, column))
            case "bool":
                return bool(value)
            case "inet":
                return _ip_address(value)
            case "text_array":
                return self._dialect.encode_text_array(list(value))
            case "time":
                return _time_text(value, column)
        return value

    def _decode(self, table: Table, row: Sequence[Any]) -> Any:
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

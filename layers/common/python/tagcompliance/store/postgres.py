"""The server backend: PostgreSQL through psycopg 3 and a connection pool."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.transaction import Transaction
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from tagcompliance.errors import StoreError

from .sql import STREAM_BATCH_SIZE, SqlStore
from .sqlbase import one_line

# Any fixed 64-bit number will do, as long as nothing else in the database uses it: "tagcompl".
MIGRATION_LOCK_KEY = 0x74_61_67_63_6F_6D_70_6C
RECONNECT_MAX_DELAY_SECONDS = 2.0  # longest wait between two reconnection attempts of the pool


def describe_postgres_url(url: str) -> str:
    """``postgresql://user@host:port/dbname``: the URL for messages and /health, never the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        # libpq's message names the bad part, never the password; the URL itself is not repeated.
        raise StoreError(
            f"DATABASE_URL is not a valid PostgreSQL connection string: {one_line(error)}"
        ) from None
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}"


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnection backoff (1 s, doubling) with its wait capped at
    ``RECONNECT_MAX_DELAY_SECONDS``: uncapped, a pool that lost its server for a minute would wait
    another minute after the server is back before it tried again."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_MAX_DELAY_SECONDS)


class _ReconnectingPool(ConnectionPool):
    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        # The pool starts every reconnection with its own AttemptWithBackoff; this one is capped.
        super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


class PostgresDialect:
    backend = "postgresql"
    name = "PostgreSQL"
    placeholder = "%s"
    ddl_types = MappingProxyType(
        {
            "BIGSERIAL_PK": "BIGSERIAL PRIMARY KEY",
            "SERIAL_PK": "SERIAL PRIMARY KEY",
            "JSON": "JSONB",
            "TIMESTAMPTZ": "TIMESTAMPTZ",
            "TIME": "TIME",
            "TEXT_ARRAY": "TEXT[]",
            "INET": "INET",
            # Code point order whatever the database's locale, the same order as SQLite and Python.
            "ARN_TEXT": 'TEXT COLLATE "C"',
            "NOW": "NOW()",
        }
    )
    # PoolTimeout and PoolClosed are psycopg.OperationalError subclasses.
    database_errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        connect_timeout_seconds: int = 5,
        pool_timeout_seconds: float = 10.0,
        pool_size: int = 10,
        password: str | None = None,
    ) -> None:
        self.location = describe_postgres_url(url)
        # Given apart from the URL (settings read it from Secrets Manager), so no URL ever holds it.
        secret = {"password": password} if password else {}
        try:
            # One direct attempt first: the pool retries in the background and would report only a
            # timeout, while this reports why (refused, unknown host, authentication failed).
            psycopg.connect(url, connect_timeout=connect_timeout_seconds, **secret).close()
        except psycopg.Error as error:
            raise StoreError(
                f"Could not connect to PostgreSQL at {self.location}: {one_line(error)}"
            ) from error
        self._pool = _ReconnectingPool(
            url,
            min_size=1,
            max_size=pool_size,
            # autocommit: transactions are explicit (transaction()), so a read never holds one open.
            kwargs={"autocommit": True, "connect_timeout": connect_timeout_seconds, **secret},
            check=ConnectionPool.check_connection,  # a server restart must not hand out dead connections
            timeout=pool_timeout_seconds,
            name="tagcompliance-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_seconds)
        except PoolTimeout as error:
            self._pool.close()
            raise StoreError(
                f"Could not connect to PostgreSQL at {self.location}: {one_line(error)}"
            ) from error

    def connection(self) -> Any:
        return self._pool.connection()

    def transaction(self, conn: psycopg.Connection[Any]) -> Transaction:
        return conn.transaction()

    @contextmanager
    def migration_lock(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        # A session-level advisory lock: held across the per-migration transactions, released
        # by the server if this process dies.
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            yield
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))

    def stream(
        self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]
    ) -> Iterator[Sequence[Any]]:
        # A server-side cursor lives in a transaction and fetches itersize rows per round trip.
        with conn.transaction(), conn.cursor(name="tagcompliance_stream") as cursor:
            cursor.itersize = STREAM_BATCH_SIZE
            cursor.execute(sql, params)
            yield from cursor

    def encode_json(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def decode_json(self, raw: Any) -> Any:
        return raw  # psycopg has already parsed JSONB

    def encode_text_array(self, value: list[str]) -> list[str]:
        return value  # psycopg adapts a list of str to TEXT[]

    def decode_text_array(self, raw: list[str]) -> list[str]:
        return list(raw)

    def encode_datetime(self, value: datetime) -> datetime:
        return value

    def decode_datetime(self, raw: datetime) -> datetime:
        return raw.astimezone(UTC)  # psycopg returns the session's TimeZone

    def details(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        stats = self._pool.get_stats()
        return {
            "server_version": conn.info.server_version,
            "pool_size": stats.get("pool_size"),
            "pool_available": stats.get("pool_available"),
            "pool_max_size": self._pool.max_size,
        }

    def close(self) -> None:
        self._pool.close()


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database, through a pool of 1 to ``pool_size`` connections."""

    def __init__(self, url: str, pool_size: int = 10, password: str | None = None) -> None:
        super().__init__(PostgresDialect(url, pool_size=pool_size, password=password))

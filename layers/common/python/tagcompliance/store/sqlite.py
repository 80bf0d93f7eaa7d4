"""The embedded backend: one SQLite file in WAL mode, shared by the gateway's threads."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tagcompliance.errors import StoreError

from .sql import STREAM_BATCH_SIZE, SqlStore
from .sqlbase import one_line

MAX_IDLE_CONNECTIONS = 8


class SqliteDialect:
    backend = "sqlite"
    name = "SQLite"
    placeholder = "?"
    ddl_types = MappingProxyType(
        {
            "BIGSERIAL_PK": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "SERIAL_PK": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "JSON": "TEXT",
            "TIMESTAMPTZ": "TEXT",
            "TIME": "TEXT",
            "TEXT_ARRAY": "TEXT",  # a JSON list
            "INET": "TEXT",
            "ARN_TEXT": "TEXT",  # SQLite's default BINARY collation already sorts by code point
            # The same fixed-width ISO 8601 form encode_datetime writes, so text order is time order.
            "NOW": "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')",
        }
    )
    database_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout_seconds: float = 30.0) -> None:
        self.location = str(path)
        self._path = path
        self._busy_timeout_seconds = busy_timeout_seconds
        # A small pool rather than one shared connection: WAL lets readers run beside the writer,
        # and a half-read iter_resource_states stream does not hold up other threads.
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # SQLite admits one writer at a time. Without this lock, this process's threads would race
        # for it and the losers back off in SQLite's busy handler, sleeping 1, 2, 5, 10, ... 100 ms
        # between tries (tens of ms of tail latency for a 50 us INSERT). Queued here they get the
        # write lock as soon as it is released; other processes still wait via busy_timeout.
        self._write_lock = threading.RLock()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Open one connection now, so that a bad path fails at startup rather than on a tool call.
            self._idle.append(self._open())
        except (OSError, sqlite3.Error) as error:
            raise StoreError(
                f"Could not open the SQLite store at {self.location}: {one_line(error)} "
                "(DATA_DIR names a writable directory for it; or set DATABASE_URL)"
            ) from error

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; transaction() issues BEGIN IMMEDIATE itself.
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, and much faster
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreError(f"The SQLite store at {self.location} is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE_CONNECTIONS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later needs to write
        # can fail with "database is locked" instead of waiting its turn.
        if not self._write_lock.acquire(timeout=self._busy_timeout_seconds):
            raise sqlite3.OperationalError("database is locked (waited for this process's other writers)")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._write_lock.release()

    def migration_lock(self, conn: sqlite3.Connection) -> nullcontext[None]:
        # Each migration runs under BEGIN IMMEDIATE and re-checks schema_migrations: that serialises
        # migrating processes on SQLite.
        return nullcontext()

    def stream(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        cursor = conn.execute(sql, params)
        try:
            while rows := cursor.fetchmany(STREAM_BATCH_SIZE):
                yield from rows
        finally:
            cursor.close()

    def encode_json(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def decode_json(self, raw: str) -> Any:
        return json.loads(raw)

    def encode_text_array(self, value: list[str]) -> str:
        return self.encode_json(value)  # {{TEXT_ARRAY}} is a JSON list in TEXT here

    def decode_text_array(self, raw: str) -> list[str]:
        return list(json.loads(raw))

    def encode_datetime(self, value: datetime) -> str:
        # Fixed width (always microseconds, always +00:00), so comparing the text compares the times.
        return value.isoformat(timespec="microseconds")

    def decode_datetime(self, raw: str) -> datetime:
        return datetime.fromisoformat(raw)

    def details(self, conn: sqlite3.Connection) -> dict[str, Any]:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return {"journal_mode": journal_mode, "sqlite_version": sqlite3.sqlite_version}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class SqliteStore(SqlStore):
    """The store in one SQLite file; parent directories are created."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(SqliteDialect(Path(path)))

"""The call log's durability: a local spool for rows the store could not take, and its replay.

``DurableCallLog`` writes each tool call's row to the store. When the store cannot take it (a
database outage), the row is appended to ``CallLogSpool``, a JSON-lines file in the data directory
(one ``write`` of the whole line, then ``fsync``), so an answered call never loses its row, not
even if the process dies before the database is back. A background thread replays the spool when
the store answers again; replay is idempotent because every row carries a unique ``call_id`` that
the store writes at most once.

Writing calls (anything with side effects) must not run while their row could not be stored:
``ensure_writable`` raises ``CallLogUnavailableError`` then, and the gateway refuses the call.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from tagcompliance.errors import StoreError, TagComplianceError

from .base import CallLogStore, CallRecord

logger = logging.getLogger(__name__)

SPOOL_FILE = "call-log-spool.jsonl"
REPLAY_INTERVAL_SECONDS = 5.0


class CallLogUnavailableError(TagComplianceError):
    """The call log cannot be written now: a call with side effects is refused (fail closed)."""


def _encode(record: CallRecord) -> bytes:
    data = asdict(record)
    data["timestamp"] = record.timestamp.isoformat()
    return (json.dumps(data, separators=(",", ":"), default=str) + "\n").encode()


def _decode(line: bytes) -> CallRecord:
    data: dict[str, Any] = json.loads(line)
    known = {field.name for field in fields(CallRecord)}
    data = {name: value for name, value in data.items() if name in known}
    data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    return CallRecord(**data)


class CallLogSpool:
    """Rows waiting for the store: appended with fsync, taken whole for replay.

    A replay first renames the file aside (``.replaying``), so calls keep appending to a fresh
    file while it runs; a replay cut short leaves the aside file, taken again first next time.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / SPOOL_FILE
        self.replaying = directory / f"{SPOOL_FILE}.replaying"
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._pending = sum(self._count(path) for path in (self.path, self.replaying))

    @property
    def pending(self) -> int:
        """Rows spooled and not yet replayed."""
        return self._pending

    def append(self, record: CallRecord) -> None:
        """Durably add one row (raises OSError when the disk refuses it)."""
        line = _encode(record)
        with self._lock:
            created = not self.path.exists()
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line)  # one write: a crash leaves at most a torn last line
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if created:  # the new file's directory entry must survive a crash too
                _fsync_directory(self.path.parent)
            self._pending += 1

    def take(self) -> list[CallRecord]:
        """The rows to replay: the aside file of an interrupted replay, else the spool moved aside."""
        with self._lock:
            if not self.replaying.exists():
                if not self.path.exists():
                    return []
                self.path.replace(self.replaying)
                _fsync_directory(self.path.parent)
        records = []
        for number, line in enumerate(self.replaying.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(_decode(line))
            except (ValueError, TypeError, KeyError) as error:
                # Only a crash in the middle of an append leaves such a line (never an answered call:
                # its answer waited for the fsync); it is reported, not retried forever.
                logger.error("call-log spool line %d is unreadable and skipped: %s", number, error)
        return records

    def done(self) -> None:
        """The taken rows are all in the store: drop the aside file."""
        with self._lock:
            self.replaying.unlink(missing_ok=True)
            _fsync_directory(self.path.parent)
            self._pending = self._count(self.path)  # what was appended during the replay

    @staticmethod
    def _count(path: Path) -> int:
        try:
            return sum(1 for line in path.read_bytes().splitlines() if line.strip())
        except FileNotFoundError:
            return 0


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class DurableCallLog:
    """The call log with a local spool behind it, and a thread that replays the spool."""

    def __init__(
        self,
        store: CallLogStore,
        spool: CallLogSpool,
        replay_interval_seconds: float = REPLAY_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.spool = spool
        self.replay_interval_seconds = replay_interval_seconds
        self.last_error: str | None = None  # why the latest write or replay failed, until one succeeds
        self._replay_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        return self.spool.pending

    def record(self, record: CallRecord) -> bool:
        """Store the row; True when it reached the store, False when it waits in the spool.

        Raises ``OSError`` only when neither the store nor the disk took it.
        """
        if self.pending:
            # The store failed a write and the spool is not replayed yet: spool this row too, rather
            # than make every call wait for a database that is likely still away (and keep the order).
            self.spool.append(record)
            return False
        try:
            self.store.record_call(record)
        except StoreError as error:
            self.last_error = str(error)
            self.spool.append(record)
            logger.warning(
                "call-log row for %s spooled locally (%d waiting): %s", record.tool_name, self.pending, error
            )
            return False
        self.last_error = None
        return True

    def replay(self) -> int:
        """Write the spooled rows to the store; how many were replayed (0 when the store is still down)."""
        with self._replay_lock:
            records = self.spool.take()
            if not records:
                if self.spool.replaying.exists():
                    self.spool.done()
                return 0
            try:
                for record in records:
                    self.store.record_call(record)  # idempotent by call_id
            except StoreError as error:
                self.last_error = str(error)
                return 0
            self.spool.done()
            self.last_error = None
        logger.info("replayed %d spooled call-log row(s) into the store", len(records))
        return len(records)

    def ensure_writable(self) -> None:
        """Raise ``CallLogUnavailableError`` unless a call's row can be stored now.

        Spooled rows are replayed first: while any wait, or the store does not answer, the call log
        is not being written, and a call with side effects must not run unlogged.
        """
        if self.pending:
            self.replay()
        if not self.pending:
            try:
                self.store.info()  # a read on the store's own connection: it answers, or it raises
                return
            except StoreError as error:
                self.last_error = str(error)
        raise CallLogUnavailableError(
            "This call changes something, and the call log cannot be written now (the database is "
            f"unavailable: {self.last_error or 'spooled rows are waiting'}). Calls with side effects are "
            "refused until it is back; read-only calls still answer, and their log rows are kept locally "
            "and written when the database returns."
        )

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="call-log-replay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _replay_quietly(self) -> None:
        try:
            self.replay()
        except Exception:  # the thread must not die: the next interval tries again
            logger.exception("call-log spool replay failed")

    def _run(self) -> None:
        while not self._stopped.wait(self.replay_interval_seconds):
            if self.pending:
                self._replay_quietly()

"""The call log's local spool (``tagcompliance.store.spool``) against a real PostgreSQL whose
connections go through the fault suite's TCP proxy: rows written while the database is away are
kept on disk and replayed once, and calls with side effects are refused meanwhile."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tagcompliance.settings import Settings
from tagcompliance.store import CallRecord, Store, open_store
from tagcompliance.store.spool import SPOOL_FILE, CallLogSpool, CallLogUnavailableError, DurableCallLog
from tests.conftest import fresh_postgres_database
from tests.faults.tcpproxy import TCPProxy


@pytest.fixture
def proxied_store() -> Iterator[tuple[Store, TCPProxy, str]]:
    """A PostgreSQL store reached through a proxy, and the database's direct URL (for counting)."""
    with fresh_postgres_database() as url, TCPProxy("127.0.0.1", 5432) as proxy:
        store = open_store(Settings(DATABASE_URL=url.replace("127.0.0.1:5432", proxy.address, 1)))
        try:
            yield store, proxy, url
        finally:
            proxy.set_mode("forward")
            store.close()


def record(tool_name: str = "get_tagging_policy") -> CallRecord:
    return CallRecord(
        timestamp=datetime.now(UTC),
        user_id="alice@example.com",
        tool_name=tool_name,
        parameters={},
        result_summary={"required_tags_count": 3},
        duration_ms=4,
        status="success",
        call_id=uuid.uuid4().hex,
    )


def rows(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT call_id FROM call_log ORDER BY id")]


def go_down(proxy: TCPProxy) -> None:
    proxy.set_mode("refuse")  # new connections fail at once, like a stopped server
    proxy.cut()  # and the pooled ones die


def test_rows_written_during_an_outage_are_spooled_then_replayed_once(
    proxied_store: tuple[Store, TCPProxy, str], tmp_path: Path
) -> None:
    store, proxy, url = proxied_store
    call_log = DurableCallLog(store, CallLogSpool(tmp_path), replay_interval_seconds=3600)
    before = [record() for _ in range(3)]
    assert all(call_log.record(item) for item in before)

    go_down(proxy)
    during = [record() for _ in range(5)]
    assert not any(call_log.record(item) for item in during)  # spooled, not lost
    assert call_log.pending == 5 and call_log.last_error
    spooled = (tmp_path / SPOOL_FILE).read_text().splitlines()
    assert [json.loads(line)["call_id"] for line in spooled] == [item.call_id for item in during]
    with pytest.raises(CallLogUnavailableError, match="refused until it is back"):
        call_log.ensure_writable()
    assert call_log.replay() == 0 and call_log.pending == 5  # still down: kept

    proxy.set_mode("forward")
    call_log.ensure_writable()  # replays first, then the store answers: allowed again
    assert call_log.pending == 0 and not (tmp_path / SPOOL_FILE).exists()
    assert call_log.replay() == 0
    # Rows lost: 0; duplicates: 0.
    assert rows(url) == [item.call_id for item in before + during]


def test_a_replay_cut_short_is_finished_later_without_duplicates(
    proxied_store: tuple[Store, TCPProxy, str], tmp_path: Path
) -> None:
    store, _, url = proxied_store
    spool = CallLogSpool(tmp_path)
    during = [record() for _ in range(4)]
    for item in during:
        spool.append(item)
    store.record_call(during[0])  # as if its INSERT landed but the acknowledgement was lost
    taken = spool.take()  # a replay that died here: the aside file stays
    assert [item.call_id for item in taken] == [item.call_id for item in during]
    spool.append(after := record())  # a call during the cut-short replay goes to a fresh file

    restarted = DurableCallLog(store, CallLogSpool(tmp_path))  # a new process on the same data dir
    assert restarted.pending == 5
    assert restarted.replay() == 4  # the interrupted batch first
    assert restarted.replay() == 1 and restarted.pending == 0
    assert rows(url) == [item.call_id for item in [*during, after]]


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(
    proxied_store: tuple[Store, TCPProxy, str], tmp_path: Path
) -> None:
    store, _, url = proxied_store
    spool = CallLogSpool(tmp_path)
    kept = record()
    spool.append(kept)
    with (tmp_path / SPOOL_FILE).open("ab") as torn:  # a crash in the middle of an append
        torn.write(b'{"timestamp":"2026-')
    call_log = DurableCallLog(store, CallLogSpool(tmp_path))
    assert call_log.replay() == 1 and call_log.pending == 0
    assert rows(url) == [kept.call_id]


def test_writing_is_refused_while_rows_wait_even_if_the_store_answers(
    proxied_store: tuple[Store, TCPProxy, str], tmp_path: Path
) -> None:
    """The spool is replayed before a writing call: if that replay fails the call is refused."""
    store, proxy, _ = proxied_store
    call_log = DurableCallLog(store, CallLogSpool(tmp_path), replay_interval_seconds=3600)
    go_down(proxy)
    assert call_log.record(record()) is False
    with pytest.raises(CallLogUnavailableError):
        call_log.ensure_writable()
    proxy.set_mode("forward")
    call_log.ensure_writable()
    assert call_log.pending == 0

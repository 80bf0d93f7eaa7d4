"""The gateway's per-call fast paths keep their guarantees: every concurrent call is audited (with
the refusals' messages and the successes' summaries), SQLite writers of one process queue for the
write lock rather than failing, and a call that reports no progress still gets none while a scan
does."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent

from tag_compliance_mcp.runtime import Runtime, _block_text, _call_outcome, run_tool
from tag_compliance_mcp.server import build_server
from tagcompliance.errors import StoreError
from tagcompliance.store import CallRecord
from tagcompliance.store.sql import SqlStore
from tagcompliance.store.sqlite import SqliteDialect, SqliteStore

from .helpers import DEMO_REGIONS, call


@pytest.mark.anyio
async def test_concurrent_calls_are_all_audited(runtime: Runtime) -> None:
    server = build_server(runtime)
    arguments = {"resource_types": ["all"], "regions": DEMO_REGIONS}
    async with Client(server) as warm:
        await call(warm, "check_tag_compliance", **arguments)  # the later checks are cached
    before = len(runtime.store.list_calls(limit=1000))
    outcomes: list[tuple[str, bool]] = []

    async def session(index: int) -> None:
        async with Client(server) as client:
            for turn in range(6):
                kind = (index + turn) % 3
                if kind == 0:
                    result = await client.call_tool("check_tag_compliance", arguments)
                    assert (result.structured_content or {}).get("cached") is True
                    outcomes.append(("check_tag_compliance", result.is_error))
                elif kind == 1:
                    result = await client.call_tool("get_tagging_policy", {})
                    outcomes.append(("get_tagging_policy", result.is_error))
                else:  # refused by the core: the message must reach the audit log
                    result = await client.call_tool(
                        "check_tag_compliance", {"resource_types": ["ec2:vpc"], "regions": DEMO_REGIONS}
                    )
                    outcomes.append(("refused", result.is_error))

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(session, index)

    assert len(outcomes) == 48
    assert len(runtime.store.list_calls(limit=1000)) - before == 48
    logs = runtime.store.list_calls(limit=48)
    assert [error for kind, error in outcomes if kind != "refused"] == [False] * 32
    assert all(error for kind, error in outcomes if kind == "refused")
    by_kind: dict[str, list[Any]] = {"check": [], "policy": [], "refused": []}
    for log in logs:
        if log.tool_name == "get_tagging_policy":
            by_kind["policy"].append(log)
        elif log.status == "error":
            by_kind["refused"].append(log)
        else:
            by_kind["check"].append(log)
    assert {name: len(entries) for name, entries in by_kind.items()} == {
        "check": 16,
        "policy": 16,
        "refused": 16,
    }
    assert all("ec2:vpc" in (log.error_message or "") for log in by_kind["refused"])
    assert all(log.result_summary.get("cached") is True for log in by_kind["check"])
    assert all(log.result_summary.get("violations_count") is not None for log in by_kind["check"])
    assert all(log.result_summary["source"] == "file" for log in by_kind["policy"])


def test_call_outcome_reads_models_and_dicts_alike() -> None:
    model = CallToolResult(
        content=[
            TextContent(type="text", text="bad input"),
            ImageContent(type="image", data="", mime_type="x"),
        ],
        is_error=True,
    )
    is_error, content, structured = _call_outcome(model)
    assert is_error and structured == {}
    assert [_block_text(block) for block in content] == ["bad input", ""]
    ok = CallToolResult(content=[], structured_content={"score": 1.0, "items": [1, 2]})
    assert _call_outcome(ok) == (False, [], {"score": 1.0, "items": [1, 2]})
    raw = {"isError": True, "content": [{"type": "text", "text": "refused"}], "structuredContent": None}
    is_error, content, structured = _call_outcome(raw)
    assert is_error and [_block_text(block) for block in content] == ["refused"] and structured == {}
    assert _call_outcome(None) == (False, [], {})


@pytest.mark.anyio
async def test_progress_is_relayed_only_when_reported() -> None:
    sent: list[tuple[float, float | None, str | None]] = []
    first_sent = threading.Event()

    class Recorder:
        async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
            sent.append((progress, total, message))
            first_sent.set()

    def quiet(progress: Any) -> str:
        time.sleep(0.12)  # long enough for a relay to have reported, had there been anything
        return "quiet"

    assert await run_tool(Recorder(), quiet) == "quiet"  # type: ignore[arg-type]
    assert sent == []

    def from_another_thread(progress: Any) -> str:
        # Scans report from their pool threads, not from the tool's worker thread.
        reporter = threading.Thread(target=progress, args=(1, 4, "listed"))
        reporter.start()
        reporter.join()
        assert first_sent.wait(5), "the first step is reported at once"
        progress(2, 4, "listed more")  # within the interval: held back
        return "scanned"

    assert await run_tool(Recorder(), from_another_thread) == "scanned"  # type: ignore[arg-type]
    assert sent == [(1, 4, "listed")]


def _audit(index: int) -> CallRecord:
    return CallRecord(
        timestamp=datetime.now(UTC),
        user_id="anonymous",
        tool_name=f"tool-{index}",
        parameters={"index": index},
        result_summary={},
        duration_ms=1,
        status="success",
        error_message=None,
        client_id=None,
        ip_address=None,
        user_agent=None,
    )


def test_sqlite_writers_of_one_process_queue_instead_of_failing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    store.migrate()
    failures: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            for index in range(first, first + 50):
                store.record_call(_audit(index))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(first,)) for first in range(0, 400, 50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert failures == []
    reopened = SqliteStore(tmp_path / "audit.sqlite3")
    names = {log.tool_name for log in reopened.list_calls(limit=1000)}
    reopened.close()
    assert names == {f"tool-{index}" for index in range(400)}


def test_a_held_sqlite_write_lock_still_times_out(tmp_path: Path) -> None:
    dialect = SqliteDialect(tmp_path / "locked.sqlite3", busy_timeout_seconds=0.2)
    store = SqlStore(dialect)
    store.migrate()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with dialect.connection() as conn, dialect.transaction(conn):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        with pytest.raises(StoreError, match="locked"):
            store.record_call(_audit(1))
    finally:
        release.set()
        holder.join()
    store.record_call(_audit(2))  # free again; the refused write left nothing behind
    assert [log.tool_name for log in store.list_calls()] == ["tool-2"]
    store.close()

"""Slow, dead and throttling AWS endpoints, injected for real by a proxy in front of moto: every
answer comes within the call's deadline, says what it could not read and why, and throttling never
changes a result. Each test prints its figure."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from services.demo.aws import DemoAws
from services.demo.estate import REGIONS
from tag_compliance_mcp.server import build_server
from tests.faults.gateway_faults import SCAN_TYPES, proxied_runtime, stable, timed_check

pytestmark = pytest.mark.anyio
DEMO_REGIONS = list(REGIONS)
ALL_SHARDS = {(region, type_id) for region in DEMO_REGIONS for type_id in SCAN_TYPES}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def failed_by_shard(answer: dict) -> dict[tuple[str, str], str]:
    """Whole failed shards -> reason (single unreadable resources carry a resource_arn)."""
    return {
        (shard["region"], shard["resource_type"]): shard["reason"]
        for shard in answer["failed_shards"]
        if not shard.get("resource_arn")
    }


async def test_blackholed_endpoint_answers_by_the_deadline(
    demo_aws: DemoAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deadline = 8.0  # shorter than the 10 s read timeout: the deadline, not the breaker, ends the scan
    with proxied_runtime(demo_aws, tmp_path, monkeypatch, TOOL_DEADLINE_SECONDS=str(deadline)) as (
        runtime,
        proxy,
    ):
        async with Client(build_server(runtime)) as client:
            # The account is known before the endpoint dies (a scan within the deadline could not
            # be relied on here: on a loaded machine a full clean scan takes longer than 8 s).
            assert await anyio.to_thread.run_sync(lambda: runtime.service.clients.account_id)
            proxy.blackhole_regions = set(DEMO_REGIONS)
            seconds, answer = await timed_check(
                client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS, force_refresh=True
            )
    print(f"\nFIGURE black-holed endpoint: answered in {seconds:.1f} s (deadline {deadline:.0f} s)")
    assert seconds <= deadline + 2, f"answered in {seconds:.1f} s, past the {deadline} s deadline + 2 s"
    failed = failed_by_shard(answer)
    assert set(failed) == ALL_SHARDS, f"every shard is named as failed: {failed}"
    assert set(failed.values()) <= {"deadline", "circuit_open"}, failed
    assert "deadline" in failed.values()
    # Nothing unread is counted: no score, nothing compliant.
    assert answer["compliance_score"] is None and answer["compliant_resources"] == 0
    assert answer["cached"] is False


async def test_one_region_blackholed_breaker_fails_it_fast(
    demo_aws: DemoAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default deadline (25 s): the region's circuit opens after its requests time out; the other
    regions are counted exactly as in the clean run, and the next call fails the region at once."""
    dead = DEMO_REGIONS[-1]
    with proxied_runtime(demo_aws, tmp_path, monkeypatch) as (runtime, proxy):
        deadline = runtime.settings.tool_deadline_seconds
        async with Client(build_server(runtime)) as client:
            _, clean = await timed_check(client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS)
            proxy.blackhole_regions = {dead}
            seconds, answer = await timed_check(
                client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS, force_refresh=True
            )
            again, second = await timed_check(
                client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS, force_refresh=True
            )
    print(
        f"\nFIGURE one region black-holed: answered in {seconds:.1f} s (deadline {deadline:.0f} s); "
        f"next call with the circuit open: {again:.1f} s"
    )
    assert seconds <= deadline + 2, f"answered in {seconds:.1f} s"
    failed = failed_by_shard(answer)
    assert set(failed) == {(dead, type_id) for type_id in SCAN_TYPES}, failed
    assert set(failed.values()) == {"circuit_open"}, failed
    for region in DEMO_REGIONS[:-1]:
        assert answer["by_region"][region] == clean["by_region"][region], region
    assert dead not in answer["by_region"]
    assert set(failed_by_shard(second).values()) == {"circuit_open"}
    assert again < 3, f"an open circuit fails its region at once, not after {again:.1f} s"


async def test_connection_refused_fails_fast_naming_shards(
    demo_aws: DemoAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with proxied_runtime(demo_aws, tmp_path, monkeypatch) as (runtime, proxy):
        async with Client(build_server(runtime)) as client:
            await timed_check(client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS)
            proxy.stop()  # the listener is closed: every connection is refused (ECONNREFUSED)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
            seconds, answer = await timed_check(
                client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS, force_refresh=True
            )
    print(f"\nFIGURE connection refused: answered in {seconds:.1f} s")
    assert seconds < 10, f"refused connections must fail fast, took {seconds:.1f} s"
    failed = failed_by_shard(answer)
    assert set(failed) == ALL_SHARDS, failed
    assert set(failed.values()) <= {"error", "circuit_open"}, failed
    errors = " ".join(shard["error"] for shard in answer["failed_shards"])
    assert "Could not connect" in errors or "unreachable" in errors, errors
    assert answer["compliance_score"] is None


async def test_half_throttled_answers_identical_to_clean_run(
    demo_aws: DemoAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    types = ["all"]
    with proxied_runtime(demo_aws, tmp_path, monkeypatch) as (runtime, proxy):
        async with Client(build_server(runtime)) as client:
            clean_seconds, clean = await timed_check(client, resource_types=types, regions=DEMO_REGIONS)
            forwarded_clean = proxy.count("forwarded")
            proxy.throttle_half = True
            started = time.monotonic()
            seconds, throttled = await timed_check(
                client, resource_types=types, regions=DEMO_REGIONS, force_refresh=True
            )
            elapsed = time.monotonic() - started
    throttles, forwarded = proxy.count("throttled"), proxy.count("forwarded") - forwarded_clean
    print(
        f"\nFIGURE 50% ThrottlingException: {throttles} of {throttles + forwarded} answers throttled; "
        f"scan {seconds:.1f} s (clean {clean_seconds:.1f} s); results identical: "
        f"{stable(throttled) == stable(clean)}"
    )
    assert throttles >= forwarded > 0, (throttles, forwarded)
    assert clean["failed_shards"] == [] and clean["total_resources"] > 300
    assert stable(throttled) == stable(clean)
    assert elapsed <= runtime.settings.tool_deadline_seconds + 2


def scan_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("scan")]


async def test_client_cancellation_stops_the_scan(
    demo_aws: DemoAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client gives up (its read timeout sends notifications/cancelled): shards not started are
    never started, and the scan's threads end within one read timeout, not minutes later."""
    with proxied_runtime(demo_aws, tmp_path, monkeypatch, SCAN_MAX_WORKERS="2") as (runtime, proxy):
        async with Client(build_server(runtime)) as client:
            await timed_check(client, resource_types=SCAN_TYPES, regions=DEMO_REGIONS)
            snapshots_before = len(runtime.store.list_snapshots())
            proxy.blackhole_regions = set(DEMO_REGIONS)
            sent_before = proxy.count("requests")
            with pytest.raises(Exception, match=r"(?i)timed out|timeout|cancel"):
                await client.call_tool(
                    "check_tag_compliance",
                    {"resource_types": SCAN_TYPES, "regions": DEMO_REGIONS, "force_refresh": True},
                    read_timeout_seconds=1.5,
                )
            cancelled_at = time.monotonic()
            await anyio.sleep(1.0)
            sent_after_cancel = proxy.count("requests") - sent_before
            while scan_threads() and time.monotonic() - cancelled_at < 15:
                await anyio.sleep(0.2)
            threads_gone = time.monotonic() - cancelled_at
            sent_total = proxy.count("requests") - sent_before
            assert len(runtime.store.list_snapshots()) == snapshots_before, "a cancelled scan stores nothing"
    print(
        f"\nFIGURE cancellation: {sent_total} requests sent for 9 shard tasks with 2 workers; "
        f"scan threads gone {threads_gone:.1f} s after the cancel"
    )
    assert sent_total == sent_after_cancel <= 2, "no request is sent after the cancellation"
    assert not scan_threads(), f"scan threads still running: {scan_threads()}"
    assert threads_gone <= 12, f"threads ran {threads_gone:.1f} s past the cancellation"

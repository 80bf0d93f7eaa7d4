"""Issue 15: PostgreSQL killed and restarted mid-load (through a TCP proxy), with the gateway as a
real process. Figures: call-log rows lost across the outage (asserted 0, and no duplicates); a
writing call during it fails closed; readiness answers fast with 503, then ok again.

The shared PostgreSQL server itself is never stopped: the proxy in front of it refuses new
connections and resets the open ones, which is what a stopped server looks like to the gateway.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import anyio.to_thread
import psycopg
import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tests.conftest import fresh_postgres_database
from tests.faults.outage_helpers import Gateway, Load, go_down, running_gateway
from tests.faults.tcpproxy import TCPProxy

pytestmark = pytest.mark.anyio
OUTAGE_SECONDS = 14.0
SCHEDULE = {
    "schedule": "daily",
    "time": "09:00",
    "timezone": "UTC",
    "resource_types": ["sqs:queue"],
    "regions": ["us-east-1"],
    "recipients": ["finops-team@example.com"],
}


def call_log_rows(url: str) -> dict[str, tuple[int, int]]:
    """tool -> (rows, distinct call ids), read directly from the database."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tool_name, COUNT(*), COUNT(DISTINCT call_id) FROM call_log GROUP BY tool_name"
        ).fetchall()
    return {tool: (count, distinct) for tool, count, distinct in rows}


async def wait_for_empty_spool(gateway: Gateway, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        _, body, _ = await anyio.to_thread.run_sync(gateway.health)
        if body["call_log"]["spooled_rows"] == 0 and body["status"] == "ok":  # type: ignore[index]
            return body
        assert time.monotonic() < deadline, f"the spool was not replayed: {body}"
        await anyio.sleep(0.5)


async def test_call_log_rows_survive_a_database_outage(demo_aws: DemoAws, tmp_path: Path) -> None:
    with fresh_postgres_database() as url, TCPProxy("127.0.0.1", 5432) as proxy:
        proxied = url.replace("127.0.0.1:5432", proxy.address, 1)
        assert proxied != url
        with running_gateway(demo_aws, tmp_path, DATABASE_URL=proxied) as gateway:
            load = Load(gateway.mcp_url, "get_tagging_policy", {})
            async with anyio.create_task_group() as group:
                group.start_soon(load.run)
                await load.wait_for_answers(8, seconds=60)
                assert not load.errors, load.errors[:3]

                go_down(proxy)
                outage_started = time.monotonic()
                await anyio.sleep(2)
                async with Client(gateway.mcp_url) as writer:
                    refused = await writer.call_tool("schedule_compliance_audit", SCHEDULE)
                refusal = " ".join(getattr(block, "text", "") for block in refused.content)
                assert refused.is_error and "call log cannot be written" in refusal, refusal
                status, ready, took = await anyio.to_thread.run_sync(gateway.health, "/health/ready")
                # Figure: readiness during the outage answers in well under a second, with 503.
                assert (status, ready["status"]) == (503, "unavailable") and took < 3.0, (status, ready, took)
                await anyio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
                outage_ended = time.monotonic()
                proxy.set_mode("forward")
                await anyio.sleep(3)
                load.stop()

            during = [t for sent, t in load.answer_times if outage_started <= sent < outage_ended]
            assert during, "no call answered during the outage"
            assert not load.errors, load.errors[:3]  # a read-only call still answers, without error
            await wait_for_empty_spool(gateway, 60)

        rows = call_log_rows(url)
    # Figure: call-log rows lost across the outage = calls answered - rows stored; duplicates too.
    policy_rows, distinct = rows.get("get_tagging_policy", (0, 0))
    lost = load.answered - policy_rows
    print(
        f"\nfigure: {load.answered} calls ({len(during)} answered during a {OUTAGE_SECONDS:.0f} s database "
        f"outage, slowest {max(during):.1f} s): call-log rows lost {lost}, duplicates {policy_rows - distinct}"
    )
    assert load.sent == load.answered
    assert lost == 0 and policy_rows == distinct
    assert rows.get("schedule_compliance_audit") == (1, 1)  # the refused writing call is logged too

"""Issue 15: Redis killed and restarted mid-load (through a TCP proxy), with the gateway as a real
process. Figures: answers during the outage (all of them, no errors), answers served from the
in-memory cache meanwhile (no re-scan on every call), /health degraded with the reason, then ok.

The shared Redis server itself is never stopped: the proxy refuses new connections and resets the
open ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tests.faults.outage_helpers import Gateway, Load, go_down, running_gateway
from tests.faults.tcpproxy import TCPProxy

pytestmark = pytest.mark.anyio
CHECK = {"resource_types": ["sns:topic"], "regions": ["us-east-1"]}
REDIS_DB = 13  # the shared server: keys expire with their TTL, nothing is flushed


async def health_until(gateway: Gateway, status: str, seconds: float) -> tuple[dict[str, object], float]:
    started = time.monotonic()
    while True:
        _, body, _ = await anyio.to_thread.run_sync(gateway.health)
        if body["status"] == status:
            return body, time.monotonic() - started
        assert time.monotonic() - started < seconds, f"/health stayed {body['status']}: {body}"
        await anyio.sleep(0.5)


async def test_redis_outage_degrades_to_the_memory_cache_and_recovers(
    demo_aws: DemoAws, tmp_path: Path
) -> None:
    with TCPProxy("127.0.0.1", 6379) as proxy:
        redis_url = f"redis://{proxy.address}/{REDIS_DB}"
        with running_gateway(demo_aws, tmp_path, REDIS_URL=redis_url) as gateway:
            body, _ = await health_until(gateway, "ok", 10)
            assert body["cache"]["backend"] == "redis"  # type: ignore[index]
            load = Load(gateway.mcp_url, "check_tag_compliance", CHECK, clients=2)
            async with anyio.create_task_group() as group:
                group.start_soon(load.run)
                await load.wait_for_answers(6, seconds=60)

                go_down(proxy)
                outage_started = time.monotonic()
                await load.wait_for_answers(6, seconds=30)  # answers keep coming
                degraded, _ = await health_until(gateway, "degraded", 10)
                reason = " ".join(degraded["reasons"])  # type: ignore[arg-type]
                assert "Redis" in reason and "in-memory" in reason and "password" not in reason
                async with Client(gateway.mcp_url) as client:
                    # The in-memory cache answers while Redis is away: no re-scan on every call.
                    await client.call_tool("check_tag_compliance", CHECK)
                    again = await client.call_tool("check_tag_compliance", CHECK)
                assert again.structured_content is not None and again.structured_content["cached"] is True
                outage_ended = time.monotonic()

                proxy.set_mode("forward")
                _, recovered_after = await health_until(gateway, "ok", 45)
                await load.wait_for_answers(4, seconds=30)
                load.stop()

    during = [t for sent, t in load.answer_times if outage_started <= sent < outage_ended]
    print(
        f"\nfigure: Redis outage of {outage_ended - outage_started:.1f} s: {len(during)} answers during it "
        f"(slowest {max(during):.2f} s), errors {len(load.errors)}; /health ok again {recovered_after:.1f} s "
        "after Redis came back"
    )
    assert during and not load.errors, load.errors[:3]
    assert load.sent == load.answered

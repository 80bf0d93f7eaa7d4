"""Resilience figures: how long an answer takes with one region's AWS endpoint dead, and how long the
gateway takes to exit after SIGTERM while calls are stuck on it.

Both run a real gateway process (streamable HTTP, official ``mcp`` clients) on the demo estate,
reaching AWS only through the fault suite's ``AwsFaultProxy`` (``tests/faults/awsproxy.py``, so the
faults are the ones the tests inject): requests for the black-holed region are read and never
answered, as a dead regional endpoint or a stuck load balancer would.

- Figure 7: ``check_tag_compliance`` over every type in the demo's three regions, one of them
  black-holed: seconds to the answer (target: ``TOOL_DEADLINE_SECONDS`` + 2 s), and which shards the
  answer names as failed and why.
- Figure 8: ``sessions`` clients each start such a scan of the dead region; once they are all stuck
  the gateway gets SIGTERM: seconds until the process has exited (target <= 10 s; the ECS stop
  timeout is 15 s), and how many of the calls were answered before it did.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mcp import Client

from .common import figure

EXIT_TARGET_SECONDS = 10.0
LOAD_TYPES = ["ec2:instance", "s3:bucket"]  # small enough that no session is asked to confirm


def run(demo: Any | None = None, sessions: int = 4) -> dict[str, Any]:
    from services.demo.aws import start_demo_aws
    from tag_compliance_mcp.settings import GatewaySettings
    from tests.faults.awsproxy import AwsFaultProxy
    from tests.faults.gateway_process import (
        free_port,
        gateway_environment,
        sigterm_exit_seconds,
        start_http_gateway,
        stop,
    )

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    regions = list(demo.regions)
    dead = regions[-1]  # the home region (STS, the first) stays reachable
    deadline = GatewaySettings.model_fields["tool_deadline_seconds"].default
    target = urlparse(demo.endpoint_url)
    details: dict[str, Any] = {"regions": regions, "black_holed_region": dead, "sessions": sessions}
    try:
        with (
            AwsFaultProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy,
            tempfile.TemporaryDirectory() as scratch,
        ):
            proxy.blackhole_regions = {dead}

            def gateway() -> tuple[Any, int]:
                """A fresh gateway process (its own data directory) and its port."""
                data_dir = Path(tempfile.mkdtemp(dir=scratch))
                environment = gateway_environment(demo.environment, proxy.endpoint_url, regions, data_dir)
                port = free_port()
                return start_http_gateway(environment, port), port

            process, port = gateway()
            try:
                answer_seconds, failed = asyncio.run(_one_region_dead(port, regions))
            finally:
                stop(process)
            details["answer"] = {"seconds": round(answer_seconds, 2), "failed_shards": failed}
            process, port = gateway()
            try:
                exit_seconds, outcomes = asyncio.run(
                    _sigterm_under_load(port, dead, sessions, proxy, process, sigterm_exit_seconds)
                )
            finally:
                stop(process)
            details["sigterm"] = {
                "exit_seconds": round(exit_seconds, 2),
                "call_outcomes": outcomes,
                "exit_code": process.returncode,
            }
    finally:
        if own:
            demo.stop()
    reasons = sorted({shard["reason"] for shard in details["answer"]["failed_shards"]})
    answered = sum(1 for outcome in outcomes if outcome.startswith("answered"))
    return {
        "name": "resilience",
        "figures": [
            figure(
                f"answer time, one of {len(regions)} regions black-holed (all types)",
                round(answer_seconds, 2),
                "s",
                op="<=",
                target=deadline + 2,
                reason="the scan did not stop at its deadline",
                to_close="find the wait in the scan that ignores the call budget (tagcompliance.resilience)",
                note=f"failed shards: {len(details['answer']['failed_shards'])} in {dead}, reasons {reasons}",
            ),
            figure(
                f"exit time after SIGTERM, {sessions} calls stuck on a dead region",
                round(exit_seconds, 2),
                "s",
                op="<=",
                target=EXIT_TARGET_SECONDS,
                reason="the gateway waited for work past its grace period",
                to_close="lower SHUTDOWN_GRACE_SECONDS or find what the shutdown waits on (server log)",
                note=f"{answered} of {sessions} calls answered before the exit; exit code "
                f"{process.returncode}",
            ),
        ],
        "details": details,
    }


async def _check(client: Client, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("check_tag_compliance", arguments)
    answer = result.structured_content or {}
    if answer.get("safety") == "intent_commit":  # confirmed as a user would
        result = await client.call_tool(
            "check_tag_compliance", {**arguments, "confirmation_token": answer["confirmation_token"]}
        )
        answer = result.structured_content or {}
    if result.is_error:
        raise RuntimeError(f"check failed: {result.content}")
    return answer


async def _one_region_dead(port: int, regions: list[str]) -> tuple[float, list[dict[str, Any]]]:
    async with Client(f"http://127.0.0.1:{port}/mcp") as client:
        await client.list_tools()
        started = time.monotonic()
        answer = await _check(client, {"resource_types": ["all"], "regions": regions, "page_size": 1})
        seconds = time.monotonic() - started
    failed = [
        {"region": s["region"], "resource_type": s["resource_type"], "reason": s["reason"]}
        for s in answer["failed_shards"]
    ]
    return seconds, failed


async def _sigterm_under_load(
    port: int, dead: str, sessions: int, proxy: Any, process: Any, sigterm_exit_seconds: Any
) -> tuple[float, list[str]]:
    """Seconds from SIGTERM to the exit with ``sessions`` calls in flight, and each call's outcome."""
    outcomes: list[str] = []
    connected = 0

    async def scan() -> None:
        nonlocal connected
        outcome = ""
        try:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await client.list_tools()  # the result check lists tools once: before the server goes
                connected += 1
                arguments = {"resource_types": LOAD_TYPES, "regions": [dead], "force_refresh": True}
                answer = await _check(client, arguments)
                reasons = sorted({shard["reason"] for shard in answer["failed_shards"]})
                outcome = "answered, failed shards' reasons: " + ",".join(reasons)
        except Exception as error:  # closing the session after the server exited, or a call it cut
            outcome = outcome or f"error: {error!r}"[:300]
        outcomes.append(outcome)

    tasks = [asyncio.create_task(scan()) for _ in range(sessions)]
    stuck_by = time.monotonic() + 30
    # Every session's call is in flight once the dead region holds a request of each.
    while (connected < sessions or proxy.count("blackholed") < sessions) and time.monotonic() < stuck_by:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    seconds = await asyncio.to_thread(sigterm_exit_seconds, process)
    await asyncio.wait(tasks, timeout=5)
    for task in tasks:
        task.cancel()
    return seconds, outcomes

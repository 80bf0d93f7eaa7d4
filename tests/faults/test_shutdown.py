"""SIGTERM on a real gateway process in the middle of a scan stuck on dead AWS endpoints: it stops
accepting, the scan answers with what it has (reason ``shutdown``) within the grace period, and the
process exits well within the ECS stop timeout. Each test prints its figure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import anyio
import httpx2 as httpx
import pytest
from mcp import Client
from mcp.types import LATEST_PROTOCOL_VERSION

from services.demo.aws import DemoAws
from services.demo.estate import REGIONS
from tag_compliance_mcp.settings import GatewaySettings
from tests.faults.awsproxy import AwsFaultProxy
from tests.faults.gateway_process import (
    REPO_ROOT,
    free_port,
    gateway_environment,
    sigterm_exit_seconds,
    start_http_gateway,
    stop,
)

pytestmark = pytest.mark.anyio
# The home region (STS) stays reachable; the scanned regions are dead.
DEAD_REGIONS = list(REGIONS)[1:]
TYPES = ["ec2:instance", "s3:bucket"]
EXIT_TARGET_SECONDS = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def proxy(demo_aws: DemoAws) -> AwsFaultProxy:
    target = urlparse(demo_aws.endpoint_url)
    with AwsFaultProxy(target.hostname or "127.0.0.1", target.port or 80) as running:
        running.blackhole_regions = set(DEAD_REGIONS)
        yield running


async def test_sigterm_mid_scan_http(demo_aws: DemoAws, proxy: AwsFaultProxy, tmp_path: Path) -> None:
    grace = GatewaySettings.model_fields["shutdown_grace_seconds"].default
    port = free_port()
    environment = gateway_environment(demo_aws.environment, proxy.endpoint_url, list(REGIONS), tmp_path)
    process = start_http_gateway(environment, port)
    answers: list[dict] = []
    timing: list[float] = []
    try:
        try:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                # The client checks a result against the tool's output schema, listing the tools the
                # first time: listed now, since after the answer the server is gone.
                await client.list_tools()

                async def scan() -> None:
                    try:
                        result = await client.call_tool(
                            "check_tag_compliance", {"resource_types": TYPES, "regions": DEAD_REGIONS}
                        )
                    except Exception as error:  # reported by the assertion below
                        answers.append({"is_error": True, "exception": repr(error)})
                        return
                    answers.append({"is_error": result.is_error, **(result.structured_content or {})})

                async with anyio.create_task_group() as group:
                    group.start_soon(scan)
                    while proxy.count("blackholed") < 2:  # the scan is stuck on the dead regions
                        await anyio.sleep(0.1)
                    timing.append(await anyio.to_thread.run_sync(sigterm_exit_seconds, process))
                    with anyio.move_on_after(5):
                        while not answers:
                            await anyio.sleep(0.1)
                    group.cancel_scope.cancel()
        except Exception:  # the client's closing of its session: the server has exited, as intended
            if not timing:
                raise
        seconds = timing[0]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        stop(process)
    log = process.stderr.read().decode() if process.stderr else ""
    print(f"\nFIGURE SIGTERM mid-scan (HTTP): exited in {seconds:.1f} s (grace {grace:.0f} s)")
    assert process.returncode == 0, log[-2000:]
    assert seconds <= EXIT_TARGET_SECONDS, f"exit took {seconds:.1f} s"
    # The in-flight call was answered with what it had, each unfinished shard saying why.
    assert answers and not answers[0]["is_error"], (answers, log[-2000:])
    reasons = {shard["reason"] for shard in answers[0]["failed_shards"]}
    assert reasons == {"shutdown"}, answers[0]["failed_shards"]


async def test_sigterm_mid_call_stdio(demo_aws: DemoAws, proxy: AwsFaultProxy, tmp_path: Path) -> None:
    environment = gateway_environment(demo_aws.environment, proxy.endpoint_url, list(REGIONS), tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "tag_compliance_mcp", "--transport", "stdio"],
        env=environment,
        cwd=str(REPO_ROOT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        messages = [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": LATEST_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "fault-test", "version": "1"},
                },
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "check_tag_compliance",
                    "arguments": {"resource_types": TYPES, "regions": DEAD_REGIONS},
                },
            },
        ]
        process.stdin.write(json.dumps(messages[0]).encode() + b"\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1  # initialized: the server is up
        for message in messages[1:]:
            process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while proxy.count("blackholed") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.count("blackholed") >= 2, "the call never reached the dead regions"
        seconds = sigterm_exit_seconds(process)
    finally:
        stop(process)
    print(f"\nFIGURE SIGTERM mid-call (stdio): exited in {seconds:.1f} s")
    assert seconds <= 2, f"stdio exit took {seconds:.1f} s"

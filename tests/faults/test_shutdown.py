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


async def test_http_disconnect_stops_the_scan(
    demo_aws: DemoAws, proxy: AwsFaultProxy, tmp_path: Path
) -> None:
    """The client's connection drops mid-call (no cancellation message): the server cancels the
    call, so shards not started are never started and no request is retried after the drop."""
    port = free_port()
    environment = gateway_environment(
        demo_aws.environment, proxy.endpoint_url, list(REGIONS), tmp_path, SCAN_MAX_WORKERS="2"
    )
    process = start_http_gateway(environment, port)
    # What the official client sends for a call (mcp 2.x's per-request envelope and routing headers),
    # written out so that the connection can be dropped without a cancellation message.
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": LATEST_PROTOCOL_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
            "name": "check_tag_compliance",
            "arguments": {"resource_types": TYPES, "regions": DEAD_REGIONS},
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "check_tag_compliance",
    }
    try:
        async with httpx.AsyncClient(timeout=60) as http:

            async def post() -> None:
                await http.post(f"http://127.0.0.1:{port}/mcp", json=call, headers=headers)

            async with anyio.create_task_group() as group:
                group.start_soon(post)
                with anyio.fail_after(30):
                    while proxy.count("blackholed") < 2:  # both workers stuck on a dead region
                        await anyio.sleep(0.1)
                group.cancel_scope.cancel()  # closes the connection without a word
        sent_at_drop = proxy.count("requests")
        # Without the cancellation each worker would retry its shard after the 10 s read timeout and
        # then start the next of the 4 shards: watch for longer than that.
        await anyio.sleep(14)
        sent_after = proxy.count("requests") - sent_at_drop
        alive = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code
    finally:
        stop(process)
    print(f"\nFIGURE HTTP disconnect: {sent_after} AWS requests sent in the 14 s after the client dropped")
    assert alive == 200, "the gateway survives a client that drops"
    assert sent_after == 0, f"{sent_after} requests were sent after the client dropped the connection"

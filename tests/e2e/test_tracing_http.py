"""The HTTP gateway as a real process with tracing on: a tool call's AWS calls arrive at the X-Ray
daemon (a UDP socket on loopback, read back here) inside that call's own request segment."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import free_port, stop_process
from services.demo.aws import DemoAws

from .helpers import REPO_ROOT, call
from .test_transports import gateway_environment

pytestmark = pytest.mark.anyio
TRACE_ID = "1-67891233-0123456789abcdef01234567"


def _segments(daemon: socket.socket) -> list[dict]:
    received = []
    daemon.settimeout(1)
    try:
        while True:
            received.append(json.loads(daemon.recv(65536).decode().split("\n", 1)[1]))
    except TimeoutError:
        return received


async def test_a_tool_calls_aws_calls_are_subsegments_of_its_own_request(
    aws_env: DemoAws, tmp_path: Path
) -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    port = free_port()
    environment = {
        **gateway_environment(aws_env, tmp_path),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tag_compliance_mcp", "--transport", "http", "--host", "127.0.0.1",
         "--port", str(port), "--allow-unauthenticated-loopback"],
        env=environment, cwd=str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"X-Amzn-Trace-Id": f"Root={TRACE_ID};Sampled=1"}
        transport = streamable_http_client(
            f"http://127.0.0.1:{port}/mcp", http_client=httpx.AsyncClient(headers=headers, timeout=60)
        )
        async with Client(transport) as client:
            result = await call(
                client, "check_tag_compliance", resource_types=["sns:topic"], regions=["us-east-1"]
            )
        assert result["total_resources"] >= 1
        segments = [s for s in _segments(daemon) if s["trace_id"] == TRACE_ID]
        with_aws = [
            s for s in segments if any(sub.get("namespace") == "aws" for sub in s.get("subsegments", []))
        ]
        # One request segment holds the scan's AWS calls: the tools/call request, sent once it ended.
        assert len(with_aws) == 1, [s.get("subsegments") for s in segments]
        (segment,) = with_aws
        assert segment["http"]["request"]["url"].endswith("/mcp")
        assert segment["http"]["response"]["status"] == 200
        services = {sub["name"] for sub in segment["subsegments"] if sub.get("namespace") == "aws"}
        assert {"sns", "tagging"} <= services, services  # the scan pool's calls too
    finally:
        daemon.close()
        stop_process(process, grace_seconds=10)

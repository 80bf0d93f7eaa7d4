"""The gateway over stdio and over streamable HTTP, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client, StdioServerParameters

from bench.common import free_port, stop_process
from services.demo.aws import DemoAws
from tagcompliance.store import SqliteStore

from .helpers import DEMO_REGIONS, POLICY_PATH, REPO_ROOT, call

pytestmark = pytest.mark.anyio


def gateway_environment(demo: DemoAws, data_dir: Path) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")
    }
    environment.update(demo.environment)
    environment.update(
        {
            "AWS_REGION": demo.regions[0],
            "SCAN_REGIONS": ",".join(demo.regions),
            "POLICY_PATH": str(POLICY_PATH),
            "DATA_DIR": str(data_dir),
        }
    )
    return environment


async def test_stdio(aws_env: DemoAws, tmp_path: Path) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tag_compliance_mcp", "--transport", "stdio"],
        env=gateway_environment(aws_env, tmp_path),
        cwd=str(REPO_ROOT),
    )
    async with Client(parameters) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"check_tag_compliance", "get_tagging_policy"} <= names
        result = await call(
            client, "check_tag_compliance", resource_types=["dynamodb:table"], regions=DEMO_REGIONS
        )
        expected = aws_env.estate.expected_summary(resource_types=["dynamodb:table"])
        assert result["total_resources"] == expected.total
        assert result["compliant_resources"] == expected.compliant


async def test_streamable_http_and_health(aws_env: DemoAws, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tag_compliance_mcp",
            "--transport",
            "http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--allow-unauthenticated-loopback",
        ],
        env=gateway_environment(aws_env, tmp_path),
        cwd=str(REPO_ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, (
            process.stderr.read().decode() if process.poll() is not None else "no answer"
        )
        assert health["status"] == "ok"
        assert health["auth"] == "none: unauthenticated loopback (explicitly allowed)"
        assert health["store"]["backend"] == "sqlite" and health["cache"]["backend"] == "memory"
        assert health["policy_source"].startswith("file ")
        assert health["scheduler"] == "local loop"
        assert health["version"]
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            result = await call(
                client, "check_tag_compliance", resource_types=["sns:topic"], regions=["us-east-1"]
            )
            expected = aws_env.estate.expected_summary(resource_types=["sns:topic"], regions=["us-east-1"])
            assert result["total_resources"] == expected.total
        store = SqliteStore(tmp_path / "tagcompliance.sqlite3")
        try:
            [entry] = store.list_calls(limit=1)
        finally:
            store.close()
        assert (entry.tool_name, entry.status, entry.ip_address) == (
            "check_tag_compliance",
            "success",
            "127.0.0.1",
        )
        assert entry.user_agent and entry.user_id == "anonymous"
    finally:
        stop_process(process, grace_seconds=10)


def test_http_refuses_non_loopback_without_auth(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tag_compliance_mcp", "--transport", "http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(REPO_ROOT),
    )
    assert completed.returncode == 2
    assert "refusing to serve HTTP on 0.0.0.0 without authentication" in completed.stderr


def test_http_loopback_without_auth_needs_explicit_opt_in(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AUTH_")}
    completed = subprocess.run(
        [sys.executable, "-m", "tag_compliance_mcp", "--transport", "http", "--host", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(REPO_ROOT),
        env=environment,
    )
    assert completed.returncode == 2
    assert "--allow-unauthenticated-loopback" in completed.stderr

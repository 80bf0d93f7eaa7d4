"""Fixtures of the remediation tests: a moto server in its own process (``aws_server.py``) with a
small estate in two regions, and the gateway on it through the official mcp client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mcp import Client

from bench.common import free_port
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tag_compliance_mcp.settings import GatewaySettings

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "policies" / "tagging_policy.json"
REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class FaultyAwsProcess:
    """The moto server process and its fault controls."""

    def __init__(self) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            **CREDENTIALS,
            "MOTO_PORT": str(self.port),
            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.remediation.aws_server", str(self.port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "ready", f"moto server did not start: {line!r}"
        self.endpoint_url = f"http://127.0.0.1:{self.port}"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.endpoint_url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def deny_writes(self, *regions: str) -> None:
        self._post("/_faults/deny-writes", {"regions": list(regions)})

    def throttle_writes(self, count: int) -> None:
        self._post("/_faults/throttle", {"count": count})

    def reset_counts(self) -> None:
        self._post("/_faults/reset-counts", {})

    def requests(self) -> dict[str, int]:
        with urllib.request.urlopen(self.endpoint_url + "/_faults/requests", timeout=30) as response:
            return dict(json.loads(response.read()))

    def reset(self) -> None:
        self._post("/moto-api/reset", {})
        self.deny_writes()
        self.throttle_writes(0)
        self.reset_counts()

    def client(self, service: str, region: str = REGIONS[0]) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def faulty_aws() -> Iterator[FaultyAwsProcess]:
    server = FaultyAwsProcess()
    try:
        yield server
    finally:
        server.stop()


def settings_for(endpoint_url: str, data_dir: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGIONS[0],
        "SCAN_REGIONS": ",".join(REGIONS),
        "POLICY_PATH": str(POLICY_PATH),
        "DATA_DIR": str(data_dir),
        "AUTO_IMPORT_AWS_POLICY": "false",
        "REMEDIATION_ENABLED": "true",
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
def aws(faulty_aws: FaultyAwsProcess, monkeypatch: pytest.MonkeyPatch) -> FaultyAwsProcess:
    """The server, emptied, with credentials in the environment as a user's shell has them."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGIONS[0])
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    faulty_aws.reset()
    return faulty_aws


@pytest.fixture
def runtime(aws: FaultyAwsProcess, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(settings_for(aws.endpoint_url, tmp_path), "memory")
    yield built
    built.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with Client(build_server(runtime)) as connected:
        yield connected


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")

"""What the store and cache outage tests share: the gateway as a real HTTP process whose database
or Redis is reached through a ``TCPProxy``, a steady load of tool calls, and its health as an
operator on the host sees it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
from mcp import Client

from bench.common import free_port, gateway_environment, stop_process
from services.demo.aws import DemoAws
from tests.faults.tcpproxy import TCPProxy

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gateway:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def health(self, path: str = "/health", timeout: float = 5.0) -> tuple[int, dict[str, Any], float]:
        """(status code, body, seconds taken) of a health request from loopback (operator details)."""
        started = time.monotonic()
        response = httpx.get(f"{self.base_url}{path}", timeout=timeout)
        return response.status_code, response.json(), time.monotonic() - started


@contextlib.contextmanager
def running_gateway(demo: DemoAws, data_dir: Path, **environment: str) -> Iterator[Gateway]:
    """The gateway over streamable HTTP on a free loopback port, stopped (by its PID) afterwards."""
    env = gateway_environment(demo, str(data_dir), **environment)
    port = free_port()
    log = data_dir / "gateway.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tag_compliance_mcp", "--transport", "http"),
                *("--host", "127.0.0.1", "--port", str(port), "--allow-unauthenticated-loopback"),
            ],
            env=env,
            cwd=str(REPO_ROOT),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not start: {log.read_text(errors='replace')[-3000:]}")
            try:
                if gateway.health("/health/live", timeout=1)[0] == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield gateway
    finally:
        stop_process(process)


def go_down(proxy: TCPProxy) -> None:
    """What a server that stopped looks like: new connections refused, open ones reset."""
    proxy.set_mode("refuse")
    proxy.cut()


@dataclass
class Load:
    """Tool calls sent by several clients in a loop until stopped; every answer is counted."""

    url: str
    tool: str
    arguments: dict[str, Any]
    clients: int = 4
    sent: int = 0
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    answer_times: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    _stop: bool = False

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            for _ in range(self.clients):
                group.start_soon(self._client_loop)

    def stop(self) -> None:
        self._stop = True

    async def wait_for_answers(self, count: int, seconds: float) -> None:
        """Until ``count`` more calls are answered (the clients connect first)."""
        target, deadline = self.answered + count, time.monotonic() + seconds
        while self.answered < target:
            assert time.monotonic() < deadline, f"only {self.answered} answers in {seconds} s"
            await anyio.sleep(0.1)

    async def _client_loop(self) -> None:
        async with Client(self.url) as client:
            while not self._stop:
                self.sent += 1
                started = time.monotonic()
                result = await client.call_tool(self.tool, self.arguments)
                self.answered += 1
                self.answer_times.append((started, time.monotonic() - started))
                if result.is_error:
                    self.errors.append(" ".join(getattr(block, "text", "") for block in result.content))
                await anyio.sleep(0.02)

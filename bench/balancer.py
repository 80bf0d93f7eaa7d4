"""Several gateway processes behind a real round-robin load balancer on loopback (HAProxy from
Debian's ``haproxy`` package; ``.ci/services.sh`` installs it).

The stand-in for the deployed shape (ECS tasks behind an ALB without stickiness): HAProxy balances
every request on its own (``balance roundrobin``, no cookie, no ``prefer-last-server``), adds
``X-Forwarded-For`` as an ALB does, and health-checks each process's ``/health``. Each gateway
process logs to its own file with uvicorn's access log on, so ``GatewayCluster.served`` tells which
process answered which request: the multi-process test and the benchmark read it to show that the
requests really were spread. Used by ``tests/e2e/test_load_balanced.py`` and ``bench/gateway.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .common import REPO_ROOT, free_port, stop_process

ACCESS_LINE = '"POST /mcp HTTP/1.1"'
START_SECONDS = 240.0  # three processes starting at once on a busy 2-core machine


def haproxy_binary() -> str:
    """The haproxy executable (in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise RuntimeError("HAProxy is not installed: run `make services` (.ci/services.sh installs it)")
    return found


@dataclass
class GatewayProcess:
    index: int
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def served(self, request_line: str = ACCESS_LINE) -> int:
        """Requests matching ``request_line`` (default: POSTs to /mcp) this process has answered so
        far, from its access log."""
        try:
            return self.log.read_text(errors="replace").count(request_line)
        except FileNotFoundError:
            return 0


@dataclass
class GatewayCluster:
    base: str  # the balancer, e.g. http://127.0.0.1:PORT
    gateways: list[GatewayProcess]
    haproxy: subprocess.Popen[bytes]
    haproxy_log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def served(self, request_line: str = ACCESS_LINE) -> list[int]:
        """Requests matching ``request_line`` each process has answered so far, in process order."""
        return [gateway.served(request_line) for gateway in self.gateways]


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A Redis server of its own on a free loopback port (the machine's ``redis-server``), stopped on
    exit: what the gateways share starts empty, whatever earlier runs left in the shared Redis."""
    import redis

    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    log = workdir / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            cwd=str(workdir),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis.from_url(url, socket_timeout=1) as client:
                    client.ping()
                break
            except redis.RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


def haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server gateway{index} 127.0.0.1:{backend} check inter 2s fall 3 rise 1"
        for index, backend in enumerate(backends)
    )
    # Long client/server timeouts: a tool call's answer streams its progress as server-sent events.
    # Health checks as lenient as the ALB's (5 s to answer, 3 failures): a gateway busy under load
    # answers /health late, and a 1 s check would take it out of service and answer 503 itself.
    # Every request is logged (haproxy.log) with the server that answered and its status.
    return f"""global
    maxconn 2048
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option forwardfor
    timeout connect 5s
    timeout client 180s
    timeout server 180s
    timeout check 5s

frontend mcp
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
{servers}
"""


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {START_SECONDS:.0f} s")
        time.sleep(0.2)


def _gateway(index: int, environment: dict[str, str], workdir: Path, log_level: str) -> GatewayProcess:
    port = free_port()
    data_dir = workdir / f"gateway{index}"  # each its own: nothing is shared through local files
    data_dir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"gateway{index}.log"
    arguments = ["--transport", "http", "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level]
    if not any(environment.get(name) for name in ("AUTH_IDP_ISSUER_URL", "AUTH_ISSUER_URL")):
        arguments.append("--allow-unauthenticated-loopback")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tag_compliance_mcp", *arguments],
            env={**environment, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"},
            cwd=str(REPO_ROOT),
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    return GatewayProcess(index, port, log, process)


@contextmanager
def balanced_gateways(
    count: int,
    environment: dict[str, str],
    workdir: Path,
    balancer_port: int | None = None,
    log_level: str = "INFO",
) -> Iterator[GatewayCluster]:
    """``count`` gateway processes (``python -m tag_compliance_mcp --transport http``, each with
    ``environment`` and its own DATA_DIR) behind HAProxy on ``balancer_port``; all stopped on exit.
    ``environment`` must share the store and cache (``DATABASE_URL``, ``REDIS_URL``) for the
    processes to be one gateway; with OAuth, its public URL is the balancer's."""
    binary = haproxy_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = balancer_port or free_port()
    with ExitStack() as stack:
        gateways: list[GatewayProcess] = []
        for index in range(count):
            gateway = _gateway(index, environment, workdir, log_level)
            stack.callback(stop_process, gateway.process)
            gateways.append(gateway)
        for gateway in gateways:
            health = f"http://127.0.0.1:{gateway.port}/health"
            _wait_healthy(health, gateway.process, gateway.log, f"gateway {gateway.index}")
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(port, [gateway.port for gateway in gateways]))
        haproxy_log = workdir / "haproxy.log"
        with haproxy_log.open("wb") as output:
            # -db: foreground, no daemon (stopped by its PID on exit).
            haproxy = subprocess.Popen(
                [binary, "-db", "-f", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        stack.callback(stop_process, haproxy)
        _wait_healthy(f"http://127.0.0.1:{port}/health", haproxy, haproxy_log, "HAProxy")
        # Every server must be up in HAProxy's view before round robin can spread over all of them.
        time.sleep(1.5)
        yield GatewayCluster(f"http://127.0.0.1:{port}", gateways, haproxy, haproxy_log)

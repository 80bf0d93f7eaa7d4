"""A real gateway process for the shutdown tests and the bench: started on the demo estate behind an
``AwsFaultProxy``, ready once ``/health`` answers (HTTP) or at once (stdio), stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "policies" / "tagging_policy.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gateway_environment(
    aws_environment: dict[str, str], endpoint_url: str, regions: list[str], data_dir: Path, **extra: str
) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(aws_environment)
    environment.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": regions[0],
            "SCAN_REGIONS": ",".join(regions),
            "POLICY_PATH": str(POLICY_PATH),
            "DATA_DIR": str(data_dir),
            **extra,
        }
    )
    return environment


def start_http_gateway(environment: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.mcp_gateway",
            "--transport",
            "http",
            "--port",
            str(port),
            "--allow-unauthenticated-loopback",
        ],
        env=environment,
        cwd=str(REPO_ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"gateway did not start: {process.stderr.read().decode() if process.stderr else ''}")


def sigterm_exit_seconds(process: subprocess.Popen[bytes], limit: float = 60.0) -> float:
    """Send SIGTERM and time the exit (``limit`` seconds at most; then it is killed)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        stop(process)
    return time.monotonic() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()

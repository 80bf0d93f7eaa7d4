"""A real gateway process for the shutdown tests and the bench: started on the demo estate behind an
``AwsFaultProxy``, ready once ``/health`` answers (HTTP) or at once (stdio), stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.common import POLICY_PATH, REPO_ROOT, free_port
from bench.gateway import start_gateway_process

__all__ = ["POLICY_PATH", "REPO_ROOT", "free_port"]  # re-exported for the fault tests


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
    """The HTTP gateway on loopback without auth, logging at INFO (its shutdown steps)."""
    return start_gateway_process(environment, port, log_level="INFO")


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

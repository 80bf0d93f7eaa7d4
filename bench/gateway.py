"""Gateway latency under load: concurrent MCP sessions over streamable HTTP on loopback.

The gateway runs as a subprocess (``python -m services.mcp_gateway --transport http``, SQLite and
the in-memory cache, the embedded defaults) against the seeded demo moto estate; one
``check_tag_compliance`` warms the cache. Then ``sessions`` official ``mcp`` clients, each its own
session, call cached ``check_tag_compliance`` and ``get_tagging_policy`` in turn for ``duration``
seconds. Every call's wall time is recorded at the client; a call is an error when it raises, when
the tool reports an error, or when a check is not served from the cache.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mcp import Client

from .common import POLICY_PATH, REPO_ROOT, figure, free_port, percentile

CHECK_ARGUMENTS = {"resource_types": ["all"]}


def _environment(demo: Any, data_dir: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(demo.environment)
    environment.update(
        {
            "AWS_REGION": demo.regions[0],
            "SCAN_REGIONS": ",".join(demo.regions),
            "POLICY_PATH": str(POLICY_PATH),
            "DATA_DIR": data_dir,
            "LOCAL_SCHEDULER_INTERVAL_SECONDS": "0",
        }
    )
    return environment


def _start_gateway(demo: Any, data_dir: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.mcp_gateway",
            "--transport",
            "http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            "--allow-unauthenticated-loopback",
        ],
        env=_environment(demo, data_dir),
        cwd=str(REPO_ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gateway did not answer /health within 60 s")


async def _session(url: str, deadline: float, latencies: list[float], errors: list[str], offset: int) -> None:
    try:
        async with Client(url) as client:
            turn = offset
            while time.monotonic() < deadline:
                tool, arguments = (
                    ("check_tag_compliance", CHECK_ARGUMENTS) if turn % 2 == 0 else ("get_tagging_policy", {})
                )
                turn += 1
                started = time.perf_counter()
                try:
                    result = await client.call_tool(tool, arguments)
                except Exception as error:  # a failed call is an error, the session goes on
                    errors.append(f"{tool}: {type(error).__name__}: {error}")
                    continue
                latencies.append(time.perf_counter() - started)
                if result.is_error:
                    errors.append(f"{tool}: tool error {result.content}")
                elif tool == "check_tag_compliance" and not (result.structured_content or {}).get("cached"):
                    errors.append("check_tag_compliance: not served from the cache")
    except Exception as error:
        errors.append(f"session: {type(error).__name__}: {error}")


async def _load(url: str, sessions: int, duration: float) -> tuple[list[float], list[str], float]:
    async with Client(url) as client:  # warm the cache: this one scans
        warm = await client.call_tool("check_tag_compliance", CHECK_ARGUMENTS)
        if warm.is_error:
            raise RuntimeError(f"warm-up check failed: {warm.content}")
    latencies: list[float] = []
    errors: list[str] = []
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(*(_session(url, deadline, latencies, errors, i) for i in range(sessions)))
    return latencies, errors, time.monotonic() - started


def run(duration: float = 60.0, sessions: int = 32, demo: Any | None = None) -> dict[str, Any]:
    from services.demo.aws import start_demo_aws

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            process = _start_gateway(demo, data_dir, port)
            url = f"http://127.0.0.1:{port}/mcp"
            try:
                # One session first (same calls): what a call costs without contention.
                single, single_errors, single_elapsed = asyncio.run(_load(url, 1, min(5.0, duration / 3)))
                latencies, errors, elapsed = asyncio.run(_load(url, sessions, duration))
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            audit_db = Path(data_dir) / "tagcompliance.sqlite3"
            audit_exists = audit_db.exists()
    finally:
        if own:
            demo.stop()
    if not latencies:
        raise RuntimeError(f"no call completed; errors: {errors[:5]}")
    p50, p95, p99 = (percentile(latencies, f) * 1000 for f in (0.50, 0.95, 0.99))
    calls = len(latencies) + len([e for e in errors if not e.startswith("check_tag_compliance: not served")])
    single_rate = len(single) / single_elapsed
    rate = len(latencies) / elapsed
    load_reason = (
        f"one session alone gets p50 {percentile(single, 0.5) * 1000:.0f} ms at {single_rate:.1f} calls/s; "
        f"{sessions} sessions get {rate:.1f} calls/s in all, so calls queue: the gateway is one Python "
        "process (one GIL) whose cached check reloads the snapshot's resource states from the store and "
        "re-evaluates them on every call, and this 2-core machine also runs the 32 clients"
    )
    load_fix = (
        "keep the evaluated page and counts of a cached snapshot in memory (so a cached check is a lookup), "
        "run several gateway workers behind one port, and measure the client on another machine"
    )
    return {
        "name": "4. Gateway latency under load",
        "figures": [
            figure("p50 latency", round(p50, 1), "ms", note=f"{sessions} sessions, {duration:g} s"),
            figure(
                "p95 latency",
                round(p95, 1),
                "ms",
                op="<",
                target=100,
                reason=load_reason,
                to_close=load_fix,
            ),
            figure(
                "p95 latency against the spec floor",
                round(p95, 1),
                "ms",
                op="<",
                target=1000,
                reason=load_reason,
                to_close=load_fix,
            ),
            figure(
                "p99 latency", round(p99, 1), "ms", op="<", target=250, reason=load_reason, to_close=load_fix
            ),
            figure("throughput", round(rate, 1), "calls/s"),
            figure(
                "p50 latency with 1 session (no contention)",
                round(percentile(single, 0.5) * 1000, 1),
                "ms",
                note=f"{single_rate:.1f} calls/s, {len(single_errors)} errors",
            ),
            figure(
                "errors",
                len(errors),
                "calls",
                op="<=",
                target=0,
                reason=f"first errors: {errors[:3]}",
                to_close="see the gateway's stderr and audit log for the failing calls",
            ),
        ],
        "details": {
            "sessions": sessions,
            "duration_s": round(elapsed, 2),
            "calls_completed": len(latencies),
            "calls": calls,
            "errors_sample": errors[:10],
            "audit_log_written": audit_exists,
        },
    }

"""Figures, targets and the results files shared by every benchmark."""

from __future__ import annotations

import json
import operator
import os
import platform
import socket
import statistics
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REPO_ROOT = Path(__file__).resolve().parents[1]
POLICY_PATH = REPO_ROOT / "policies" / "tagging_policy.json"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def figure(
    name: str,
    value: float | None,
    unit: str,
    *,
    op: str | None = None,
    target: float | None = None,
    reason: str = "",
    to_close: str = "",
    note: str = "",
) -> dict[str, Any]:
    """One measured figure. With a target it is PASS or MISS (a MISS carries why and what closes it);
    without one it is INFO; a None value is NOT MEASURED (``reason`` says why)."""
    entry: dict[str, Any] = {"name": name, "value": value, "unit": unit, "note": note}
    if op is not None:
        entry["target"] = f"{op} {target:g}"
    if value is None:
        entry["status"] = "NOT MEASURED"
        entry["reason"] = reason
        return entry
    if op is None:
        entry["status"] = "INFO"
        return entry
    assert target is not None
    passed = _COMPARE[op](value, target)
    entry["status"] = "PASS" if passed else "MISS"
    if not passed:
        entry["reason"] = reason or "below target"
        entry["to_close"] = to_close
    return entry


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set while the block runs, restored after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (fraction in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def min_median(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def gateway_environment(demo: Any, data_dir: str, **extra: str) -> dict[str, str]:
    """The environment of a gateway process on the demo estate (SQLite and the in-memory cache in
    ``data_dir``; no local scheduler), with ``extra`` variables (``DATABASE_URL``...) on top; also
    the fault suite's."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(demo.environment)
    environment.update(
        {
            "AWS_REGION": demo.regions[0],
            "SCAN_REGIONS": ",".join(demo.regions),
            "POLICY_PATH": str(POLICY_PATH),
            "DATA_DIR": data_dir,
            "LOCAL_SCHEDULER_INTERVAL_SECONDS": "0",
            **extra,
        }
    )
    return environment


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 20.0) -> None:
    """Stop a process this run started: SIGTERM, then SIGKILL if it has not exited within the grace."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _value_text(entry: dict[str, Any]) -> str:
    value = entry["value"]
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text} {entry['unit']}".strip()


def print_result(result: dict[str, Any]) -> None:
    print(f"\n== {result['name']} ==", flush=True)
    for entry in result["figures"]:
        target = entry.get("target", "")
        print(f"  [{entry['status']:>12}] {entry['name']}: {_value_text(entry)}  (target {target or 'none'})")
        if entry.get("note"):
            print(f"                 note: {entry['note']}")
        if entry["status"] in ("MISS", "NOT MEASURED", "ERROR"):
            print(f"                 reason: {entry.get('reason', '')}")
            if entry.get("to_close"):
                print(f"                 to close the gap: {entry['to_close']}")
    print(flush=True)


def write_results(results: list[dict[str, Any]], started: datetime, directory: Path = RESULTS_DIR) -> None:
    """``latest.json`` (everything) and ``latest.md`` (one table row per figure, then the misses)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "benchmarks": results,
    }
    (directory / "latest.json").write_text(
        json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8"
    )
    lines = [
        "# Benchmark results",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on Python {platform.python_version()}.",
        "",
        "| Benchmark | Figure | Value | Target | Status |",
        "|---|---|---|---|---|",
    ]
    misses = []
    for result in results:
        for entry in result["figures"]:
            lines.append(
                f"| {result['name']} | {entry['name']} | {_value_text(entry)} | "
                f"{entry.get('target', '')} | {entry['status']} |"
            )
            if entry["status"] in ("MISS", "NOT MEASURED", "ERROR"):
                misses.append((result["name"], entry))
    if misses:
        lines += ["", "## Misses and figures not measured", ""]
        for name, entry in misses:
            line = f"- **{name} / {entry['name']}** ({entry['status']}): {entry.get('reason', '')}"
            if entry.get("to_close"):
                line += f" To close the gap: {entry['to_close']}"
            lines.append(line)
    (directory / "latest.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

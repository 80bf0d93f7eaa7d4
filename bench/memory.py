"""Memory: peak RSS growth of a 1,000,000-violation CSV export and of a report over 100,000 resources.

Each measurement runs in a fresh child process (``python -m bench.memory export|report N``). Just
before the work the child resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) and notes
its RSS; growth = the peak (``VmHWM``) after the work minus that RSS. (``ru_maxrss`` is not used:
Linux carries it over from the parent across fork and exec, which hid all growth when the parent
was large.)

- export: ``export.export_violations`` writes N violations streamed from a generator to a file
  (the exporter's own memory).
- export via the service path: the synthetic resources that yield at least N violations are built
  first (the baseline includes them: the inventory exists before any export); then, as
  ``ComplianceService.export_violations`` does, they are evaluated and the violations streamed
  from ``Evaluation.iter_violations`` into the exporter, one at a time.
- report: N synthetic resources are built first (the baseline includes them); then evaluate, build
  the snapshot record, the summary, and write the Markdown report with every violation to a file,
  streamed from the evaluation as ``ComplianceService.compliance_report`` does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TARGET_MB = 150.0


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _start_window() -> tuple[float, str]:
    """Reset the kernel's peak-RSS mark and return (RSS now, method).

    ``ru_maxrss`` cannot be used: Linux carries it over from the parent across fork and exec, so a
    child of a large process would report the parent's peak. ``VmHWM`` belongs to this process's
    own address space, and writing 5 to ``clear_refs`` resets it to the current RSS.
    """
    if _STATUS.exists():
        try:
            _CLEAR_REFS.write_text("5")
            return _status_mb("VmRSS"), "VmHWM after clear_refs reset"
        except OSError:
            return _status_mb("VmHWM"), "VmHWM (no clear_refs reset: peak since exec)"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "ru_maxrss (no /proc)"


def _peak_mb() -> float:
    if _STATUS.exists():
        return _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _violations(count: int) -> Iterator[Any]:
    from tagcompliance.compliance import Violation

    kinds = ("missing_tag", "invalid_value", "invalid_format", "wrong_key_case")
    for index in range(count):
        kind = kinds[index % 4]
        yield Violation(
            f"arn:aws:ec2:us-east-1:123456789012:instance/i-{index:017x}",
            "ec2:instance",
            "us-east-1",
            kind,
            "CostCenter",
            None if kind == "missing_tag" else ("=cmd|x" if index % 97 == 0 else "CC-9999"),
            "error",
            "costcenter" if kind == "wrong_key_case" else None,
        )


def _child_export(count: int, service_path: bool) -> dict[str, Any]:
    from tagcompliance.export import export_violations

    resources: list[Any] = []
    if service_path:
        from bench.engine import TYPES, build_policy, synthetic_resources
        from tagcompliance.compliance import compile_policy, evaluate

        policy = build_policy()
        resources = synthetic_resources(count)  # about 1.2 violations each: enough for ``count``
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "violations.csv"
        before, method = _start_window()
        if service_path:
            evaluation = evaluate(resources, compile_policy(policy, TYPES))
            source = evaluation.iter_violations()
        else:
            source = _violations(count)
        with path.open("w", encoding="utf-8", newline="") as out:
            page = export_violations(source, out=out, columns=[*_COLUMNS], limit=count)
        after = _peak_mb()
        size = path.stat().st_size
    if page.rows_written != count:
        raise RuntimeError(f"export wrote {page.rows_written} rows, expected {count}")
    return {
        "before_mb": before,
        "after_mb": after,
        "rows": page.rows_written,
        "bytes": size,
        "method": method,
    }


_COLUMNS = (
    "resource_arn",
    "resource_type",
    "region",
    "account_id",
    "violation_type",
    "tag_key",
    "current_value",
)


def _child_report(count: int) -> dict[str, Any]:
    from bench.engine import build_policy, synthetic_resources
    from tagcompliance.compliance import compile_policy, evaluate
    from tagcompliance.inventory import Inventory, ShardOutcome
    from tagcompliance.reports import report_summary, write_markdown
    from tagcompliance.snapshots import build_snapshot

    policy = build_policy()
    resources = synthetic_resources(count)
    types = sorted({r.resource_type for r in resources})
    before, method = _start_window()
    inventory = Inventory(
        account_id="123456789012",
        regions=["us-east-1"],
        resource_types=types,
        resources=resources,
        shards=[ShardOutcome("us-east-1", t, "ok", 0, "listing") for t in types],
        scanned_at=datetime.now(UTC),
    )
    evaluation = evaluate(resources, compile_policy(policy, types))
    snapshot = build_snapshot(inventory, evaluation, policy)
    summary = report_summary(snapshot, evaluation.iter_violations())
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "report.md"
        with path.open("w", encoding="utf-8") as out:
            write_markdown(summary, evaluation.iter_violations(), out)
        size = path.stat().st_size
    after = _peak_mb()
    return {
        "before_mb": before,
        "after_mb": after,
        "resources": count,
        "violations": evaluation.violation_count,
        "bytes": size,
        "method": method,
    }


def _measure(kind: str, count: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory", kind, str(count)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(violations: int = 1_000_000, resources: int = 100_000) -> dict[str, Any]:
    from .common import figure

    streamed = _measure("export", violations)
    listed = _measure("export-service", violations)
    report = _measure("report", resources)

    def growth(result: dict[str, Any]) -> float:
        return round(result["after_mb"] - result["before_mb"], 1)

    return {
        "name": "5. Memory",
        "figures": [
            figure(
                f"CSV export of {violations:,} violations streamed to a file: peak RSS growth",
                growth(streamed),
                "MB",
                op="<",
                target=TARGET_MB,
                reason="the exporter holds rows instead of writing them one at a time",
                to_close="write each row as it is built (export.export_violations)",
            ),
            figure(
                f"CSV export of {violations:,} violations the service's way (evaluate, then stream "
                "from Evaluation.iter_violations): peak RSS growth",
                growth(listed),
                "MB",
                op="<",
                target=TARGET_MB,
                reason="the evaluation's compact findings (one entry per noncompliant resource) grew "
                "past the target",
                to_close="keep findings per distinct tag map only and the flagged resources as indexes",
                note="the path the export_violations_csv tool takes; baseline taken after the resources "
                "were built",
            ),
            figure(
                f"report over {resources:,} resources (evaluate, summary, Markdown file): peak RSS growth",
                growth(report),
                "MB",
                op="<",
                target=TARGET_MB,
                reason="the report path keeps more than the evaluation's compact findings",
                to_close="find what holds the rows (tracemalloc) and stream it",
                note=f"baseline taken after the resources were built; {report['method']}",
            ),
        ],
        "details": {"export_streamed": streamed, "export_service_path": listed, "report": report},
    }


def _main(argv: list[str]) -> int:
    kind, count = argv[0], int(argv[1])
    if kind == "export":
        result = _child_export(count, service_path=False)
    elif kind == "export-service":
        result = _child_export(count, service_path=True)
    elif kind == "report":
        result = _child_report(count)
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""Report and export files (tools ``generate_compliance_report`` and ``export_violations_csv``):
written streamed, inlined when small enough.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, TextIO

from tagcompliance.compliance import Violation
from tagcompliance.export import export_violations as write_violations_csv
from tagcompliance.inventory import ProgressCallback
from tagcompliance.models import ExportResult, ReportResult
from tagcompliance.reports import report_summary, write_json, write_markdown

from .paging import Severity, encode_cursor, page_start

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService

INLINE_REPORT_CHARS = 60_000  # what fits an LLM's context comfortably
INLINE_PREVIEW_CHARS = 8_000


def compliance_report(
    service: ComplianceService,
    format: Literal["json", "csv", "markdown"] = "markdown",
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    include_violations: bool = True,
    force_refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> ReportResult:
    observation = service.observe(resource_types, regions, force_refresh, progress, accounts=accounts)
    snapshot = observation.snapshot
    evaluation = observation.evaluate()
    summary = report_summary(snapshot, evaluation.iter_violations())
    listed = evaluation.iter_violations() if include_violations else None
    reports_dir = service.settings.data_dir / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    extension = {"json": "json", "csv": "csv", "markdown": "md"}[format]
    path = reports_dir / f"compliance-report-{snapshot.snapshot_id}.{extension}"
    # Streamed to a file, never held whole in memory; read back only when it is small enough to inline.
    temporary = path.with_suffix(f"{path.suffix}.{uuid.uuid4().hex[:8]}.part")
    with temporary.open("w", encoding="utf-8", newline="") as out:
        write_report(format, summary, listed, evaluation.iter_violations(), out)
    content: str | None = None
    if temporary.stat().st_size <= 4 * INLINE_REPORT_CHARS:  # UTF-8: at most 4 bytes a character
        with temporary.open(encoding="utf-8", newline="") as written:
            content = written.read()
        if len(content) > INLINE_REPORT_CHARS:
            content = None
    # The file is kept either way: an MCP client reads it as a resource instead of inline text.
    temporary.replace(path)  # never a half-written report under the final name
    if content is not None:
        return ReportResult(
            format=format,
            content=content,
            file_path=str(path),
            summary=summary,
            snapshot_id=snapshot.snapshot_id,
            failed_shards=observation.failed_shards,
        )
    with path.open(encoding="utf-8", newline="") as written:
        preview = written.read(INLINE_PREVIEW_CHARS)
    return ReportResult(
        format=format,
        content=preview,
        file_path=str(path),
        truncated=True,
        summary=summary,
        snapshot_id=snapshot.snapshot_id,
        failed_shards=observation.failed_shards,
    )


def export_violations(
    service: ComplianceService,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    severity: Severity = "all",
    violation_types: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    limit: int = 500,
    cursor: str | None = None,
    to_file: bool = False,
    force_refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    observation, offset, payload = page_start(
        service, "export", cursor, resource_types, regions, force_refresh, progress, accounts=accounts
    )
    if cursor:  # a cursor carries the filters of the export it continues
        severity = payload.get("v", "all")  # type: ignore[assignment]
        violation_types = payload.get("t")  # type: ignore[assignment]
        columns = payload.get("c")  # type: ignore[assignment]
    snapshot = observation.snapshot
    options = {
        "columns": columns,
        "severity": severity,
        "violation_types": violation_types,
        "policy": observation.policy,
        "account_id": snapshot.account_id,
    }
    evaluation = observation.evaluate()
    violations = evaluation.iter_violations()  # streamed: one Violation at a time, none kept
    if to_file:
        exports = service.settings.data_dir / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        path = exports / f"violations-{snapshot.snapshot_id}-{uuid.uuid4().hex[:8]}.csv"
        partial = path.with_suffix(".csv.part")
        with partial.open("w", encoding="utf-8", newline="") as out:
            page = write_violations_csv(violations, out=out, **options)  # type: ignore[arg-type]
        partial.replace(path)  # never a half-written export under the final name
        return ExportResult(
            **page.model_dump(),
            file_path=str(path),
            next_cursor=None,
            snapshot_id=snapshot.snapshot_id,
            failed_shards=observation.failed_shards,
        )
    page = write_violations_csv(violations, offset=offset, limit=limit, **options)  # type: ignore[arg-type]
    next_cursor = None
    if page.next_offset is not None:
        next_cursor = encode_cursor(
            {
                "k": "export",
                "s": snapshot.snapshot_id,
                "o": page.next_offset,
                "v": severity,
                "t": list(violation_types) if violation_types else None,
                "c": list(columns) if columns else None,
            }
        )
    return ExportResult(
        **page.model_dump(),
        next_cursor=next_cursor,
        snapshot_id=snapshot.snapshot_id,
        failed_shards=observation.failed_shards,
    )


def write_report(
    report_format: str,
    summary: dict[str, object],
    listed: Iterable[Violation] | None,
    violations: Iterable[Violation],
    out: TextIO,
) -> None:
    if report_format == "csv":  # the export's writer: RFC 4180, formula cells neutralised
        write_violations_csv(violations, out=out)
    elif report_format == "json":
        write_json(summary, listed, out)
    else:
        write_markdown(summary, listed, out)

"""Violations as CSV for spreadsheets and other tools: chosen columns, filters, pages, streamed.

The CSV follows RFC 4180: fields are quoted when they hold a comma, a quote or a line break, quotes
inside are doubled, and records end with CRLF (``\\r\\n``). A file given as ``out`` must be opened
with ``newline=""`` so Python does not translate those line endings.

Cells are neutralised against spreadsheet formula injection (CSV injection): a tag value is
anyone's text, and a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
run as a formula by Excel, LibreOffice and Google Sheets. Such a cell is written with a leading
single quote (``'=HYPERLINK(...)``), which spreadsheets show as text; the original value is the
cell without its first character.

Violations are streamed: one row at a time is built and written, so memory stays flat whatever the
count. A page is the rows ``offset .. offset + limit`` of the filtered stream; ``row_count``
counts every row that matches the filters, so a page says how many rows there are in all. Pages
are consistent only over the same ordered input (the violations of one snapshot).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TextIO

from pydantic import BaseModel, Field

from .compliance import VIOLATION_TYPES, Violation
from .errors import InvalidInputError
from .policy import TaggingPolicy
from .reports import VIOLATION_COLUMNS
from .resources import region_filter, resolve_resource_types

SeverityFilter = Literal["all", "errors_only", "warnings_only"]

# Every column an export may hold, with what it means (for the tool's documentation).
EXPORT_COLUMNS: dict[str, str] = {
    "resource_arn": "ARN of the resource.",
    "resource_type": "Resource type, e.g. ec2:instance.",
    "region": "AWS region of the resource.",
    "account_id": "AWS account of the resource (from its ARN; the scanned account for S3 buckets).",
    "violation_type": "missing_tag, wrong_key_case, invalid_value, invalid_format or prohibited_tag.",
    "tag_key": "The tag key the policy names.",
    "actual_key": "The key as found on the resource (for wrong_key_case).",
    "current_value": "The value found; empty when the tag is missing.",
    "severity": "error or warning.",
    "expected": "What the policy accepts for this tag.",
}
COLUMN_ALIASES: dict[str, str] = {"violation": "violation_type"}
DEFAULT_COLUMNS: tuple[str, ...] = VIOLATION_COLUMNS
LINE_TERMINATOR = "\r\n"  # RFC 4180
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_SEVERITIES: dict[str, frozenset[str] | None] = {
    "all": None,
    "errors_only": frozenset({"error"}),
    "warnings_only": frozenset({"warning"}),
}


class ExportPage(BaseModel):
    format: Literal["csv"] = "csv"
    columns: list[str] = Field(description="The header, in order (as requested: aliases kept).")
    row_count: int = Field(description="Rows matching the filters in all, over every page.")
    rows_by_account: dict[str, int] = Field(default_factory=dict, description="row_count per account.")
    rows_written: int = Field(description="Rows in this page (the header not counted).")
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null when this is the last.")
    data: str | None = Field(default=None, description="The CSV text, when no output stream was given.")


def neutralise(value: str) -> str:
    """The cell as text a spreadsheet will not evaluate (see the module's description)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def valid_columns_text() -> str:
    aliases = ", ".join(f"{alias} (= {name})" for alias, name in COLUMN_ALIASES.items())
    return f"{', '.join(EXPORT_COLUMNS)}; alias: {aliases}"


def resolve_columns(columns: Sequence[str] | None) -> list[tuple[str, str]]:
    """(header, column) pairs for the requested columns; the error names unknown ones and lists valid ones."""
    if columns is None:
        return [(name, name) for name in DEFAULT_COLUMNS]
    if isinstance(columns, str) or not list(columns):
        raise InvalidInputError(f"columns must be a non-empty list; valid columns: {valid_columns_text()}")
    unknown = [
        c for c in columns if not isinstance(c, str) or (c not in EXPORT_COLUMNS and c not in COLUMN_ALIASES)
    ]
    if unknown:
        raise InvalidInputError(
            f"unknown column(s): {', '.join(map(repr, unknown))}; valid columns: {valid_columns_text()}"
        )
    resolved = [(header, COLUMN_ALIASES.get(header, header)) for header in columns]
    seen: set[str] = set()
    repeated = []
    for header, name in resolved:
        if name in seen:
            repeated.append(header)
        seen.add(name)
    if repeated:
        raise InvalidInputError(f"column(s) listed more than once: {', '.join(map(repr, repeated))}")
    return resolved


def _violation_types(violation_types: Sequence[str] | None) -> frozenset[str] | None:
    values = list(violation_types or [])
    if not values:
        return None
    unknown = [value for value in values if value not in VIOLATION_TYPES]
    if unknown:
        raise InvalidInputError(
            f"unknown violation type(s): {', '.join(map(repr, unknown))}; "
            f"valid types: {', '.join(VIOLATION_TYPES)}"
        )
    return frozenset(values)


def _getter(
    column: str, policy: TaggingPolicy | None, account_id: str | None
) -> Callable[[Violation], str | None]:
    if column == "account_id":

        def account(v: Violation) -> str | None:
            parts = v.resource_arn.split(":", 5)
            return (parts[4] if len(parts) == 6 else "") or account_id

        return account
    if column == "expected":
        if policy is None:
            raise ValueError("the expected column needs the policy: pass policy=")
        cache: dict[tuple[str, str], str | None] = {}

        def expected(v: Violation) -> str | None:
            key = (v.tag_key, v.violation_type)
            if key not in cache:
                cache[key] = policy.expectation(v.tag_key, v.violation_type)
            return cache[key]

        return expected
    return lambda v: getattr(v, column)


def export_violations(
    violations: Iterable[Violation],
    *,
    columns: Sequence[str] | None = None,
    severity: SeverityFilter = "all",
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    violation_types: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
    out: TextIO | None = None,
    policy: TaggingPolicy | None = None,
    account_id: str | None = None,
    include_header: bool = True,
) -> ExportPage:
    """Write one page of the filtered violations as CSV to ``out`` (or return it as ``data``).

    Filters: ``severity`` (all, errors_only, warnings_only), ``resource_types``, ``regions`` and
    ``violation_types`` (None or [] keep everything; ``["all"]`` too for types and regions).
    ``columns`` defaults to resource_arn, resource_type, region, violation_type, tag_key,
    current_value, severity; ``expected`` needs ``policy``, and ``account_id`` falls back to the
    ``account_id`` argument for ARNs without one. Every argument is checked before anything is
    written. Without ``out`` a ``limit`` is required, so the returned text stays bounded.
    """
    resolved = resolve_columns(columns)
    if severity not in _SEVERITIES:
        raise InvalidInputError(f"severity must be one of {', '.join(_SEVERITIES)}, got {severity!r}")
    wanted_severities = _SEVERITIES[severity]
    values = list(resource_types or [])
    wanted_types = None if not values or values == ["all"] else frozenset(resolve_resource_types(values))
    wanted_regions = region_filter(regions)
    wanted_violations = _violation_types(violation_types)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a whole number of 0 or more, got {offset!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a whole number of at least 1, got {limit!r}")
    if out is None and limit is None:
        raise InvalidInputError("limit is required when the CSV is returned inline (no output stream)")
    getters = [_getter(name, policy, account_id) for _, name in resolved]
    account_of = _getter("account_id", policy, account_id)
    by_account: dict[str, int] = {}

    buffer = io.StringIO() if out is None else None
    stream = out if out is not None else buffer
    assert stream is not None
    writer = csv.writer(stream, lineterminator=LINE_TERMINATOR)
    if include_header:
        writer.writerow([header for header, _ in resolved])
    end = None if limit is None else offset + limit
    row_count = 0
    written = 0
    for violation in violations:
        if (
            (wanted_severities is not None and violation.severity not in wanted_severities)
            or (wanted_types is not None and violation.resource_type not in wanted_types)
            or (wanted_regions is not None and violation.region not in wanted_regions)
            or (wanted_violations is not None and violation.violation_type not in wanted_violations)
        ):
            continue
        if row_count >= offset and (end is None or row_count < end):
            writer.writerow([neutralise(str(value)) if (value := get(violation)) else "" for get in getters])
            written += 1
        row_count += 1
        account = account_of(violation) or ""
        by_account[account] = by_account.get(account, 0) + 1
    return ExportPage(
        columns=[header for header, _ in resolved],
        row_count=row_count,
        rows_by_account=dict(sorted(by_account.items(), key=lambda item: (-item[1], item[0]))),
        rows_written=written,
        offset=offset,
        next_offset=offset + written if offset + written < row_count else None,
        data=buffer.getvalue() if buffer is not None else None,
    )

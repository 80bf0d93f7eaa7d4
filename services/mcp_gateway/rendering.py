"""The text of every tool answer: what an LLM client puts into the conversation.

A tool answers twice: ``structured_content`` is the whole result model (full fidelity, for clients
and scripts that page), and one text block is what most clients show the model. That text leads with
the decision: the score and counts, what could not be read (``failed_shards``), the largest groups of
violations, at most ``MAX_EXAMPLES`` examples, and how to get the rest (a cursor, ``detail="full"``,
an export). Nothing is out of reach: ``detail="full"`` makes the text the whole answer as JSON.

Rendering lives here once for every tool (``sdk_adapter.request_tool`` calls ``answer``); a result type
without its own renderer gets JSON, with long lists cut when the caller can ask for ``detail="full"``.
Files the answer points at (reports, exports) also come as MCP resource links (``files.file_link``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any, Literal, NamedTuple

from mcp.types import CallToolResult, ResourceLink, TextContent
from pydantic import BaseModel

from tagcompliance.cost import CostAttributionGap
from tagcompliance.drift import DriftResult
from tagcompliance.models import (
    AccountCounts,
    ComplianceCheckResult,
    ExportResult,
    FailedShard,
    FindUntaggedResult,
    ReportResult,
    ScopeInfo,
    TypeCounts,
    UntaggedResource,
    ValidateResult,
    Violation,
    ViolationPattern,
)
from tagcompliance.suggest import TagSuggestions

from .files import file_link

Detail = Literal["summary", "full"]
MAX_EXAMPLES = 10  # example items in a summary
MAX_PATTERNS = 10  # groups of violations in a summary
MAX_LINE = 240  # one example line, cut beyond this
FULL_HINT = 'detail="full" gives this answer whole as JSON text'


def answer(result: BaseModel, detail: Detail | None) -> CallToolResult:
    """The tool result: ``result`` as structured content, its text, and links to the files it wrote.

    ``detail`` None: the tool has no ``detail`` argument, so its text is the whole answer (JSON)."""
    structured = result.model_dump(mode="json", by_alias=True)
    renderer = RENDERERS.get(type(result))
    if detail == "summary":
        text = renderer(result) if renderer is not None else as_json(structured, cut_lists=True)
    else:
        text = as_json(structured)
    links: list[ResourceLink] = [
        link for path in written_files(result) if (link := file_link(path)) is not None
    ]
    content: list[TextContent | ResourceLink] = [TextContent(type="text", text=text), *links]
    return CallToolResult(content=content, structured_content=structured)


def as_json(value: Any, cut_lists: bool = False) -> str:
    """Compact JSON; with ``cut_lists``, lists over ``MAX_EXAMPLES`` items keep that many and say so."""
    return json.dumps(_cut(value) if cut_lists else value, separators=(",", ":"), ensure_ascii=False)


def _cut(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    if isinstance(value, list):
        kept = [_cut(item) for item in value[:MAX_EXAMPLES]]
        if len(value) > MAX_EXAMPLES:
            kept.append(f"... {len(value) - MAX_EXAMPLES} more: {FULL_HINT}")
        return kept
    return value


def written_files(result: BaseModel) -> list[str]:
    path = getattr(result, "file_path", None)
    return [path] if isinstance(path, str) and path else []


# --- pieces shared by the renderers -------------------------------------------------------------


def percent(score: float | None) -> str:
    return "n/a" if score is None else f"{score * 100:.1f}%"


def line(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def joined(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ordered) or "none"


def breakdown(title: str, counts: dict[str, TypeCounts]) -> str:
    """One line per dimension: ``name compliant/total (violations)``, the worst share first."""
    if not counts:
        return f"{title}: none"
    ordered = sorted(
        counts.items(), key=lambda item: (item[1].compliant / item[1].total if item[1].total else 1, item[0])
    )
    cells = [f"{name} {c.compliant}/{c.total} ok ({c.violations} violations)" for name, c in ordered]
    return f"{title}: " + "; ".join(cells)


def accounts_line(by_account: dict[str, AccountCounts]) -> str:
    """Per account, in the answer's order (worst first): score, compliant of found, violations."""
    cells = [
        f"{account} {percent(c.compliance_score)} ({c.compliant}/{c.total} ok, {c.violations} violations)"
        for account, c in list(by_account.items())[:MAX_EXAMPLES]
    ]
    more = f"; and {len(by_account) - MAX_EXAMPLES} more" if len(by_account) > MAX_EXAMPLES else ""
    return "By account (worst first): " + "; ".join(cells) + more


def scope_line(scope: ScopeInfo, snapshot_id: str, scanned_at: Any, cached: bool) -> str:
    accounts = ", ".join(scope.accounts) if len(scope.accounts) > 1 else scope.account_id
    source = "cached snapshot" if cached else "fresh scan"
    return (
        f"Scope: account {accounts}; regions {', '.join(scope.regions)}; "
        f"{len(scope.resource_types)} type(s) {', '.join(scope.resource_types)}. "
        f"Snapshot {snapshot_id} ({source}, {scanned_at:%Y-%m-%d %H:%M} UTC)."
    )


def shards_lines(failed: Sequence[FailedShard]) -> list[str]:
    """What could not be read, first: it is missing from every figure above it."""
    if not failed:
        return ["Failed shards: none (everything in scope was read)."]
    lines = [f"FAILED SHARDS: {len(failed)} - not in the figures; do not present them as complete:"]
    for shard in failed[:MAX_EXAMPLES]:
        where = " ".join(
            part for part in (shard.account_id, shard.region, shard.resource_type, shard.resource_arn) if part
        )
        # An AWS error speaks for itself; any other reason (deadline, circuit_open...) is named.
        reason = "" if shard.reason == "error" else f"[{shard.reason}] "
        lines.append(line(f"- {where}: {reason}{shard.error}"))
    if len(failed) > MAX_EXAMPLES:
        lines.append(f"- ... {len(failed) - MAX_EXAMPLES} more in failed_shards ({FULL_HINT}).")
    return lines


def patterns_lines(patterns: Sequence[ViolationPattern], total: int | None) -> list[str]:
    """The largest groups first: one fix each (``total``: what the groups are out of, when known)."""
    if not patterns:
        return []
    shown = patterns[:MAX_PATTERNS]
    covered = sum(pattern.count for pattern in shown)
    out_of = f"{covered} of {total}" if total is not None else f"{covered}"
    lines = [f"Top patterns ({out_of} by tag, problem, type and region):"]
    lines += [
        f"- {p.tag_key} {p.violation_type.replace('_tag', '').replace('_', ' ')}: "
        f"{p.count} {p.resource_type} in {p.region}"
        for p in shown
    ]
    return lines


def more_line(shown: int, on_page: int, total: int, cursor: str | None, tool_hint: str) -> str:
    parts = [f"Shown {shown} of {on_page} on this page ({total} in all)."]
    if shown < on_page:
        parts.append('detail="full": the whole page as JSON.')
    if cursor:
        parts.append(f"Next page: cursor={cursor!r}.")
    parts.append(tool_hint)
    return "More: " + " ".join(parts)


def examples(title: str, items: Iterable[str]) -> list[str]:
    listed = [line(f"- {item}") for item in items]
    return [title, *listed] if listed else []


class Paging(NamedTuple):
    on_page: int  # items in this answer
    total: int  # items in all pages
    cursor: str | None  # the next page's


def page_examples(described: Iterable[str], paging: Paging, tool_hint: str) -> list[str]:
    """The first ``MAX_EXAMPLES`` of a page's items (described lazily), then the way to the rest."""
    shown = list(islice(described, MAX_EXAMPLES))
    more = more_line(len(shown), paging.on_page, paging.total, paging.cursor, tool_hint)
    return [*examples("Examples:", shown), more]


def violation_text(v: Violation) -> str:
    value = f" (value {v.current_value!r})" if v.current_value is not None else ""
    return f"{v.resource_arn}: {v.tag_key} {v.violation_type}{value}" + (
        f"; expected {v.expected}" if v.expected else ""
    )


def untagged_text(r: UntaggedResource) -> str:
    name = f" ({r.name})" if r.name else ""
    never = " [never tagged]" if r.never_tagged else ""
    return f"{r.resource_arn}{name}: missing {', '.join(r.missing_tags)}{never}"


# --- one renderer per result type ---------------------------------------------------------------


def render_check(result: ComplianceCheckResult) -> str:
    if result.job is not None:
        job = result.job
        seconds = f", about {job.estimated_seconds:.0f} s" if job.estimated_seconds else ""
        return (
            f"The scope is too large to scan within one call: it runs as audit job {job.run_id} "
            f"({job.status}{seconds}). Poll get_audit_status(run_id={job.run_id!r}); then call this tool "
            f"again with the same scope for the violations.\n"
            + scope_line(result.scope, result.snapshot_id, result.scanned_at, result.cached)
        )
    lines = [
        f"Compliance score {percent(result.compliance_score)}: {result.compliant_resources} of "
        f"{result.scanned_resources} resources with tagging requirements are compliant "
        f"({result.total_resources} found). {result.violation_count} violations: "
        f"{joined(result.violations_by_type)}.",
    ]
    if result.score_note:
        lines.append(result.score_note + ".")
    lines.append(scope_line(result.scope, result.snapshot_id, result.scanned_at, result.cached))
    lines += shards_lines(result.failed_shards)
    lines.append(breakdown("By type", result.by_resource_type))
    lines.append(breakdown("By region", result.by_region))
    if len(result.scope.accounts) > 1:
        lines.append(accounts_line(result.by_account))
    lines += patterns_lines(result.violation_patterns, result.violation_count)
    lines += page_examples(
        map(violation_text, result.violations),
        Paging(len(result.violations), result.violation_count, result.next_cursor),
        "Every row: export_violations_csv (to_file=true links the file).",
    )
    return "\n".join(lines)


def render_untagged(result: FindUntaggedResult) -> str:
    lines = [
        f"{result.total_untagged} resources miss required tags ({result.never_tagged} never tagged). "
        f"By type: {joined(result.untagged_by_type)}."
        + (f" By account: {joined(result.untagged_by_account)}." if len(result.scope.accounts) > 1 else ""),
        scope_line(result.scope, result.snapshot_id, result.scanned_at, result.cached),
        *shards_lines(result.failed_shards),
    ]
    if result.cost_note:
        lines.append(result.cost_note)
    lines += patterns_lines(result.missing_patterns, None)
    paging = Paging(len(result.resources), result.total_untagged, result.next_cursor)
    lines += page_examples(
        map(untagged_text, result.resources), paging, "Values: suggest_tags(resource_arn)."
    )
    return "\n".join(lines)


def render_validate(result: ValidateResult) -> str:
    lines = [
        f"{len(result.results)} resources: {result.compliant} compliant, "
        f"{result.non_compliant} non_compliant, {result.not_found} not_found, "
        f"{result.not_scanned} not_scanned (neither of the last two is compliant).",
        *shards_lines(result.failed_shards),
    ]
    order = {"non_compliant": 0, "not_scanned": 1, "not_found": 2, "no_requirements": 3, "compliant": 4}
    ranked = sorted(result.results, key=lambda r: order.get(r.status, 5))
    shown = ranked[:MAX_EXAMPLES]

    def describe(r: Any) -> str:
        problems = "; ".join(f"{v.tag_key} {v.violation_type}" for v in r.violations[:4])
        extra = f" (+{len(r.violations) - 4} more)" if len(r.violations) > 4 else ""
        return (
            f"{r.resource_arn}: {r.status}"
            + (f": {problems}{extra}" if problems else "")
            + (f" - {r.detail}" if r.detail else "")
        )

    lines += examples("Resources (problems first):", (describe(r) for r in shown))
    if len(ranked) > len(shown):
        lines.append(f"More: {len(ranked) - len(shown)} more resources; {FULL_HINT}.")
    return "\n".join(lines)


def render_suggestions(result: TagSuggestions) -> str:
    lines = [f"Suggestions for {result.resource_arn} ({result.resource_type}); confirm with the user first:"]
    for s in result.suggestions:
        reasons = "; ".join(s.reasons[:2])
        current = f", now {s.current_value!r}" if s.current_value is not None else ""
        value = f"{s.suggested_value!r}, confidence {s.confidence:.2f}"
        lines.append(line(f"- {s.tag_key} ({s.issue}{current}): {value} - {reasons}"))
    lines += [line(f"- {n.tag_key} ({n.issue}): no suggestion - {n.reason}") for n in result.no_suggestion]
    lines.append(f"Already compliant: {', '.join(result.compliant_tags) or 'none'}.")
    lines.append(f"How confidence is computed, every reason and source: {FULL_HINT}.")
    return "\n".join(lines)


def render_drift(result: DriftResult) -> str:
    baseline = (
        f"snapshot {result.baseline_snapshot_id} ({result.baseline_taken_at:%Y-%m-%d %H:%M} UTC)"
        if result.baseline_snapshot_id and result.baseline_taken_at
        else "no baseline"
    )
    lines = [
        f"{result.total_drifts} tag drifts since {baseline}: {joined(result.by_severity)}. "
        f"{result.resources_compared} resources compared; {result.total_resources_added} added, "
        f"{result.total_resources_removed} removed.",
    ]
    if result.threshold is not None:
        state = "EXCEEDED" if result.threshold_exceeded else "not exceeded"
        lines.append(f"Threshold {result.threshold}: {state}.")
    lines += [line(note) for note in result.notes]
    shown = result.drift_detected[:MAX_EXAMPLES]
    lines += examples(
        "Most severe:",
        (
            f"{d.severity} {d.resource_arn}: {d.tag} {d.change} "
            f"({d.old_value!r} -> {d.new_value!r}) - {d.reason}"
            + (
                f" [by {d.changed_by} at {d.changed_at:%Y-%m-%d %H:%M}]"
                if d.changed_by and d.changed_at
                else ""
            )
            for d in shown
        ),
    )
    changed = [*result.resources_added[:3], *result.resources_removed[:3]]
    if changed:
        lines.append("Added/removed resources, e.g.: " + ", ".join(r.resource_arn for r in changed))
    lines.append(
        f"More: shown {len(shown)} of {len(result.drift_detected)} listed ({result.total_drifts} in all); "
        f"{FULL_HINT}; a larger limit lists more."
    )
    return "\n".join(lines)


def render_report(result: ReportResult) -> str:
    summary = result.summary
    lines = [
        f"Compliance report ({result.format}): score {percent(summary.get('compliance_score'))}, "
        f"{summary.get('compliant_resources')} of {summary.get('scanned_resources')} resources compliant, "
        f"{summary.get('violation_count')} violations. Snapshot {result.snapshot_id}.",
        *shards_lines(result.failed_shards),
    ]
    issues = summary.get("top_issues") or []
    lines += examples(
        "Top issues:",
        (f"{i['tag_key']} {i['violation_type']}: {i['resources']}" for i in issues[:MAX_EXAMPLES]),
    )
    lines += examples("Recommendations:", summary.get("recommendations") or [])
    size = len(result.content or "")
    inline = f"its first {size} characters" if result.truncated else f"all {size} characters"
    where = f"the linked resource (file {result.file_path})" if result.file_path else "content"
    lines.append(f"The report: {where}; {inline} are in content ({FULL_HINT}).")
    return "\n".join(lines)


def render_cost_gap(result: CostAttributionGap) -> str:
    gap, money = result.attribution_gap, result.currency
    lines = [
        f"Unattributable spend {gap.gap_spend:,.2f} {money} of {result.total_spend:,.2f} "
        f"({'n/a' if gap.gap_percent is None else f'{gap.gap_percent:.1f}%'}, {gap.bound.replace('_', ' ')}, "
        f"by {gap.tag_key}), {result.period.start} to {result.period.end} (end exclusive). {gap.explanation}",
        f"Method: {result.method}; {result.cost_explorer_requests} Cost Explorer requests"
        + (" (cached: none made)" if result.cached else "")
        + ("; figures partly estimated by AWS" if result.estimated else "")
        + ".",
    ]
    if len(result.by_account) > 1:
        lines.append(
            "By account (largest gap first): "
            + "; ".join(
                f"{account} {entry.gap_spend:,.2f} of {entry.total_spend:,.2f}"
                for account, entry in list(result.by_account.items())[:MAX_EXAMPLES]
            )
        )
    for tag in result.by_tag:
        services = sorted(tag.by_service, key=lambda service: -service.gap_spend)[:3]
        worst = ", ".join(f"{service.service} {service.gap_spend:,.2f}" for service in services)
        activated = {True: "", False: " NOT an activated cost allocation tag;", None: ""}[tag.tag_activated]
        percent_text = "n/a" if tag.gap_percent is None else f"{tag.gap_percent:.1f}%"
        lines.append(
            line(
                f"- {tag.tag_key}:{activated} gap {tag.gap_spend:,.2f} ({percent_text}): "
                f"{tag.unattributed_spend:,.2f} untagged, {tag.invalid_value_spend:,.2f} invalid; "
                f"worst {worst}"
            )
        )
    lines += [line(f"Note: {note}") for note in result.notes[:MAX_EXAMPLES]]
    if result.estimates:
        lines.append(f"{len(result.estimates)} resource estimates in estimates ({FULL_HINT}).")
    lines.append(f"Per service, invalid values and every note: {FULL_HINT}.")
    return "\n".join(lines)


def render_export(result: ExportResult) -> str:
    lines = [
        f"CSV export: {result.rows_written} rows here of {result.row_count} matching (from row "
        f"{result.offset}); columns {', '.join(result.columns)}. Snapshot {result.snapshot_id}.",
        *shards_lines(result.failed_shards),
    ]
    if result.file_path:
        lines.append(f"Every row is in the file (linked resource; path {result.file_path}).")
    if result.data:
        rows = result.data.split("\r\n")
        head = [row for row in rows[: MAX_EXAMPLES + 1] if row]
        lines += ["First rows:", *(line(row) for row in head)]
        lines.append(f"More: the page's CSV is in data ({FULL_HINT}).")
    if result.next_cursor:
        lines.append(f"Next page: cursor={result.next_cursor!r}; to_file=true writes every row.")
    return "\n".join(lines)


RENDERERS: dict[type[BaseModel], Callable[[Any], str]] = {
    ComplianceCheckResult: render_check,
    FindUntaggedResult: render_untagged,
    ValidateResult: render_validate,
    TagSuggestions: render_suggestions,
    DriftResult: render_drift,
    ReportResult: render_report,
    CostAttributionGap: render_cost_gap,
    ExportResult: render_export,
}

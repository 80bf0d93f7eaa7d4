"""The compliance check (tool ``check_tag_compliance``): score, counts and one page of violations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tagcompliance.compliance import SEVERITY
from tagcompliance.inventory import ProgressCallback
from tagcompliance.models import (
    MAX_PATTERNS,
    ComplianceCheckResult,
    TypeCounts,
    ViolationPattern,
    accounts_worst_first,
)

from .paging import Severity, encode_cursor, page_start, severity_filter

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def check_compliance(
    service: ComplianceService,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    severity: Severity = "all",
    force_refresh: bool = False,
    page_size: int = 50,
    cursor: str | None = None,
    progress: ProgressCallback | None = None,
) -> ComplianceCheckResult:
    # Resolved once for the job check and the observation ("all" regions: one DescribeRegions at most).
    scope = None if cursor else service.scopes.resolve(resource_types, regions, accounts)
    if scope is not None and (job := service.large_scan_job(scope, force_refresh)) is not None:
        return job
    observation, offset, payload = page_start(
        service, "check", cursor, resource_types, regions, force_refresh, progress, scope
    )
    if cursor:
        severity = payload.get("v", "all")  # type: ignore[assignment]
    snapshot = observation.snapshot
    policy = observation.policy
    evaluation = observation.evaluate()
    wanted = severity_filter(severity)
    # Only the page's violations are built; the total comes from the evaluation's counts.
    selected_count = (
        evaluation.violation_count
        if wanted is None
        else sum(n for level, n in evaluation.counts("severity").items() if level in wanted)
    )
    page = evaluation.page(offset, page_size, wanted)
    next_offset = offset + len(page)
    next_cursor = (
        encode_cursor({"k": "check", "s": snapshot.snapshot_id, "o": next_offset, "v": severity})
        if next_offset < selected_count
        else None
    )
    score_note = None
    if snapshot.compliance_score is None:
        score_note = (
            "No score: no resources in this scope have tagging requirements"
            if snapshot.total_resources
            else "No score: no resources were found in this scope"
        )
        if snapshot.failed_shards:
            score_note += " (some shards failed: see failed_shards)"
    elif snapshot.failed_shards:
        score_note = "Partial coverage: the score covers only the shards that were read (see failed_shards)"
    if unread := observation.unread_accounts:
        unread_note = (
            f"Accounts not read at all: {', '.join(unread)} (see failed_shards); figures cover the rest"
        )
        score_note = f"{score_note}. {unread_note}" if score_note else unread_note
    return ComplianceCheckResult.of(
        snapshot,
        score_note=score_note,
        scanned_resources=snapshot.scanned_resources,
        violation_count=selected_count,
        violations_by_type={
            k: v
            for k, v in sorted(snapshot.counts_by_violation.items())
            if wanted is None or SEVERITY[k] in wanted
        },
        by_resource_type={k: TypeCounts(**v) for k, v in sorted(snapshot.counts_by_type.items())},
        by_region={k: TypeCounts(**v) for k, v in sorted(snapshot.counts_by_region.items())},
        by_account=accounts_worst_first(snapshot.counts_by_account),
        violation_patterns=ViolationPattern.listed(evaluation.patterns(MAX_PATTERNS, wanted)),
        violations=[v.explained(policy) for v in page],
        next_cursor=next_cursor,
        **observation.provenance(),
        policy_source=service.loaded_policy.description,
    )

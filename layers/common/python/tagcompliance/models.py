"""Result models: the stable, structured answers the tools return (field names users script against)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, Field

from .compliance import Violation
from .schedules import ScheduleResult

if TYPE_CHECKING:
    from .store import SnapshotRecord


class FailedShard(BaseModel):
    """A (region, resource type) that could not be scanned, or one resource whose tags were unreadable."""

    region: str
    resource_type: str
    error: str
    resource_arn: str | None = Field(
        default=None, description="Set when only this resource could not be read."
    )
    account_id: str | None = Field(
        default=None, description="The shard's account, in audits of several accounts."
    )
    reason: Literal["error", "deadline", "cancelled", "shutdown", "circuit_open"] = Field(
        default="error",
        # What each reason means is said once, in the MCP server's instructions, not in every schema.
        description="Why it was not read (see the server instructions).",
    )


class ScopeInfo(BaseModel):
    account_id: str = Field(description="The account whose credentials ran the scan.")
    regions: list[str]
    resource_types: list[str]
    accounts: list[str] = Field(
        default_factory=list, description="The accounts whose resources were scanned (sorted)."
    )


class Coverage(BaseModel):
    """How much of the scope was read."""

    # Derived from what every snapshot stores (its scope and failed_shards), so snapshots written
    # before this model have it too. Field descriptions stay short: they are repeated in the output
    # schema of every tool that answers a coverage.
    shards_total: int = Field(description="Accounts x regions x resource types in scope.")
    shards_ok: int
    shards_failed: int
    resources_unreadable: int = Field(default=0, description="Found, tags unreadable, not counted.")
    partial: bool = Field(description="Part of the scope was not read: not comparable with a full one.")

    @classmethod
    def of(cls, snapshot: SnapshotRecord, accounts: Sequence[str] | None = None) -> Coverage:
        """The snapshot's coverage; of ``accounts`` alone when given (a question about some of them)."""
        chosen = set(accounts) if accounts else None
        covered = list(accounts or snapshot.covered_accounts) or [""]
        total = len(set(covered)) * len(set(snapshot.regions)) * len(set(snapshot.resource_types))
        failed: set[tuple[str, str, str]] = set()
        unreadable = 0
        for entry in snapshot.failed_shards:
            if chosen is not None and (entry.get("account_id") or snapshot.account_id) not in chosen:
                continue  # another account's gap is not this question's
            if entry.get("resource_arn"):
                unreadable += 1
            else:
                failed.add(
                    (
                        str(entry.get("account_id") or ""),
                        str(entry.get("region")),
                        str(entry.get("resource_type")),
                    )
                )
        shards_failed = min(len(failed), total)
        return cls(
            shards_total=total,
            shards_ok=total - shards_failed,
            shards_failed=shards_failed,
            resources_unreadable=unreadable,
            partial=bool(failed or unreadable),
        )


class ViolationPattern(BaseModel):
    """Violations sharing a tag, a violation type, a resource type and a region: one fix each."""

    tag_key: str
    violation_type: str
    resource_type: str
    region: str
    count: int

    @classmethod
    def listed(cls, groups: list[tuple[tuple[str, str, str, str], int]]) -> list[Self]:
        """The answer's patterns from ``compliance.top_patterns``' ((tag, violation, type, region), n)."""
        return [
            cls(tag_key=tag, violation_type=kind, resource_type=type_id, region=region, count=count)
            for (tag, kind, type_id, region), count in groups
        ]


MAX_PATTERNS = 20


class TypeCounts(BaseModel):
    total: int
    compliant: int
    violations: int


class AccountCounts(TypeCounts):
    """One account's figures in an answer (the answer's ``by_account``, worst account first)."""

    compliance_score: float | None = Field(
        default=None, description="The account's compliant / scanned; null when none needed tags."
    )

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> AccountCounts:
        """From a snapshot's ``counts_by_account`` entry; ``scanned`` (resources with requirements)
        gives the score, as the answer's own: resources without requirements are neither."""
        total, compliant = int(counts.get("total", 0)), int(counts.get("compliant", 0))
        scanned = counts.get("scanned")
        score = None
        if scanned:  # counted compliant too, resources without requirements leave the score out
            score = round((compliant - (total - int(scanned))) / int(scanned), 4)
        return cls(
            total=total,
            compliant=compliant,
            violations=int(counts.get("violations", 0)),
            compliance_score=score,
        )


def accounts_worst_first(counts_by_account: Mapping[str, Mapping[str, int]]) -> dict[str, AccountCounts]:
    """Per-account figures, the worst account first: lowest score, then most violations, then id."""
    entries = {account: AccountCounts.of(counts) for account, counts in counts_by_account.items()}
    return dict(
        sorted(
            entries.items(),
            key=lambda item: (
                2.0 if item[1].compliance_score is None else item[1].compliance_score,
                -item[1].violations,
                item[0],
            ),
        )
    )


class ComplianceCounts(BaseModel):
    """A snapshot's headline counts: the one type every answer that reports them extends."""

    compliance_score: float | None = Field(
        description="compliant / scanned, 0..1; null when nothing was scanned."
    )
    total_resources: int = Field(description="Resources found in scope (read successfully).")
    compliant_resources: int
    violation_count: int

    @classmethod
    def of(cls, snapshot: SnapshotRecord, **fields: Any) -> Self:
        """This answer with the snapshot's counts (``fields`` give the rest, and may override them)."""
        counts = {name: getattr(snapshot, name) for name in ComplianceCounts.model_fields}
        return cls(**{**counts, **fields})


class ComplianceCheckResult(ComplianceCounts):
    score_note: str | None = None
    scanned_resources: int = Field(description="Resources the policy has requirements for.")
    violations_by_type: dict[str, int]
    by_resource_type: dict[str, TypeCounts]
    by_region: dict[str, TypeCounts]
    by_account: dict[str, AccountCounts] = Field(
        default_factory=dict,
        description="Per AWS account with resources in scope, worst first.",
    )
    violation_patterns: list[ViolationPattern] = Field(
        default_factory=list, description="The largest groups of violations, most first (at most 20)."
    )
    violations: list[Violation] = Field(description="One page of violations; follow next_cursor for more.")
    next_cursor: str | None = None
    failed_shards: list[FailedShard]
    scope: ScopeInfo
    snapshot_id: str
    scanned_at: datetime
    cached: bool
    policy_source: str
    job: AuditJob | None = Field(
        default=None,
        description="Set when the scope was too large to scan within the call: the scan runs as an audit "
        "job (the counts above are empty until it is done); poll get_audit_status with its run_id.",
    )


class AuditJob(BaseModel):
    """A scan running in the background (the audit pipeline): a job handle."""

    run_id: str
    status: str = Field(description="running | succeeded | failed")
    poll_with: str = "get_audit_status"
    estimated_seconds: float | None = None


class UntaggedResource(BaseModel):
    resource_arn: str
    resource_type: str
    region: str
    name: str | None
    missing_tags: list[str]
    never_tagged: bool = Field(description="True when the resource carries no tags at all.")
    estimated_monthly_cost: float | None = None
    cost_method: str | None = None


class FindUntaggedResult(BaseModel):
    total_untagged: int
    never_tagged: int
    resources: list[UntaggedResource]
    next_cursor: str | None = None
    untagged_by_type: dict[str, int]
    untagged_by_account: dict[str, int] = Field(default_factory=dict, description="Most first.")
    missing_patterns: list[ViolationPattern] = Field(
        default_factory=list, description="The largest groups of missing tags, most first (at most 20)."
    )
    failed_shards: list[FailedShard]
    scope: ScopeInfo
    snapshot_id: str
    scanned_at: datetime
    cached: bool
    cost_note: str | None = None


class ResourceValidation(BaseModel):
    resource_arn: str
    status: Literal["compliant", "non_compliant", "not_found", "not_scanned", "no_requirements"]
    resource_type: str | None = None
    region: str | None = None
    tags: dict[str, str] | None = None
    violations: list[Violation] = Field(default_factory=list)
    detail: str | None = None


class ValidateResult(BaseModel):
    results: list[ResourceValidation]
    compliant: int
    non_compliant: int
    not_found: int
    not_scanned: int
    failed_shards: list[FailedShard]
    scanned_at: datetime


class PolicyResult(BaseModel):
    source: str
    path: str | None
    digest: str
    policy: dict[str, Any]
    resource_types: dict[str, list[str]] = Field(description="Required tag keys per supported resource type.")


class ReportResult(BaseModel):
    format: str
    content: str | None = Field(description="The report, when it fits inline; else its beginning.")
    file_path: str | None = Field(default=None, description="Where the whole report was written.")
    truncated: bool = Field(default=False, description="content is only the beginning of the file.")
    summary: dict[str, Any]
    snapshot_id: str
    failed_shards: list[FailedShard]


class HistoryPoint(ComplianceCounts):
    period_start: datetime
    trigger: str = Field(description="What took the period's latest snapshot: manual, scheduled or daily.")
    scheduled: bool = Field(description="The period's latest snapshot came from a scheduled audit.")
    snapshots: int
    coverage: Coverage = Field(
        description="What the point's snapshot could read; a partial point is shown but never moves the "
        "trend (a period with a full snapshot shows its latest full one)."
    )
    remediations: list[str] = Field(
        default_factory=list, description="remediation_ids of tag remediations that finished in this period."
    )
    by_account: dict[str, AccountCounts] = Field(default_factory=dict, description="Worst first.")


class AccountTrend(BaseModel):
    trend: Literal["improving", "declining", "stable", "insufficient_data"]
    score_change: float | None
    last_score: float | None


class RemediationMark(BaseModel):
    """A tag remediation (or its undo) on the series: the score after it reflects its writes."""

    remediation_id: str
    kind: Literal["apply", "undo"]
    undoes: str | None = None
    finished_at: datetime
    user_id: str
    applied: int
    failed: int
    resource_types: list[str]
    regions: list[str]


class HistoryResult(BaseModel):
    group_by: str
    days_back: int
    points: list[HistoryPoint]
    trend: Literal["improving", "declining", "stable", "insufficient_data"] = Field(
        description="From the first to the last full point (partial points are left out)."
    )
    score_change: float | None = Field(description="Last minus first full point's score.")
    snapshot_count: int
    partial_points: int = Field(
        default=0, description="Points whose snapshot was partial (coverage.partial)."
    )
    note: str | None = None
    remediations: list[RemediationMark] = Field(
        default_factory=list, description="Tag remediations in the period (apply_tag_remediation, undo)."
    )
    by_account: dict[str, AccountTrend] = Field(
        default_factory=dict, description="Each account's own trend over full points; worst last score first."
    )


class ExportResult(BaseModel):
    format: Literal["csv"] = "csv"
    columns: list[str]
    row_count: int = Field(description="Rows matching the filters, over every page.")
    rows_by_account: dict[str, int] = Field(default_factory=dict, description="Most first.")
    rows_written: int = Field(description="Rows in this answer (or in the file).")
    offset: int
    next_offset: int | None = None
    data: str | None = Field(default=None, description="The CSV text of this page (RFC 4180, CRLF).")
    next_cursor: str | None = Field(default=None, description="Pass back to get the next page.")
    file_path: str | None = Field(default=None, description="Where the whole export was written (to_file).")
    snapshot_id: str
    failed_shards: list[FailedShard]


class ScheduleAction(BaseModel):
    """The answer of schedule_compliance_audit: the schedule acted on, or the list."""

    action: str
    schedule: ScheduleResult | None = None
    schedules: list[ScheduleResult] | None = None
    total: int | None = None

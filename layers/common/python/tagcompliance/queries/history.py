"""The compliance score over time from stored snapshots (tool ``get_violation_history``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from tagcompliance.models import (
    AccountTrend,
    Coverage,
    HistoryPoint,
    HistoryResult,
    RemediationMark,
    accounts_worst_first,
)
from tagcompliance.resources import resolve_resource_types
from tagcompliance.store import SnapshotRecord

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def violation_history(
    service: ComplianceService,
    days_back: int = 30,
    group_by: Literal["day", "week", "month"] = "day",
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
) -> HistoryResult:
    since = datetime.now(UTC) - timedelta(days=days_back)
    snapshots = service.store.list_snapshots(since=since, limit=100_000)
    note = None
    if accounts:
        # Snapshots that read every requested account (an organization-wide one included); their
        # per-account series come from each snapshot's counts by account.
        wanted_accounts = set(service.scopes.accounts(accounts))
        snapshots = [s for s in snapshots if wanted_accounts <= set(s.covered_accounts)]
    if resource_types or regions:
        wanted_types = sorted(resolve_resource_types(resource_types)) if resource_types else None
        wanted_regions = sorted(service.resolve_regions(regions)) if regions else None
        snapshots = [
            s
            for s in snapshots
            if (wanted_types is None or sorted(s.resource_types) == wanted_types)
            and (wanted_regions is None or sorted(s.regions) == wanted_regions)
        ]
    elif snapshots:
        # Scores of different scopes are not comparable: follow the scope of the latest snapshot.
        latest = snapshots[-1]
        scope = (sorted(latest.resource_types), sorted(latest.regions))
        snapshots = [s for s in snapshots if (sorted(s.resource_types), sorted(s.regions)) == scope]
        if not accounts:  # nor are scores of different accounts
            covered = sorted(latest.covered_accounts)
            snapshots = [s for s in snapshots if sorted(s.covered_accounts) == covered]
        note = (
            f"Showing snapshots with the latest one's scope ({len(scope[0])} resource types, regions "
            f"{', '.join(scope[1])}); pass resource_types/regions to choose another scope."
        )
    periods: dict[datetime, list[SnapshotRecord]] = defaultdict(list)
    for snapshot in snapshots:
        periods[_period_start(snapshot.created_at, group_by)].append(snapshot)
    marks = remediation_marks(service, since)
    marked: dict[datetime, list[str]] = defaultdict(list)
    for mark in marks:
        marked[_period_start(mark.finished_at, group_by)].append(mark.remediation_id)
    wanted = sorted(service.scopes.accounts(accounts)) if accounts else None
    points = []
    for start in sorted(periods):
        # A point in time: the period's latest full measurement, else its latest (partial) one.
        full = [s for s in periods[start] if not Coverage.of(s, wanted).partial]
        last = (full or periods[start])[-1]
        by_account = accounts_worst_first(
            {
                account: counts
                for account, counts in last.counts_by_account.items()
                if wanted is None or account in wanted
            }
        )
        # Asked about some of a snapshot's accounts: the point's figures are theirs alone.
        headline = _accounts_total(last, wanted) if wanted and wanted != sorted(last.covered_accounts) else {}
        points.append(
            HistoryPoint.of(
                last,
                period_start=start,
                trigger=last.trigger,
                scheduled=last.scheduled,
                snapshots=len(periods[start]),
                coverage=Coverage.of(last, wanted),
                remediations=marked.get(start, []),
                by_account=by_account if len(last.covered_accounts) > 1 or wanted else {},
                **headline,
            )
        )
    # Partial points count less than their scope: they are listed, flagged, but never move the trend.
    change, trend = _trend([p.compliance_score for p in points if not p.coverage.partial])
    account_trends = {
        account: _account_trend(
            [
                p.by_account[account].compliance_score
                for p in points
                if not p.coverage.partial and account in p.by_account
            ]
        )
        for account in sorted({account for p in points for account in p.by_account})
    }
    partial_points = sum(1 for p in points if p.coverage.partial)
    if partial_points:
        partial_note = (
            f"{partial_points} point(s) come from partial snapshots (coverage.partial: some shards could "
            "not be read); their counts cover less than the scope and the trend leaves them out."
        )
        note = f"{note} {partial_note}" if note else partial_note
    return HistoryResult(
        group_by=group_by,
        days_back=days_back,
        points=points,
        trend=trend,
        score_change=change,
        snapshot_count=len(snapshots),
        partial_points=partial_points,
        note=note,
        remediations=marks,
        by_account=dict(
            sorted(
                account_trends.items(),
                key=lambda item: (2.0 if item[1].last_score is None else item[1].last_score, item[0]),
            )
        ),
    )


Trend = Literal["improving", "declining", "stable", "insufficient_data"]


def _trend(scores: Sequence[float | None]) -> tuple[float | None, Trend]:
    """First to last of the known scores: the change, and what it means (±0.01 is stable)."""
    scored = [score for score in scores if score is not None]
    change = round(scored[-1] - scored[0], 4) if len(scored) >= 2 else None
    if change is None:
        return None, "insufficient_data"
    return change, "improving" if change > 0.01 else "declining" if change < -0.01 else "stable"


def _account_trend(scores: Sequence[float | None]) -> AccountTrend:
    change, trend = _trend(scores)
    known = [score for score in scores if score is not None]
    return AccountTrend(trend=trend, score_change=change, last_score=known[-1] if known else None)


def _accounts_total(snapshot: SnapshotRecord, accounts: Sequence[str]) -> dict[str, object]:
    """The snapshot's headline counts over ``accounts`` alone (from its counts by account)."""
    chosen = [snapshot.counts_by_account.get(account, {}) for account in accounts]
    total = sum(counts.get("total", 0) for counts in chosen)
    compliant = sum(counts.get("compliant", 0) for counts in chosen)
    known = all("scanned" in counts for counts in chosen if counts)
    scanned = sum(counts.get("scanned", 0) for counts in chosen)
    return {
        "total_resources": total,
        "compliant_resources": compliant - (total - scanned) if known else compliant,
        "violation_count": sum(counts.get("violations", 0) for counts in chosen),
        "compliance_score": round((compliant - (total - scanned)) / scanned, 4)
        if known and scanned
        else None,
    }


def remediation_marks(service: ComplianceService, since: datetime) -> list[RemediationMark]:
    """Finished tag remediations since ``since`` that wrote something, oldest first."""
    marks = []
    for record in service.store.list_remediations(since=since, limit=1000):
        summary = record.summary
        by_status = summary.get("by_status") or {}
        if record.finished_at is None or not by_status.get("applied"):
            continue
        marks.append(
            RemediationMark(
                remediation_id=record.remediation_id,
                kind="undo" if record.kind == "undo" else "apply",
                undoes=record.undoes,
                finished_at=record.finished_at,
                user_id=record.user_id,
                applied=int(by_status.get("applied", 0)),
                failed=int(by_status.get("failed", 0)) + int(by_status.get("unknown", 0)),
                resource_types=sorted(summary.get("applied_by_type") or {}),
                regions=sorted(summary.get("applied_by_region") or {}),
            )
        )
    return marks


def _period_start(moment: datetime, group_by: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if group_by == "week":
        return day - timedelta(days=day.weekday())
    if group_by == "month":
        return day.replace(day=1)
    return day

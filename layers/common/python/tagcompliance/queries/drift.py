"""Tag drift of a scope against an earlier snapshot (tool ``detect_tag_drift``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tagcompliance.drift import DriftResult, choose_baseline, detect_drift
from tagcompliance.inventory import ProgressCallback

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def tag_drift(
    service: ComplianceService,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    lookback_days: int | None = None,
    tag_keys: Sequence[str] | None = None,
    threshold: int | None = None,
    limit: int = 100,
    progress: ProgressCallback | None = None,
) -> DriftResult:
    """Current tags (a fresh scan) against the stored tag state of an earlier snapshot of the scope."""
    scope = service.scopes.resolve(resource_types, regions, accounts)
    # The baseline is chosen before scanning, so the new scan can never be its own baseline.
    baseline = choose_baseline(
        service.store,
        (scope.resource_types, scope.regions, scope.audited_accounts),
        lookback_days,
        datetime.now(UTC),
    )
    observation = service.observe_scope(scope, True, progress)
    previous = service.store.iter_resource_states(baseline.snapshot_id) if baseline else []
    result = detect_drift(
        previous,
        observation.resources,
        observation.policy,
        tag_keys=list(tag_keys) if tag_keys else None,
        threshold=threshold,
        events=service.tag_events if baseline else None,
        baseline=baseline,
        current_snapshot=observation.snapshot,
        limit=limit,
    )
    if baseline is None:
        window = f"{lookback_days} or more days old" if lookback_days else "earlier"
        return result.model_copy(
            update={
                "resources_added": [],
                "total_resources_added": 0,
                "notes": [
                    f"No {window} snapshot of this scope exists to compare with: this scan "
                    f"(snapshot {observation.snapshot.snapshot_id}) is the baseline for the next check."
                ],
            }
        )
    return result

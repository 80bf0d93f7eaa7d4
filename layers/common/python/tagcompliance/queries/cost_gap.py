"""The cost attribution gap of a scope (tool ``get_cost_attribution_gap``), cached like scans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from tagcompliance.compliance import missing_tags_by_resource
from tagcompliance.cost import (
    CostAttributionGap,
    ResourceCostEstimate,
    ResourceCostsUnavailableError,
    cost_attribution_gap,
    resource_level_costs,
)
from tagcompliance.cost.models import AccountGap
from tagcompliance.inventory import ProgressCallback

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService

MAX_ESTIMATES = 50


def cost_gap(
    service: ComplianceService,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    tag_keys: Sequence[str] | None = None,
    include_resource_estimates: bool = False,
    force_refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> CostAttributionGap:
    """Cost Explorer's answer for a scope, cached like scans: every Cost Explorer request costs $0.01."""
    scope = service.scopes.resolve(resource_types, regions, accounts)
    type_ids, region_list = scope.resource_types, scope.regions
    end = end_date or datetime.now(UTC).date()
    start = start_date or end - timedelta(days=service.settings.cost_lookback_days)
    policy = service.loaded_policy.policy
    key = scope.cache_key(
        "cost",
        policy.digest(),
        start.isoformat(),
        end.isoformat(),
        ",".join(sorted(tag_keys or [])),
        str(include_resource_estimates),
    )
    if not force_refresh:
        cached = service.cache.get(key)
        if isinstance(cached, dict):
            return CostAttributionGap.model_validate({**cached, "cached": True})
    own = scope.account_id
    management = service.scopes.is_management_account()
    # The management account's Cost Explorer holds every member's spend: filtered and grouped by
    # LINKED_ACCOUNT, several accounts need no role assumed and no scan. Any other account's Cost
    # Explorer holds its own spend only: that is what is answered, and said.
    several = management and scope.other_accounts
    observation = None if several else service.observe_scope(scope.alone(), False, progress)
    result = cost_attribution_gap(
        service.clients,
        policy,
        type_ids,
        region_list,
        start,
        end,
        list(tag_keys or []) or None,
        observation.resources if observation is not None else None,
        scope.audited_accounts if management else None,
    )
    if not management:
        headline = result.attribution_gap
        own_gap = AccountGap(
            total_spend=result.total_spend, gap_spend=headline.gap_spend, gap_percent=headline.gap_percent
        )
        result = result.model_copy(update={"accounts": [own], "by_account": {own: own_gap}})
    notes = list(result.notes)
    if scope.other_accounts and not management:
        others = [account for account in scope.audited_accounts if account != own]
        notes.insert(
            0,
            f"Only account {own}'s own spend is counted: it is not its organization's management (payer) "
            f"account, and Cost Explorer in a member account shows that account alone. Not included: "
            f"{', '.join(others)}. Ask with the management account's credentials for their spend.",
        )

    estimates: list[ResourceCostEstimate] = []
    if include_resource_estimates and observation is None:
        notes.append("Resource estimates are per account: ask about one account for them.")
    elif include_resource_estimates:
        untagged = missing_tags_by_resource(observation.evaluate().iter_violations())
        by_arn = {estimate.arn: estimate for estimate in result.estimates if estimate.arn in untagged}
        if by_arn:
            try:  # measured figures replace the service-average estimates where AWS has them
                by_arn.update(resource_level_costs(service.clients, sorted(by_arn), start, end))
            except ResourceCostsUnavailableError as error:
                notes.append(f"Resource-level costs unavailable ({error}): service-average estimates shown.")
        estimates = sorted(by_arn.values(), key=lambda estimate: (-estimate.cost, estimate.arn))
        if len(estimates) > MAX_ESTIMATES:
            notes.append(
                f"{len(estimates)} resources miss a required tag; the largest {MAX_ESTIMATES} are listed."
            )
    result = result.model_copy(update={"estimates": estimates[:MAX_ESTIMATES], "notes": notes})
    service.cache.set(key, result.model_dump(mode="json"), service.settings.cache_ttl_seconds)
    return result

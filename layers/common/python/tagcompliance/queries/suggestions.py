"""Tag suggestions for one resource (tool ``suggest_tags``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tagcompliance.errors import InvalidInputError, ResourceNotFoundError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.resources import parse_arn
from tagcompliance.suggest import TagSuggestions, suggest_tags

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def suggest(
    service: ComplianceService,
    resource_arn: str,
    regions: Sequence[str] | None = None,
    force_refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> TagSuggestions:
    """Suggestions from the resource's own name, its siblings and account-wide majorities."""
    parsed = parse_arn(resource_arn)
    region_list = [parsed.region] if parsed.region else service.resolve_regions(regions)
    # Siblings of every type count (same VPC, same stack), so the whole region is observed.
    # The resource's own account (through AssumeRole when it is not the credentials'): S3 bucket
    # ARNs name none, so a bucket is looked for in the credentials' account.
    accounts = [parsed.account_id] if parsed.account_id else None
    observation = service.observe(None, region_list, force_refresh, progress, accounts=accounts)
    target = next((r for r in observation.resources if r.arn == parsed.arn), None)
    if target is None:
        failed = [
            s
            for s in observation.failed_shards
            if s.resource_type == parsed.resource_type and s.resource_arn in (None, parsed.arn)
        ]
        if failed:
            raise InvalidInputError(f"the tags of {parsed.arn} could not be read: {failed[0].error}")
        raise ResourceNotFoundError(
            f"{parsed.arn} was not found in {', '.join(region_list)} "
            f"(account {observation.snapshot.account_id})"
        )
    return suggest_tags(target, observation.resources, service.loaded_policy.policy)

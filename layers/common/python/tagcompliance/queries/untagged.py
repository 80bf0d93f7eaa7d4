"""Resources missing required tags (tool ``find_untagged_resources``), paged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tagcompliance.compliance import missing_tags_by_resource, top_patterns
from tagcompliance.inventory import ProgressCallback
from tagcompliance.models import MAX_PATTERNS, FindUntaggedResult, UntaggedResource, ViolationPattern

from .paging import encode_cursor, page_start

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def find_untagged(
    service: ComplianceService,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    force_refresh: bool = False,
    page_size: int = 50,
    cursor: str | None = None,
    progress: ProgressCallback | None = None,
) -> FindUntaggedResult:
    observation, offset, _ = page_start(
        service, "untagged", cursor, resource_types, regions, force_refresh, progress, accounts=accounts
    )
    snapshot = observation.snapshot
    missing = missing_tags_by_resource(observation.evaluate().iter_violations())
    untagged = [resource for resource in observation.resources if resource.arn in missing]
    by_type: dict[str, int] = defaultdict(int)
    by_account: dict[str, int] = defaultdict(int)
    for resource in untagged:
        by_type[resource.resource_type] += 1
        by_account[resource.account_id] += 1
    page = untagged[offset : offset + page_size]
    next_offset = offset + len(page)
    return FindUntaggedResult(
        total_untagged=len(untagged),
        never_tagged=sum(1 for resource in untagged if not resource.tags),
        resources=[
            UntaggedResource(
                resource_arn=resource.arn,
                resource_type=resource.resource_type,
                region=resource.region,
                name=resource.name,
                missing_tags=missing[resource.arn],
                never_tagged=not resource.tags,
            )
            for resource in page
        ],
        next_cursor=encode_cursor({"k": "untagged", "s": snapshot.snapshot_id, "o": next_offset})
        if next_offset < len(untagged)
        else None,
        untagged_by_type=dict(sorted(by_type.items())),
        untagged_by_account=dict(sorted(by_account.items(), key=lambda item: (-item[1], item[0]))),
        missing_patterns=ViolationPattern.listed(
            top_patterns(
                (
                    (tag, "missing_tag", resource.resource_type, resource.region)
                    for resource in untagged
                    for tag in missing[resource.arn]
                ),
                MAX_PATTERNS,
            )
        ),
        **observation.provenance(),
    )

"""Validating named resources by ARN (tool ``validate_resource_tags``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from tagcompliance.compliance import Resource, compile_policy, evaluate
from tagcompliance.inventory import ProgressCallback
from tagcompliance.models import FailedShard, ResourceValidation, ValidateResult
from tagcompliance.resources import RESOURCE_TYPE_IDS, ParsedArn, parse_arn

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


def validate_resources(
    service: ComplianceService,
    resource_arns: Sequence[str],
    regions: Sequence[str] | None = None,
    force_refresh: bool = True,
    progress: ProgressCallback | None = None,
) -> ValidateResult:
    parsed = [parse_arn(arn) for arn in resource_arns]  # every ARN is checked before any scan
    account_id = service.clients.account_id
    bucket_regions = service.resolve_regions(regions)
    # (account, region) -> types: each ARN is looked for in its own account (S3 bucket ARNs name
    # none: the credentials' account), other accounts through AssumeRole.
    scopes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in parsed:
        for region in [item.region] if item.region else bucket_regions:
            scopes[(item.account_id or account_id, region)].add(item.resource_type)
    found: dict[str, Resource] = {}
    failed: list[FailedShard] = []
    scanned_at = datetime.now(UTC)
    for (account, region), types in sorted(scopes.items()):
        observation = service.observe(sorted(types), [region], force_refresh, progress, accounts=[account])
        failed.extend(observation.failed_shards)
        scanned_at = min(scanned_at, observation.snapshot.created_at)
        for resource in observation.resources:
            found[resource.arn] = resource
    policy = service.loaded_policy.policy
    compiled = compile_policy(policy, RESOURCE_TYPE_IDS)
    results: list[ResourceValidation] = []
    for item in parsed:
        resource = found.get(item.arn)
        if resource is None:
            results.append(_missing(item, failed, account_id, bucket_regions))
            continue
        evaluation = evaluate([resource], compiled)
        status: Literal["compliant", "non_compliant", "no_requirements"]
        if evaluation.without_requirements:
            status = "no_requirements"
        else:
            status = "compliant" if not evaluation.violations else "non_compliant"
        results.append(
            ResourceValidation(
                resource_arn=item.arn,
                status=status,
                resource_type=resource.resource_type,
                region=resource.region,
                tags=resource.tags,
                violations=[v.explained(policy) for v in evaluation.violations],
            )
        )
    return ValidateResult(
        results=results,
        compliant=sum(1 for r in results if r.status == "compliant"),
        non_compliant=sum(1 for r in results if r.status == "non_compliant"),
        not_found=sum(1 for r in results if r.status == "not_found"),
        not_scanned=sum(1 for r in results if r.status == "not_scanned"),
        failed_shards=failed,
        scanned_at=scanned_at,
    )


def _missing(
    item: ParsedArn, failed: Sequence[FailedShard], account_id: str, bucket_regions: Sequence[str]
) -> ResourceValidation:
    """A resource the scans did not find: not_scanned when a shard that would hold it failed, else
    not_found with why."""
    shard_failed = [
        shard
        for shard in failed
        if shard.resource_type == item.resource_type
        and (shard.resource_arn in (None, item.arn))
        and (not item.region or shard.region == item.region)
    ]
    status: Literal["not_found", "not_scanned"] = "not_scanned" if shard_failed else "not_found"
    if shard_failed:
        detail = shard_failed[0].error
    elif item.account_id and item.account_id != account_id:
        detail = f"no {item.resource_type} with this ARN exists in account {item.account_id}, {item.region}"
    elif item.region:
        detail = f"no {item.resource_type} with this ARN exists in {item.region}"
    else:
        detail = f"no bucket with this name in regions {', '.join(bucket_regions)}"
    return ResourceValidation(
        resource_arn=item.arn,
        status=status,
        resource_type=item.resource_type,
        region=item.region or None,
        detail=detail,
    )

"""The scan pipeline as plain functions: plan shards, scan one shard, aggregate a run.

The Lambda handlers call these one at a time; the in-process runner calls them on a thread pool.
Both produce the same snapshot because both end in ``aggregate``, which reuses the gateway's own
``build_snapshot`` / ``resource_states``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextvars import copy_context
from random import Random

from tagcompliance.aws import AssumeRoleError, AwsClients
from tagcompliance.compliance import Evaluation, compile_policy, evaluate
from tagcompliance.errors import StoreError
from tagcompliance.inventory import Inventory, ShardOutcome, collect_inventory, describe_failure
from tagcompliance.models import FailedShard, accounts_worst_first
from tagcompliance.policy import TaggingPolicy
from tagcompliance.snapshots import build_snapshot, failed_coverage, resource_states
from tagcompliance.store import SnapshotRecord, Store

from .models import (
    AuditOutcome,
    AuditPlan,
    AuditRequest,
    AuditScope,
    Shard,
    ShardResult,
    snapshot_id_for,
)

# Error codes that mean "slow down": a shard failing with one of them is raised to the caller
# (the state machine's Retry, or the in-process runner's own retry) instead of being recorded.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)


DEFAULT_ROLE_NAME = "TagComplianceAuditRole"
_RANDOM = Random()


class ShardThrottledError(Exception):
    """A shard's scan was throttled after the SDK's own retries: try the shard again later.

    The class name is the error name Step Functions sees (``errorType``), which the state
    machine's ``Retry`` matches.
    """


def _is_throttling(error: str | None) -> bool:
    # describe_aws_error formats ClientErrors as "Operation: Code message".
    if not error:
        return False
    head = error.split(": ", 1)[-1]
    if head.startswith("tags could not be read: "):
        head = head.removeprefix("tags could not be read: ").split(": ", 1)[-1]
    return head.split(" ", 1)[0] in THROTTLING_CODES


def plan_shards(scope: AuditScope) -> list[Shard]:
    """One shard per account x region x resource type, in report order."""
    return [
        Shard(account_id=account, region=region, resource_type=type_id)
        for account in scope.audited_accounts
        for region in dict.fromkeys(scope.regions)
        for type_id in dict.fromkeys(scope.resource_types)
    ]


def plan_audit(request: AuditRequest) -> AuditPlan:
    return AuditPlan(**request.model_dump(), shards=plan_shards(request.scope))


def backoff_delay(
    attempt: int, base_seconds: float, cap_seconds: float = 30.0, rng: Random | None = None
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the retries of many shards throttled at once, so they do not all come
    back together and get throttled again.
    """
    return (rng or _RANDOM).uniform(0.0, min(cap_seconds, base_seconds * 2**attempt))


def scan_account_region(
    run_id: str,
    shards: list[Shard],
    clients: AwsClients,
    role_name: str = DEFAULT_ROLE_NAME,
    max_workers: int = 4,
) -> list[ShardResult | ShardThrottledError]:
    """Scan shards of ONE account and region together, one outcome per shard (same order).

    One ``collect_inventory`` call: the region's Tagging API pages are read once for every type,
    and ``max_workers`` bounds the concurrent API calls into the account-region (the unit AWS
    throttles). Another account is scanned through ``AssumeRole`` of ``role_name``; an account that
    cannot be assumed fails all its shards. A shard whose failure is throttling that outlasted the
    SDK's retries comes back as a ``ShardThrottledError`` for the caller to retry with backoff.
    """
    if not shards:
        return []
    account_id, region = shards[0].account_id, shards[0].region
    if any((shard.account_id, shard.region) != (account_id, region) for shard in shards):
        raise ValueError("scan_account_region takes shards of one account and region")
    try:
        target = clients.for_account(account_id, role_name)
    except AssumeRoleError as error:
        if error.code in THROTTLING_CODES:
            return [ShardThrottledError(f"{shard.shard_id}: {error}") for shard in shards]
        return [failed_shard_result(run_id, shard, str(error)) for shard in shards]
    types = list(dict.fromkeys(shard.resource_type for shard in shards))
    inventory = collect_inventory(target, [region], types, max_workers=max_workers)
    # The batch's requests, spread over its shards so that their sum is the batch's total.
    share, extra = divmod(inventory.api_requests, len(types))
    outcomes: list[ShardResult | ShardThrottledError] = []
    for index, shard in enumerate(shards):
        type_id = shard.resource_type
        shard_outcomes = [outcome for outcome in inventory.shards if outcome.resource_type == type_id]
        failed = [outcome for outcome in shard_outcomes if outcome.status == "failed"]
        if failed and _is_throttling(failed[0].error):
            outcomes.append(ShardThrottledError(f"{shard.shard_id}: {failed[0].error}"))
            continue
        resources = [resource for resource in inventory.resources if resource.resource_type == type_id]
        unreadable = [item for item in inventory.unreadable if item.resource_type == type_id]
        outcomes.append(
            ShardResult(
                run_id=run_id,
                shard=shard,
                status="failed" if failed else "ok",
                error=failed[0].error if failed else None,
                resource_count=len(resources),
                unreadable_count=len(unreadable),
                api_requests=share + (1 if index < extra else 0),
                duration_seconds=inventory.duration_seconds,
                scanned_at=inventory.scanned_at,
                resources=resources,
                outcomes=shard_outcomes,
                unreadable=unreadable,
            )
        )
    return outcomes


def scan_shard(
    run_id: str, shard: Shard, clients: AwsClients, role_name: str = DEFAULT_ROLE_NAME
) -> ShardResult:
    """Scan one (account, region, type) shard with the inventory's own logic.

    A failed listing is a failed shard (recorded, not raised); throttling that outlasted the SDK's
    retries raises ``ShardThrottledError`` so the caller retries the shard with backoff.
    """
    (outcome,) = scan_account_region(run_id, [shard], clients, role_name)
    if isinstance(outcome, ShardThrottledError):
        raise outcome
    return outcome


def scan_accounts(
    run_id: str,
    scope: AuditScope,
    clients: AwsClients,
    role_name: str = DEFAULT_ROLE_NAME,
    max_workers: int = 16,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[ShardResult]:
    """Scan every shard of ``scope`` in this process, one ``scan_account_region`` per account and
    region (the pipeline's own scan, AssumeRole included): what the interactive service runs for a
    question about several accounts that is small enough to answer within the call.

    Nothing is retried here: a shard still throttled after the SDK's retries, like an account whose
    role cannot be assumed, is a failed shard naming its account (the answer discloses it).
    """
    groups: dict[tuple[str, str], list[Shard]] = {}
    for shard in plan_shards(scope):
        groups.setdefault((shard.account_id, shard.region), []).append(shard)
    # scan_account_region bounds its own calls into an account-region (4); this bounds the groups.
    pool_size = max(1, min(len(groups), max_workers // 4 or 1))
    results: list[ShardResult] = []
    with ThreadPoolExecutor(pool_size, thread_name_prefix="accounts") as pool:
        futures = {
            pool.submit(copy_context().run, scan_account_region, run_id, shards, clients, role_name): shards
            for shards in groups.values()
        }
        for done, future in enumerate(as_completed(futures), start=1):
            shards = futures[future]
            try:
                outcomes = future.result()
            except Exception as error:  # e.g. the call stopped while a role was being assumed
                outcomes = [failed_shard_result(run_id, shard, describe_failure(error)) for shard in shards]
            for shard, outcome in zip(shards, outcomes, strict=True):
                if isinstance(outcome, ShardThrottledError):
                    outcome = failed_shard_result(run_id, shard, f"ShardThrottledError: {outcome}")
                results.append(outcome)
            if progress is not None:
                progress(done, len(groups), f"account {shards[0].account_id} in {shards[0].region} scanned")
    return results


def failed_shard_result(run_id: str, shard: Shard, error: str) -> ShardResult:
    """The result recorded for a shard whose scan could not complete at all."""
    return ShardResult(run_id=run_id, shard=shard, status="failed", error=error or "unknown error")


def merge_inventory(scope: AuditScope, shards: list[Shard], results: Iterable[ShardResult]) -> Inventory:
    """The run's inventory, as ``collect_inventory`` over the whole scope would have returned it.

    A planned shard with no result counts as failed, so missing coverage is always visible.
    """
    by_id = {result.shard.shard_id: result for result in results}
    inventory = Inventory(
        account_id=scope.account_id,
        regions=list(dict.fromkeys(scope.regions)),
        resource_types=list(dict.fromkeys(scope.resource_types)),
    )
    scanned_at = []
    for shard in shards:
        result = by_id.get(shard.shard_id)
        if result is None:
            inventory.shards.append(
                ShardOutcome(shard.region, shard.resource_type, "failed", 0, "none", "no result recorded")
            )
            continue
        scanned_at.append(result.scanned_at)
        if result.status == "failed" and not result.outcomes:
            inventory.shards.append(
                ShardOutcome(
                    shard.region, shard.resource_type, "failed", 0, "none", result.error or "unknown error"
                )
            )
            continue
        inventory.resources.extend(result.resources)
        inventory.shards.extend(result.outcomes)
        inventory.unreadable.extend(result.unreadable)
        inventory.api_requests += result.api_requests
    if scanned_at:
        inventory.scanned_at = min(scanned_at)
    inventory.resources.sort(key=lambda resource: resource.arn)
    inventory.shards.sort(key=lambda outcome: (outcome.region, outcome.resource_type))
    return inventory


def outcome_of(run_id: str, snapshot: SnapshotRecord, created: bool) -> AuditOutcome:
    """A run's outcome as its stored snapshot says it (per-account totals included)."""
    return AuditOutcome.of(
        snapshot,
        by_account=accounts_worst_first(snapshot.counts_by_account),
        run_id=run_id,
        snapshot_id=snapshot.snapshot_id,
        failed_shards=len(snapshot.failed_shards),
        failed_shard_details=snapshot.failed_shards[:100],
        accounts=snapshot.covered_accounts,
        created=created,
    )


def failed_coverage_of_run(shards: list[Shard], results: Iterable[ShardResult]) -> list[dict[str, object]]:
    """The snapshot's ``failed_shards``, each naming its account: whole shards first (by region,
    type, account), then single resources whose tags could not be read."""
    by_id = {result.shard.shard_id: result for result in results}
    whole: list[FailedShard] = []
    single: list[FailedShard] = []
    for shard in shards:
        result = by_id.get(shard.shard_id)
        if result is None or (result.status == "failed" and not result.outcomes):
            error = "no result recorded" if result is None else result.error or "unknown error"
            whole.append(
                FailedShard(
                    account_id=shard.account_id,
                    region=shard.region,
                    resource_type=shard.resource_type,
                    error=error,
                )
            )
            continue
        failed, unreadable = failed_coverage(result.outcomes, result.unreadable, shard.account_id)
        whole.extend(failed)
        single.extend(unreadable)
    whole.sort(key=lambda entry: (entry.region, entry.resource_type, str(entry.account_id)))
    return [entry.model_dump(exclude_none=True) for entry in whole + single]


def run_snapshot(
    scope: AuditScope,
    shards: list[Shard],
    shard_results: Iterable[ShardResult],
    policy: TaggingPolicy,
    snapshot_id: str,
) -> tuple[SnapshotRecord, Inventory, Evaluation]:
    """The snapshot of a scan of several shards (a run, or an interactive multi-account scan), with
    the merged inventory and its evaluation; nothing is stored."""
    results = list(shard_results)
    inventory = merge_inventory(scope, shards, results)
    evaluation = evaluate(inventory.resources, compile_policy(policy, inventory.resource_types))
    snapshot = dataclasses.replace(
        build_snapshot(inventory, evaluation, policy, scope.trigger),
        snapshot_id=snapshot_id,
        failed_shards=failed_coverage_of_run(shards, results),
        accounts=scope.snapshot_accounts,
    )
    return snapshot, inventory, evaluation


def aggregate(
    plan: AuditPlan, shard_results: Iterable[ShardResult], policy: TaggingPolicy, store: Store
) -> AuditOutcome:
    """Evaluate the run's resources and write its snapshot and per-resource state, once per run id.

    The snapshot id is derived from the run id: when it already exists (a re-run, or a retried
    aggregate step) the stored snapshot is returned and nothing is written.
    """
    snapshot_id = snapshot_id_for(plan.run_id)
    existing = store.get_snapshot(snapshot_id)
    if existing is not None:
        return outcome_of(plan.run_id, existing, False)
    snapshot, inventory, evaluation = run_snapshot(
        plan.scope, plan.shards, shard_results, policy, snapshot_id
    )
    states = list(resource_states(snapshot_id, inventory.resources, evaluation.noncompliant_arns))
    try:
        store.save_snapshot(snapshot, states)
    except StoreError:
        # A concurrent aggregate of the same run won the race (save_snapshot is all or nothing).
        existing = store.get_snapshot(snapshot_id)
        if existing is None:
            raise
        return outcome_of(plan.run_id, existing, False)
    return outcome_of(plan.run_id, snapshot, True)

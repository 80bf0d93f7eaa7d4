"""Snapshots: what one scan saw, stored, and evaluated once.

Owns the ``Observation`` (a snapshot with its resources, evaluated lazily under the snapshot's own
policy), building the snapshot record of a scan, the per-resource tag states stored with it, turning
stored states back into resources, and the in-memory cache of evaluated snapshots. Used by the
interactive service (``tagcompliance.service``) and by the audit pipeline (``tagcompliance.audits``);
it knows nothing of Redis, cost, drift or suggestions.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cache import ObjectLRU
from .compliance import CompiledPolicy, Evaluation, Resource, compile_policy, evaluate
from .inventory import Inventory, ShardOutcome, UnreadableResource
from .models import FailedShard, ScopeInfo
from .policy import TaggingPolicy, parse_policy
from .resources import REGISTRY, resource_id_from_arn
from .scope import Scope
from .store import ResourceStateRecord, SnapshotRecord, Store

# Evaluated snapshots kept in memory, so a cached question is a lookup, not a reload and re-evaluation.
# Snapshots never change once stored, so entries never go stale; they age out past these bounds.
EVALUATED_SNAPSHOTS = 16
EVALUATED_RESOURCES = 1_000_000  # resources held over all of them


@dataclass(slots=True)
class Observation:
    """What one scan saw: the snapshot, the resources with their tags, and what was not read."""

    snapshot: SnapshotRecord
    resources: list[Resource]
    cached: bool
    # Parsed and evaluated once, on first use, then shared by every answer from this snapshot.
    parsed_policy: TaggingPolicy | None = field(default=None, repr=False, compare=False)
    evaluation: Evaluation | None = field(default=None, repr=False, compare=False)

    @property
    def failed_shards(self) -> list[FailedShard]:
        return [FailedShard(**entry) for entry in self.snapshot.failed_shards]

    @property
    def unread_accounts(self) -> list[str]:
        """Accounts of the scope none of whose shards could be read (e.g. their role could not be
        assumed): nothing of theirs is in the figures."""
        covered = self.snapshot.covered_accounts
        if len(covered) < 2:
            return []
        shards = len(set(self.snapshot.regions)) * len(set(self.snapshot.resource_types))
        failed: dict[str, set[tuple[str, str]]] = {}
        for entry in self.snapshot.failed_shards:
            if entry.get("account_id") and not entry.get("resource_arn"):
                failed.setdefault(entry["account_id"], set()).add((entry["region"], entry["resource_type"]))
        return sorted(account for account, pairs in failed.items() if len(pairs) >= shards)

    @property
    def policy(self) -> TaggingPolicy:
        """The policy this snapshot was evaluated with (so later pages never mix two policies)."""
        if self.parsed_policy is None:
            self.parsed_policy = parse_policy(self.snapshot.policy, "snapshot")
        return self.parsed_policy

    def evaluate(self) -> Evaluation:
        """The snapshot's evaluation under its own policy (computed once: snapshots never change)."""
        if self.evaluation is None:
            compiled = compile_policy(self.policy, self.snapshot.resource_types)
            self.evaluation = evaluate(self.resources, compiled)
        return self.evaluation

    def served_from_cache(self) -> Observation:
        """This observation again, marked as a cached answer, sharing the parsed policy and evaluation."""
        return Observation(self.snapshot, self.resources, True, self.policy, self.evaluate())

    def provenance(self) -> dict[str, Any]:
        """What every answer from this snapshot says of where it comes from."""
        return {
            "failed_shards": self.failed_shards,
            "scope": self.scope,
            "snapshot_id": self.snapshot.snapshot_id,
            "scanned_at": self.snapshot.created_at,
            "cached": self.cached,
        }

    @property
    def scope(self) -> ScopeInfo:
        return ScopeInfo(
            account_id=self.snapshot.account_id,
            regions=self.snapshot.regions,
            resource_types=self.snapshot.resource_types,
            accounts=self.snapshot.covered_accounts,
        )


def covers(snapshot: SnapshotRecord, scope: Scope, policy_digest: str) -> bool:
    """Whether ``snapshot`` answers ``scope`` under this policy: a snapshot of exactly this scope that
    was not cut short (what AWS refused, e.g. an account's role, is its answer, as a scan's would be),
    or one of a larger scope that read every shard of this one (an organization-wide snapshot covers
    a question about two of its accounts)."""
    accounts, regions, types = set(scope.audited_accounts), set(scope.regions), set(scope.resource_types)
    if (
        snapshot.policy_digest != policy_digest
        or not accounts <= set(snapshot.covered_accounts)
        or not regions <= set(snapshot.regions)
        or not types <= set(snapshot.resource_types)
    ):
        return False
    if is_exactly(snapshot, scope):
        return all(entry.get("reason", "error") == "error" for entry in snapshot.failed_shards)
    return not any(
        (entry.get("account_id") or snapshot.account_id) in accounts
        and entry.get("region") in regions
        and entry.get("resource_type") in types
        for entry in snapshot.failed_shards
    )


def is_exactly(snapshot: SnapshotRecord, scope: Scope) -> bool:
    """Whether ``snapshot`` is of exactly ``scope``'s accounts, regions and types."""
    return (sorted(snapshot.covered_accounts), set(snapshot.regions), set(snapshot.resource_types)) == (
        scope.audited_accounts,
        set(scope.regions),
        set(scope.resource_types),
    )


def narrowed(source: Observation, scope: Scope) -> Observation:
    """The part of a covering snapshot that ``scope`` asks about, as a snapshot of its own (same
    moment, same policy, its own counts); the caller stores it so pages and history can find it."""
    accounts, regions, types = set(scope.audited_accounts), set(scope.regions), set(scope.resource_types)
    resources = [
        resource
        for resource in source.resources
        if resource.account_id in accounts and resource.region in regions and resource.resource_type in types
    ]
    inventory = Inventory(
        account_id=scope.account_id,
        regions=list(scope.regions),
        resource_types=list(scope.resource_types),
        resources=resources,
        scanned_at=source.snapshot.created_at,
    )
    policy = source.policy
    evaluation = evaluate(resources, compile_policy(policy, scope.resource_types))
    snapshot = dataclasses.replace(
        build_snapshot(inventory, evaluation, policy, source.snapshot.trigger),
        scheduled=source.snapshot.scheduled,
        accounts=list(scope.audited_accounts),
    )
    return Observation(snapshot, resources, True, policy, evaluation)


def counts_by(
    resources: Sequence[Resource],
    evaluation: Evaluation,
    attribute: str,
    compiled: CompiledPolicy | None = None,
) -> dict[str, dict[str, int]]:
    """Per value of ``attribute``: resources found, compliant ones (those without requirements
    included) and violations; with ``compiled``, also ``scanned`` (resources with requirements, as
    ``evaluate`` counts them), so each group has its own score."""
    violations_per = evaluation.counts(attribute)  # from the findings: no Violation objects built
    counts: dict[str, dict[str, int]] = {}
    for resource in resources:
        entry = counts.setdefault(getattr(resource, attribute), {"total": 0, "compliant": 0, "violations": 0})
        entry["total"] += 1
        if resource.arn not in evaluation.noncompliant_arns:
            entry["compliant"] += 1
        if compiled is not None and (compiled.rules.get(resource.resource_type) or compiled.prohibited):
            entry["scanned"] = entry.get("scanned", 0) + 1
    for key, count in violations_per.items():
        counts.setdefault(key, {"total": 0, "compliant": 0, "violations": 0})["violations"] = count
    return counts


def build_snapshot(
    inventory: Inventory, evaluation: Evaluation, policy: TaggingPolicy, trigger: str = "manual"
) -> SnapshotRecord:
    """The snapshot record of one scan (shared by the gateway and the audit pipeline).

    The scan is of ``inventory.account_id`` alone; the pipeline replaces ``account_id`` and
    ``accounts`` for a run over several accounts (``counts_by_account`` already groups the
    resources by their own account).
    """
    whole, single = failed_coverage(inventory.shards, inventory.unreadable)
    return SnapshotRecord(
        snapshot_id=str(uuid.uuid4()),
        created_at=inventory.scanned_at,
        account_id=inventory.account_id,
        regions=inventory.regions,
        resource_types=inventory.resource_types,
        policy_digest=policy.digest(),
        policy=policy.model_dump(mode="json"),
        total_resources=len(inventory.resources),
        scanned_resources=evaluation.scanned,
        compliant_resources=evaluation.compliant,
        compliance_score=evaluation.compliance_score,
        violation_count=evaluation.violation_count,
        counts_by_type=counts_by(inventory.resources, evaluation, "resource_type"),
        counts_by_region=counts_by(inventory.resources, evaluation, "region"),
        counts_by_violation=evaluation.counts("violation_type"),
        failed_shards=[shard.model_dump(exclude_none=True) for shard in whole + single],
        trigger=trigger,
        scheduled=trigger != "manual",
        accounts=[inventory.account_id],
        counts_by_account=dict(
            sorted(
                counts_by(
                    inventory.resources,
                    evaluation,
                    "account_id",
                    compile_policy(policy, inventory.resource_types),
                ).items()
            )
        ),
    )


def failed_coverage(
    outcomes: Iterable[ShardOutcome], unreadable: Iterable[UnreadableResource], account_id: str | None = None
) -> tuple[list[FailedShard], list[FailedShard]]:
    """What a scan could not read: the failed shards, and the single resources with unreadable tags."""
    whole = [
        FailedShard(
            region=outcome.region,
            resource_type=outcome.resource_type,
            error=outcome.error or "unknown error",
            account_id=account_id,
            reason=outcome.reason,
        )
        for outcome in outcomes
        if outcome.status == "failed"
    ]
    single = [
        FailedShard(
            region=item.region,
            resource_type=item.resource_type,
            error=item.error,
            resource_arn=item.arn,
            account_id=account_id,
            reason=item.reason,
        )
        for item in unreadable
    ]
    return whole, single


def resource_states(
    snapshot_id: str, resources: Iterable[Resource], noncompliant: set[str]
) -> Iterable[ResourceStateRecord]:
    for resource in resources:
        yield ResourceStateRecord(
            snapshot_id=snapshot_id,
            resource_arn=resource.arn,
            resource_type=resource.resource_type,
            region=resource.region,
            account_id=resource.account_id,
            tags=resource.tags,
            compliant=resource.arn not in noncompliant,
            name=resource.name,
            vpc_id=resource.vpc_id,
        )


def resource_from_state(state: ResourceStateRecord) -> Resource:
    return Resource(
        arn=state.resource_arn,
        resource_type=state.resource_type,
        region=state.region,
        account_id=state.account_id,
        resource_id=resource_id_from_arn(REGISTRY[state.resource_type], state.resource_arn),
        tags=state.tags,
        name=state.name,
        vpc_id=state.vpc_id,
    )


class EvaluatedSnapshots:
    """Evaluated observations by (snapshot id, policy digest), bounded by count and resources held."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._evaluated: ObjectLRU[tuple[str, str], Observation] = ObjectLRU(
            EVALUATED_SNAPSHOTS, EVALUATED_RESOURCES
        )

    def remember(self, observation: Observation) -> None:
        observation.evaluate()  # kept complete: readers share it and never evaluate it again
        key = (observation.snapshot.snapshot_id, observation.snapshot.policy_digest)
        self._evaluated.put(key, observation, len(observation.resources))

    def load(self, snapshot_id: str, policy_digest: str | None = None) -> Observation | None:
        """A stored snapshot as a cached observation: from memory when it was evaluated recently,
        else loaded from the store and evaluated once. ``policy_digest`` (when known) is the digest
        the snapshot must have been evaluated with."""
        if policy_digest is not None:
            remembered = self._evaluated.get((snapshot_id, policy_digest))
            if remembered is not None:
                return remembered.served_from_cache()
        snapshot = self.store.get_snapshot(snapshot_id)
        if snapshot is None or (policy_digest is not None and snapshot.policy_digest != policy_digest):
            return None
        remembered = self._evaluated.get((snapshot_id, snapshot.policy_digest))
        if remembered is not None:
            return remembered.served_from_cache()
        resources = [resource_from_state(state) for state in self.store.iter_resource_states(snapshot_id)]
        observation = Observation(snapshot=snapshot, resources=resources, cached=True)
        self.remember(observation)
        return observation

"""The application service: the eight core questions, answered from AWS, the store and the cache.

Every scan becomes a snapshot in the store (scope, policy, counts and per-resource tag state).
The cache maps a scope (account, regions, types, policy digest) to the snapshot that answered it,
so repeated questions and further pages are served from the store without touching AWS.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal, TextIO

from .aws import AwsClients
from .cache import Cache, ObjectLRU, scan_cache_key
from .compliance import (
    SEVERITY,
    Evaluation,
    Resource,
    Violation,
    compile_policy,
    evaluate,
    missing_tags_by_resource,
)
from .cost import (
    CostAttributionGap,
    ResourceCostEstimate,
    ResourceCostsUnavailableError,
    cost_attribution_gap,
    resource_level_costs,
)
from .drift import CloudTrailTagEvents, DriftResult, TagChangeEvents, choose_baseline, detect_drift
from .errors import InvalidInputError, ResourceNotFoundError
from .export import export_violations
from .inventory import Inventory, ProgressCallback, collect_inventory
from .models import (
    ComplianceCheckResult,
    ExportResult,
    FailedShard,
    FindUntaggedResult,
    HistoryPoint,
    HistoryResult,
    PolicyResult,
    ReportResult,
    ResourceValidation,
    ScheduleAction,
    ScopeInfo,
    TypeCounts,
    UntaggedResource,
    ValidateResult,
    ViolationOut,
)
from .policy import LoadedPolicy, TaggingPolicy, load_policy, parse_policy
from .reports import report_summary, write_json, write_markdown
from .resources import (
    REGISTRY,
    RESOURCE_TYPE_IDS,
    parse_arn,
    region_filter,
    resolve_resource_types,
    resource_id_from_arn,
)
from .schedules import SchedulerBackend, ScheduleService
from .settings import Settings
from .store import ResourceStateRecord, ScheduledAuditRecord, SnapshotRecord, Store
from .suggest import TagSuggestions, suggest_tags

Severity = Literal["all", "errors_only", "warnings_only"]
MAX_REGIONS = 40
INLINE_REPORT_CHARS = 60_000  # what fits an LLM's context comfortably
INLINE_PREVIEW_CHARS = 8_000
# Evaluated snapshots kept in memory, so a cached question is a lookup, not a reload and re-evaluation.
# Snapshots never change once stored, so entries never go stale; they age out past these bounds.
EVALUATED_SNAPSHOTS = 16
EVALUATED_RESOURCES = 1_000_000  # resources held over all of them
MAX_ESTIMATES = 50


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

    @property
    def scope(self) -> ScopeInfo:
        return ScopeInfo(
            account_id=self.snapshot.account_id,
            regions=self.snapshot.regions,
            resource_types=self.snapshot.resource_types,
            accounts=self.snapshot.covered_accounts,
        )


def _encode_cursor(payload: dict[str, object]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str) -> dict[str, object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInputError(
            "cursor is not valid: pass the next_cursor value of a previous answer"
        ) from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise InvalidInputError(f"cursor does not belong to {kind}: pass the next_cursor this tool returned")
    return payload


def _severity_filter(severity: Severity) -> set[str] | None:
    return {"all": None, "errors_only": {"error"}, "warnings_only": {"warning"}}[severity]


def violation_out(violation: Violation, policy: TaggingPolicy) -> ViolationOut:
    return ViolationOut(
        resource_arn=violation.resource_arn,
        resource_type=violation.resource_type,
        region=violation.region,
        violation_type=violation.violation_type,
        tag_key=violation.tag_key,
        current_value=violation.current_value,
        severity=violation.severity,
        expected=policy.expectation(violation.tag_key, violation.violation_type),
        actual_key=violation.actual_key,
    )


def _counts(
    resources: Sequence[Resource], evaluation: Evaluation, attribute: str
) -> dict[str, dict[str, int]]:
    violations_per = evaluation.counts(attribute)  # from the findings: no Violation objects built
    counts: dict[str, dict[str, int]] = {}
    for resource in resources:
        entry = counts.setdefault(getattr(resource, attribute), {"total": 0, "compliant": 0, "violations": 0})
        entry["total"] += 1
        if resource.arn not in evaluation.noncompliant_arns:
            entry["compliant"] += 1
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
    failed: list[dict[str, object]] = [
        {
            "region": shard.region,
            "resource_type": shard.resource_type,
            "error": shard.error or "unknown error",
        }
        for shard in inventory.failed_shards
    ]
    failed.extend(
        {
            "region": item.region,
            "resource_type": item.resource_type,
            "error": item.error,
            "resource_arn": item.arn,
        }
        for item in inventory.unreadable
    )
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
        counts_by_type=_counts(inventory.resources, evaluation, "resource_type"),
        counts_by_region=_counts(inventory.resources, evaluation, "region"),
        counts_by_violation=evaluation.counts("violation_type"),
        failed_shards=failed,  # type: ignore[arg-type]
        trigger=trigger,
        scheduled=trigger != "manual",
        accounts=[inventory.account_id],
        counts_by_account=dict(sorted(_counts(inventory.resources, evaluation, "account_id").items())),
    )


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


def _resource_from_state(state: ResourceStateRecord) -> Resource:
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


class ComplianceService:
    """One per process; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        store: Store,
        cache: Cache,
        tag_events: TagChangeEvents | None = None,
        scheduler: SchedulerBackend | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.store = store
        self.cache = cache
        # Who changed a tag and when (CloudTrail); replaceable where CloudTrail is not available.
        self.tag_events: TagChangeEvents = tag_events or CloudTrailTagEvents(clients)
        # The store holds the schedules; EventBridge Scheduler mirrors them when deployed.
        self.schedules = ScheduleService(store, scheduler)
        self._policy_lock = threading.Lock()
        self._policy: LoadedPolicy | None = None
        self._policy_mtime: float | None = None
        # Snapshot id + the digest of the policy it was evaluated with -> the evaluated observation.
        self._evaluated: ObjectLRU[tuple[str, str], Observation] = ObjectLRU(
            EVALUATED_SNAPSHOTS, EVALUATED_RESOURCES
        )

    # --- policy ------------------------------------------------------------------------

    @property
    def loaded_policy(self) -> LoadedPolicy:
        """The policy file, re-read when it changes on disk; the default policy when there is none."""
        path = Path(self.settings.policy_path)
        mtime = path.stat().st_mtime if path.exists() else None
        with self._policy_lock:
            if self._policy is None or mtime != self._policy_mtime:
                self._policy = load_policy(path)
                self._policy_mtime = mtime
            return self._policy

    def policy_info(self) -> PolicyResult:
        loaded = self.loaded_policy
        policy = loaded.policy
        return PolicyResult(
            source=loaded.source,
            path=str(Path(loaded.path).resolve()) if loaded.path else None,
            digest=policy.digest(),
            policy=policy.model_dump(mode="json"),
            resource_types={
                type_id: [tag.name for tag in policy.required_for(type_id)] for type_id in RESOURCE_TYPE_IDS
            },
        )

    # --- scope and observation ---------------------------------------------------------

    def resolve_regions(self, regions: Sequence[str] | None) -> list[str]:
        values = list(regions or [])
        if not values:
            return list(self.settings.default_regions)
        if values == ["all"]:
            return self.clients.enabled_regions()
        values = region_filter(values) or []
        if len(values) > MAX_REGIONS:
            raise InvalidInputError(f"at most {MAX_REGIONS} regions per call, got {len(values)}")
        return values

    def observe(
        self,
        resource_types: Sequence[str] | None,
        regions: Sequence[str] | None,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
        trigger: str = "manual",
    ) -> Observation:
        """The latest snapshot for this scope from the cache, or a fresh scan stored as a snapshot."""
        type_ids = resolve_resource_types(resource_types)
        region_list = self.resolve_regions(regions)
        policy = self.loaded_policy.policy
        key = scan_cache_key("scan", self.clients.account_id, region_list, type_ids, policy.digest())
        if not force_refresh:
            cached = self.cache.get(key)
            if isinstance(cached, str):
                observation = self._load_observation(cached, policy.digest())
                if observation is not None:
                    return observation
        inventory = collect_inventory(
            self.clients, region_list, type_ids, max_workers=self.settings.scan_max_workers, progress=progress
        )
        compiled = compile_policy(policy, type_ids)
        evaluation = evaluate(inventory.resources, compiled)
        snapshot = build_snapshot(inventory, evaluation, policy, trigger)
        self.store.save_snapshot(
            snapshot, resource_states(snapshot.snapshot_id, inventory.resources, evaluation.noncompliant_arns)
        )
        self.cache.set(key, snapshot.snapshot_id, self.settings.cache_ttl_seconds)
        observation = Observation(snapshot=snapshot, resources=inventory.resources, cached=False)
        if list(snapshot.resource_types) == list(type_ids):  # evaluated exactly as evaluate() would
            observation.evaluation = evaluation
        self._remember(observation)
        return observation

    def _remember(self, observation: Observation) -> None:
        observation.evaluate()  # kept complete: readers share it and never evaluate it again
        key = (observation.snapshot.snapshot_id, observation.snapshot.policy_digest)
        self._evaluated.put(key, observation, len(observation.resources))

    def _load_observation(self, snapshot_id: str, policy_digest: str | None = None) -> Observation | None:
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
        resources = [_resource_from_state(state) for state in self.store.iter_resource_states(snapshot_id)]
        observation = Observation(snapshot=snapshot, resources=resources, cached=True)
        self._remember(observation)
        return observation

    def _snapshot_for_cursor(self, snapshot_id: object) -> Observation:
        observation = self._load_observation(str(snapshot_id)) if isinstance(snapshot_id, str) else None
        if observation is None:
            raise InvalidInputError("cursor refers to a snapshot that no longer exists: run the check again")
        return observation

    def _page_start(
        self,
        kind: str,
        cursor: str | None,
        resource_types: Sequence[str] | None,
        regions: Sequence[str] | None,
        force_refresh: bool,
        progress: ProgressCallback | None,
    ) -> tuple[Observation, int, dict[str, object]]:
        """The observation and offset a page starts from: the cursor's snapshot, or the scope's."""
        if not cursor:
            return self.observe(resource_types, regions, force_refresh, progress), 0, {}
        payload = _decode_cursor(cursor, kind)
        offset = payload.get("o", 0)
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInputError("cursor is not valid: pass the next_cursor value of a previous answer")
        return self._snapshot_for_cursor(payload.get("s")), offset, payload

    # --- 1. check_tag_compliance -------------------------------------------------------

    def check_compliance(
        self,
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        severity: Severity = "all",
        force_refresh: bool = False,
        page_size: int = 50,
        cursor: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ComplianceCheckResult:
        if not cursor and (job := self._large_scan_job(resource_types, regions, force_refresh)) is not None:
            return job
        observation, offset, payload = self._page_start(
            "check", cursor, resource_types, regions, force_refresh, progress
        )
        if cursor:
            severity = payload.get("v", "all")  # type: ignore[assignment]
        snapshot = observation.snapshot
        policy = observation.policy
        evaluation = observation.evaluate()
        wanted = _severity_filter(severity)
        # Only the page's violations are built; the total comes from the evaluation's counts.
        selected_count = (
            evaluation.violation_count
            if wanted is None
            else sum(n for level, n in evaluation.counts("severity").items() if level in wanted)
        )
        page = evaluation.page(offset, page_size, wanted)
        next_offset = offset + len(page)
        next_cursor = (
            _encode_cursor({"k": "check", "s": snapshot.snapshot_id, "o": next_offset, "v": severity})
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
            score_note = (
                "Partial coverage: the score covers only the shards that were read (see failed_shards)"
            )
        return ComplianceCheckResult(
            compliance_score=snapshot.compliance_score,
            score_note=score_note,
            total_resources=snapshot.total_resources,
            scanned_resources=snapshot.scanned_resources,
            compliant_resources=snapshot.compliant_resources,
            violation_count=selected_count,
            violations_by_type={
                k: v
                for k, v in sorted(snapshot.counts_by_violation.items())
                if wanted is None or SEVERITY[k] in wanted
            },
            by_resource_type={k: TypeCounts(**v) for k, v in sorted(snapshot.counts_by_type.items())},
            by_region={k: TypeCounts(**v) for k, v in sorted(snapshot.counts_by_region.items())},
            by_account={k: TypeCounts(**v) for k, v in sorted(snapshot.counts_by_account.items())},
            violations=[violation_out(v, policy) for v in page],
            next_cursor=next_cursor,
            failed_shards=observation.failed_shards,
            scope=observation.scope,
            snapshot_id=snapshot.snapshot_id,
            scanned_at=snapshot.created_at,
            cached=observation.cached,
            policy_source=self.loaded_policy.description,
        )

    # --- 2. find_untagged_resources ----------------------------------------------------

    def find_untagged(
        self,
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        force_refresh: bool = False,
        page_size: int = 50,
        cursor: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> FindUntaggedResult:
        observation, offset, _ = self._page_start(
            "untagged", cursor, resource_types, regions, force_refresh, progress
        )
        snapshot = observation.snapshot
        missing = missing_tags_by_resource(observation.evaluate().iter_violations())
        untagged = [resource for resource in observation.resources if resource.arn in missing]
        by_type: dict[str, int] = defaultdict(int)
        for resource in untagged:
            by_type[resource.resource_type] += 1
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
            next_cursor=_encode_cursor({"k": "untagged", "s": snapshot.snapshot_id, "o": next_offset})
            if next_offset < len(untagged)
            else None,
            untagged_by_type=dict(sorted(by_type.items())),
            failed_shards=observation.failed_shards,
            scope=observation.scope,
            snapshot_id=snapshot.snapshot_id,
            scanned_at=snapshot.created_at,
            cached=observation.cached,
        )

    # --- 3. validate_resource_tags -----------------------------------------------------

    def validate_resources(
        self,
        resource_arns: Sequence[str],
        regions: Sequence[str] | None = None,
        force_refresh: bool = True,
        progress: ProgressCallback | None = None,
    ) -> ValidateResult:
        parsed = [parse_arn(arn) for arn in resource_arns]  # every ARN is checked before any scan
        account_id = self.clients.account_id
        bucket_regions = self.resolve_regions(regions)
        scopes: dict[str, set[str]] = defaultdict(set)  # region -> types
        for item in parsed:
            for region in [item.region] if item.region else bucket_regions:
                scopes[region].add(item.resource_type)
        found: dict[str, Resource] = {}
        failed: list[FailedShard] = []
        scanned_at = datetime.now(UTC)
        for region, types in sorted(scopes.items()):
            observation = self.observe(sorted(types), [region], force_refresh, progress)
            failed.extend(observation.failed_shards)
            scanned_at = min(scanned_at, observation.snapshot.created_at)
            for resource in observation.resources:
                found[resource.arn] = resource
        policy = self.loaded_policy.policy
        compiled = compile_policy(policy, RESOURCE_TYPE_IDS)
        results: list[ResourceValidation] = []
        for item in parsed:
            resource = found.get(item.arn)
            if resource is None:
                shard_failed = [
                    shard
                    for shard in failed
                    if shard.resource_type == item.resource_type
                    and (shard.resource_arn in (None, item.arn))
                    and (not item.region or shard.region == item.region)
                ]
                if shard_failed:
                    results.append(
                        ResourceValidation(
                            resource_arn=item.arn,
                            status="not_scanned",
                            resource_type=item.resource_type,
                            region=item.region or None,
                            detail=shard_failed[0].error,
                        )
                    )
                    continue
                if item.account_id and item.account_id != account_id:
                    detail = f"the ARN is in account {item.account_id}; the scanned account is {account_id}"
                elif item.region:
                    detail = f"no {item.resource_type} with this ARN exists in {item.region}"
                else:
                    detail = f"no bucket with this name in regions {', '.join(bucket_regions)}"
                results.append(
                    ResourceValidation(
                        resource_arn=item.arn,
                        status="not_found",
                        resource_type=item.resource_type,
                        region=item.region or None,
                        detail=detail,
                    )
                )
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
                    violations=[violation_out(v, policy) for v in evaluation.violations],
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

    # --- 4. get_cost_attribution_gap ---------------------------------------------------

    def cost_gap(
        self,
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        tag_keys: Sequence[str] | None = None,
        include_resource_estimates: bool = False,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
    ) -> CostAttributionGap:
        """Cost Explorer's answer for a scope, cached like scans: every Cost Explorer request costs $0.01."""
        type_ids = resolve_resource_types(resource_types)
        region_list = self.resolve_regions(regions)
        end = end or datetime.now(UTC).date()
        start = start or end - timedelta(days=self.settings.cost_lookback_days)
        policy = self.loaded_policy.policy
        key = scan_cache_key(
            "cost",
            self.clients.account_id,
            region_list,
            type_ids,
            policy.digest(),
            start.isoformat(),
            end.isoformat(),
            ",".join(sorted(tag_keys or [])),
            str(include_resource_estimates),
        )
        if not force_refresh:
            cached = self.cache.get(key)
            if isinstance(cached, dict):
                return CostAttributionGap.model_validate({**cached, "cached": True})
        # The scope's inventory (usually cached) lets the gap say which resources carry the spend.
        observation = self.observe(type_ids, region_list, False, progress)
        result = cost_attribution_gap(
            self.clients,
            policy,
            type_ids,
            region_list,
            start,
            end,
            list(tag_keys or []) or None,
            observation.resources,
        )
        notes = list(result.notes)
        estimates: list[ResourceCostEstimate] = []
        if include_resource_estimates:
            untagged = missing_tags_by_resource(observation.evaluate().iter_violations())
            by_arn = {estimate.arn: estimate for estimate in result.estimates if estimate.arn in untagged}
            if by_arn:
                try:  # measured figures replace the service-average estimates where AWS has them
                    by_arn.update(resource_level_costs(self.clients, sorted(by_arn), start, end))
                except ResourceCostsUnavailableError as error:
                    notes.append(
                        f"Resource-level costs unavailable ({error}): service-average estimates shown."
                    )
            estimates = sorted(by_arn.values(), key=lambda estimate: (-estimate.cost, estimate.arn))
            if len(estimates) > MAX_ESTIMATES:
                notes.append(
                    f"{len(estimates)} resources miss a required tag; the largest {MAX_ESTIMATES} are listed."
                )
        result = result.model_copy(update={"estimates": estimates[:MAX_ESTIMATES], "notes": notes})
        self.cache.set(key, result.model_dump(mode="json"), self.settings.cache_ttl_seconds)
        return result

    # --- 5. suggest_tags ---------------------------------------------------------------

    def suggest(
        self,
        resource_arn: str,
        regions: Sequence[str] | None = None,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
    ) -> TagSuggestions:
        """Suggestions from the resource's own name, its siblings and account-wide majorities."""
        parsed = parse_arn(resource_arn)
        region_list = [parsed.region] if parsed.region else self.resolve_regions(regions)
        # Siblings of every type count (same VPC, same stack), so the whole region is observed.
        observation = self.observe(None, region_list, force_refresh, progress)
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
        return suggest_tags(target, observation.resources, self.loaded_policy.policy)

    # --- 12. detect_tag_drift -----------------------------------------------------------

    def tag_drift(
        self,
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        lookback_days: int | None = None,
        tag_keys: Sequence[str] | None = None,
        threshold: int | None = None,
        limit: int = 100,
        progress: ProgressCallback | None = None,
    ) -> DriftResult:
        """Current tags (a fresh scan) against the stored tag state of an earlier snapshot of the scope."""
        type_ids = resolve_resource_types(resource_types)
        region_list = self.resolve_regions(regions)
        # The baseline is chosen before scanning, so the new scan can never be its own baseline.
        baseline = choose_baseline(
            self.store, (type_ids, region_list, self.clients.account_id), lookback_days, datetime.now(UTC)
        )
        observation = self.observe(type_ids, region_list, True, progress)
        previous = self.store.iter_resource_states(baseline.snapshot_id) if baseline else []
        result = detect_drift(
            previous,
            observation.resources,
            observation.policy,
            tag_keys=list(tag_keys) if tag_keys else None,
            threshold=threshold,
            events=self.tag_events if baseline else None,
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

    # --- 11. schedule_compliance_audit -------------------------------------------------

    def manage_schedule(
        self, action: str, schedule_id: str | None, fields: dict[str, object], created_by: str
    ) -> ScheduleAction:
        if action == "list":
            listing = self.schedules.list(fields.pop("status", None))  # type: ignore[arg-type]
            return ScheduleAction(action=action, schedules=listing.schedules, total=listing.total)
        if action == "create":
            if schedule_id:
                raise InvalidInputError("create assigns the schedule_id: do not pass one")
            return ScheduleAction(action=action, schedule=self.schedules.create(fields, created_by))
        if not schedule_id:
            raise InvalidInputError(f"{action} needs the schedule_id (list shows them)")
        if action == "update":
            if not fields:
                raise InvalidInputError("update needs at least one field to change")
            return ScheduleAction(action=action, schedule=self.schedules.update(schedule_id, fields))
        if fields:
            raise InvalidInputError(f"{action} takes only schedule_id, not {', '.join(sorted(fields))}")
        operations = {
            "get": self.schedules.get,
            "pause": self.schedules.pause,
            "resume": self.schedules.resume,
            "delete": self.schedules.delete,
        }
        return ScheduleAction(action=action, schedule=operations[action](schedule_id))

    def run_scheduled_audit(self, record: ScheduledAuditRecord) -> str:
        """One scheduled audit: a fresh scan of the schedule's scope, stored flagged as scheduled."""
        observation = self.observe(record.resource_types, record.regions or None, True, trigger="scheduled")
        return observation.snapshot.snapshot_id

    # --- 13. export_violations_csv ------------------------------------------------------

    def export_violations(
        self,
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        severity: Severity = "all",
        violation_types: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        limit: int = 500,
        cursor: str | None = None,
        to_file: bool = False,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ExportResult:
        observation, offset, payload = self._page_start(
            "export", cursor, resource_types, regions, force_refresh, progress
        )
        if cursor:  # a cursor carries the filters of the export it continues
            severity = payload.get("v", "all")  # type: ignore[assignment]
            violation_types = payload.get("t")  # type: ignore[assignment]
            columns = payload.get("c")  # type: ignore[assignment]
        snapshot = observation.snapshot
        options = {
            "columns": columns,
            "severity": severity,
            "violation_types": violation_types,
            "policy": observation.policy,
            "account_id": snapshot.account_id,
        }
        evaluation = observation.evaluate()
        violations = evaluation.iter_violations()  # streamed: one Violation at a time, none kept
        if to_file:
            exports = self.settings.data_dir / "exports"
            exports.mkdir(parents=True, exist_ok=True)
            path = exports / f"violations-{snapshot.snapshot_id}-{uuid.uuid4().hex[:8]}.csv"
            partial = path.with_suffix(".csv.part")
            with partial.open("w", encoding="utf-8", newline="") as out:
                page = export_violations(violations, out=out, **options)  # type: ignore[arg-type]
            partial.replace(path)  # never a half-written export under the final name
            return ExportResult(
                **page.model_dump(),
                file_path=str(path),
                next_cursor=None,
                snapshot_id=snapshot.snapshot_id,
                failed_shards=observation.failed_shards,
            )
        page = export_violations(violations, offset=offset, limit=limit, **options)  # type: ignore[arg-type]
        next_cursor = None
        if page.next_offset is not None:
            next_cursor = _encode_cursor(
                {
                    "k": "export",
                    "s": snapshot.snapshot_id,
                    "o": page.next_offset,
                    "v": severity,
                    "t": list(violation_types) if violation_types else None,
                    "c": list(columns) if columns else None,
                }
            )
        return ExportResult(
            **page.model_dump(),
            next_cursor=next_cursor,
            snapshot_id=snapshot.snapshot_id,
            failed_shards=observation.failed_shards,
        )

    # --- 7. generate_compliance_report -------------------------------------------------

    def compliance_report(
        self,
        report_format: Literal["json", "csv", "markdown"] = "markdown",
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        include_violations: bool = True,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ReportResult:
        observation = self.observe(resource_types, regions, force_refresh, progress)
        snapshot = observation.snapshot
        evaluation = observation.evaluate()
        summary = report_summary(snapshot, evaluation.iter_violations())
        listed = evaluation.iter_violations() if include_violations else None
        reports_dir = self.settings.data_dir / "reports"
        reports_dir.mkdir(parents=True, exist_ok=True)
        extension = {"json": "json", "csv": "csv", "markdown": "md"}[report_format]
        path = reports_dir / f"compliance-report-{snapshot.snapshot_id}.{extension}"
        # Streamed to a file, never held whole in memory; read back only when it is small enough to inline.
        temporary = path.with_suffix(f"{path.suffix}.{uuid.uuid4().hex[:8]}.part")
        with temporary.open("w", encoding="utf-8", newline="") as out:
            _write_report(report_format, summary, listed, evaluation.iter_violations(), out)
        content: str | None = None
        if temporary.stat().st_size <= 4 * INLINE_REPORT_CHARS:  # UTF-8: at most 4 bytes a character
            with temporary.open(encoding="utf-8", newline="") as written:
                content = written.read()
            if len(content) > INLINE_REPORT_CHARS:
                content = None
        if content is not None:
            temporary.unlink()
            return ReportResult(
                format=report_format,
                content=content,
                summary=summary,
                snapshot_id=snapshot.snapshot_id,
                failed_shards=observation.failed_shards,
            )
        temporary.replace(path)  # never a half-written report under the final name
        with path.open(encoding="utf-8", newline="") as written:
            preview = written.read(INLINE_PREVIEW_CHARS)
        return ReportResult(
            format=report_format,
            content=preview,
            file_path=str(path),
            truncated=True,
            summary=summary,
            snapshot_id=snapshot.snapshot_id,
            failed_shards=observation.failed_shards,
        )

    # --- 8. get_violation_history ------------------------------------------------------

    def violation_history(
        self,
        days_back: int = 30,
        group_by: Literal["day", "week", "month"] = "day",
        resource_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
    ) -> HistoryResult:
        since = datetime.now(UTC) - timedelta(days=days_back)
        snapshots = self.store.list_snapshots(since=since, limit=100_000)
        note = None
        if resource_types or regions:
            wanted_types = sorted(resolve_resource_types(resource_types)) if resource_types else None
            wanted_regions = sorted(self.resolve_regions(regions)) if regions else None
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
            note = (
                f"Showing snapshots with the latest one's scope ({len(scope[0])} resource types, regions "
                f"{', '.join(scope[1])}); pass resource_types/regions to choose another scope."
            )
        periods: dict[datetime, list[SnapshotRecord]] = defaultdict(list)
        for snapshot in snapshots:
            periods[_period_start(snapshot.created_at, group_by)].append(snapshot)
        points = []
        for start in sorted(periods):
            last = periods[start][-1]  # a point in time: the period's latest measurement
            points.append(
                HistoryPoint(
                    period_start=start,
                    trigger=last.trigger,
                    scheduled=last.scheduled,
                    compliance_score=last.compliance_score,
                    total_resources=last.total_resources,
                    compliant_resources=last.compliant_resources,
                    violation_count=last.violation_count,
                    snapshots=len(periods[start]),
                )
            )
        scored = [p.compliance_score for p in points if p.compliance_score is not None]
        change = round(scored[-1] - scored[0], 4) if len(scored) >= 2 else None
        trend: Literal["improving", "declining", "stable", "insufficient_data"]
        if change is None:
            trend = "insufficient_data"
        else:
            trend = "improving" if change > 0.01 else "declining" if change < -0.01 else "stable"
        return HistoryResult(
            group_by=group_by,
            days_back=days_back,
            points=points,
            trend=trend,
            score_change=change,
            snapshot_count=len(snapshots),
            note=note,
        )

    # --- large scans as audit jobs (tagcompliance.audits.jobs; set by the gateway's runtime) ------

    large_scan_jobs: object | None = None  # a LargeScanJobs: check_or_start(...) -> result | None

    def _large_scan_job(
        self, resource_types: Sequence[str] | None, regions: Sequence[str] | None, force_refresh: bool
    ) -> ComplianceCheckResult | None:
        """A job-handle answer when this check's scan is estimated to outlast a tool call."""
        if self.large_scan_jobs is None:
            return None
        loaded = self.loaded_policy
        return self.large_scan_jobs.check_or_start(  # type: ignore[attr-defined]
            resource_types, self.resolve_regions(regions), loaded.policy, loaded.description, force_refresh
        )


def _write_report(
    report_format: str,
    summary: dict[str, object],
    listed: Iterable[Violation] | None,
    violations: Iterable[Violation],
    out: TextIO,
) -> None:
    if report_format == "csv":  # the export's writer: RFC 4180, formula cells neutralised
        export_violations(violations, out=out)
    elif report_format == "json":
        write_json(summary, listed, out)
    else:
        write_markdown(summary, listed, out)


def _period_start(moment: datetime, group_by: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if group_by == "week":
        return day - timedelta(days=day.weekday())
    if group_by == "month":
        return day.replace(day=1)
    return day

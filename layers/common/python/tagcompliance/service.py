"""The interactive service: the facade the gateway calls for every core question.

Owns the policy file (re-read when it changes), scope resolution (regions), ``observe`` (a cached
snapshot for a scope, or a fresh scan stored as one), the large-scan job hand-off and schedule
management. The questions themselves live in ``tagcompliance.queries`` and are bound here as methods;
snapshots and their evaluation cache live in ``tagcompliance.snapshots``.

Every scan becomes a snapshot in the store (scope, policy, counts and per-resource tag state).
The cache maps a scope (account, regions, types, policy digest) to the snapshot that answered it,
so repeated questions and further pages are served from the store without touching AWS.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .audits.models import AuditScope
from .audits.pipeline import plan_shards, run_snapshot, scan_accounts
from .aws import AwsClients
from .cache import Cache
from .compliance import Evaluation, compile_policy, evaluate
from .drift import CloudTrailTagEvents, TagChangeEvents
from .errors import InvalidInputError
from .inventory import Inventory, ProgressCallback, collect_inventory
from .models import ComplianceCheckResult, PolicyResult, ScheduleAction
from .policy import LoadedPolicy, TaggingPolicy, load_policy
from .queries import check, cost_gap, drift, history, reports, suggestions, untagged, validate
from .resilience import CallStoppedError, current_budget
from .resources import RESOURCE_TYPE_IDS
from .schedules import SchedulerBackend, ScheduleService
from .scope import Scope, ScopeResolver, configured_accounts
from .settings import Settings
from .snapshots import (
    EvaluatedSnapshots,
    Observation,
    build_snapshot,
    covers,
    is_exactly,
    narrowed,
    resource_states,
)
from .store import ScheduledAuditRecord, SnapshotRecord, Store


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
        self.evaluated = EvaluatedSnapshots(store)
        self.scopes = ScopeResolver(
            clients,
            settings.default_regions,
            configured=lambda: configured_accounts(
                settings.audit_accounts_from_organizations, settings.audit_accounts, clients
            ),
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
        return self.scopes.regions(regions)

    def observe(
        self,
        resource_types: Sequence[str] | None,
        regions: Sequence[str] | None,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
        trigger: str = "manual",
        accounts: Sequence[str] | None = None,
    ) -> Observation:
        """The latest snapshot for this scope from the cache, or a fresh scan stored as a snapshot."""
        return self.observe_scope(
            self.scopes.resolve(resource_types, regions, accounts), force_refresh, progress, trigger
        )

    def observe_scope(
        self,
        scope: Scope,
        force_refresh: bool = False,
        progress: ProgressCallback | None = None,
        trigger: str = "manual",
    ) -> Observation:
        """``observe`` for a scope already resolved."""
        type_ids, region_list = scope.resource_types, scope.regions
        policy = self.loaded_policy.policy
        key = scope.cache_key("scan", policy.digest())
        if not force_refresh and (cached := self.cached_observation(scope)) is not None:
            return cached
        if scope.other_accounts:
            snapshot, inventory, evaluation = self._scan_accounts(scope, policy, progress, trigger)
        else:
            inventory = collect_inventory(
                self.clients,
                region_list,
                type_ids,
                max_workers=self.settings.scan_max_workers,
                progress=progress,
            )
        budget = current_budget()
        if budget is not None and budget.stop_reason == "cancelled":
            raise CallStoppedError("cancelled")  # nobody waits for this answer: store nothing
        if not scope.other_accounts:
            evaluation = evaluate(inventory.resources, compile_policy(policy, type_ids))
            snapshot = build_snapshot(inventory, evaluation, policy, trigger)
        self.store.save_snapshot(
            snapshot, resource_states(snapshot.snapshot_id, inventory.resources, evaluation.noncompliant_arns)
        )
        if not inventory.interrupted:  # a scan cut short answers this call only; the next one re-scans
            self.cache.set(key, snapshot.snapshot_id, self.settings.cache_ttl_seconds)
        observation = Observation(snapshot=snapshot, resources=inventory.resources, cached=False)
        if list(snapshot.resource_types) == list(type_ids):  # evaluated exactly as evaluate() would
            observation.evaluation = evaluation
        self.evaluated.remember(observation)
        return observation

    def cached_observation(self, scope: Scope) -> Observation | None:
        """This scope's answer without scanning: its cached snapshot, else (within ``CACHE_TTL_SECONDS``)
        the part of the newest stored snapshot that covers it (``snapshots.covers``), stored as a
        snapshot of this scope and cached; None when neither exists or tags were written since."""
        policy = self.loaded_policy.policy
        digest = policy.digest()
        key = scope.cache_key("scan", digest)
        cached = self.cache.get(key)
        if isinstance(cached, str):
            observation = self.evaluated.load(cached, digest)
            if observation is not None and not self._tags_written_since(observation.snapshot.created_at):
                return observation
        ttl = self.settings.cache_ttl_seconds
        if ttl <= 0:
            return None
        now = datetime.now(UTC)
        for record in reversed(self.store.list_snapshots(since=now - timedelta(seconds=ttl))):
            if not covers(record, scope, digest):
                continue
            if self._tags_written_since(record.created_at):
                return None  # every older snapshot is staler still
            source = self.evaluated.load(record.snapshot_id, digest)
            if source is None:
                continue
            exact = is_exactly(record, scope)
            observation = source if exact else narrowed(source, scope)
            snapshot = observation.snapshot
            if not exact:
                self.store.save_snapshot(
                    snapshot,
                    resource_states(
                        snapshot.snapshot_id, observation.resources, observation.evaluate().noncompliant_arns
                    ),
                )
            # Cached for what is left of the covering snapshot's own time to live, not more.
            remaining = ttl - (now - record.created_at).total_seconds()
            if remaining >= 1:
                self.cache.set(key, snapshot.snapshot_id, int(remaining))
            self.evaluated.remember(observation)
            return observation
        return None

    def _scan_accounts(
        self, scope: Scope, policy: TaggingPolicy, progress: ProgressCallback | None, trigger: str
    ) -> tuple[SnapshotRecord, Inventory, Evaluation]:
        """A scan of several accounts within the call: the audit pipeline's own shard scan (AssumeRole
        of ``AUDIT_ROLE_NAME`` into each account but the credentials' own) and snapshot."""
        audit_scope = AuditScope(
            account_id=scope.account_id,
            accounts=scope.audited_accounts,
            regions=scope.regions,
            resource_types=scope.resource_types,
            trigger=trigger,
        )
        snapshot_id = str(uuid.uuid4())
        results = scan_accounts(
            snapshot_id,
            audit_scope,
            self.clients,
            self.settings.audit_role_name,
            self.settings.scan_max_workers,
            progress,
        )
        return run_snapshot(audit_scope, plan_shards(audit_scope), results, policy, snapshot_id)

    def note_tag_writes(self) -> None:
        """Tags were written (a remediation): every cached scan older than now is stale. One marker
        per account rather than per scope: cache keys are digests of any scope, so the scopes a
        write touched cannot be listed; a superset is invalidated instead, never too few."""
        self.cache.set(
            self._tag_writes_key(), datetime.now(UTC).isoformat(), max(self.settings.cache_ttl_seconds, 1)
        )

    def _tag_writes_key(self) -> str:
        return f"tagcompliance:tag-writes:{self.clients.account_id}"

    def _tags_written_since(self, moment: datetime) -> bool:
        marker = self.cache.get(self._tag_writes_key())
        return isinstance(marker, str) and datetime.fromisoformat(marker) >= moment

    def snapshot_for_cursor(self, snapshot_id: object) -> Observation:
        """The snapshot a cursor continues; a clear error when it is gone."""
        observation = self.evaluated.load(str(snapshot_id)) if isinstance(snapshot_id, str) else None
        if observation is None:
            raise InvalidInputError("cursor refers to a snapshot that no longer exists: run the check again")
        return observation

    # --- the questions (tagcompliance.queries), bound as methods ---------------------------

    check_compliance = check.check_compliance
    find_untagged = untagged.find_untagged
    validate_resources = validate.validate_resources
    cost_gap = cost_gap.cost_gap
    suggest = suggestions.suggest
    tag_drift = drift.tag_drift
    export_violations = reports.export_violations
    compliance_report = reports.compliance_report
    violation_history = history.violation_history

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

    # --- large scans as audit jobs (tagcompliance.audits.jobs; set by the gateway's runtime) ------

    large_scan_jobs: object | None = None  # a LargeScanJobs: check_or_start(...) -> result | None

    def large_scan_job(self, scope: Scope, force_refresh: bool) -> ComplianceCheckResult | None:
        """A job-handle answer when this check's scan is estimated to outlast a tool call."""
        if self.large_scan_jobs is None:
            return None
        if not force_refresh and self.cached_observation(scope) is not None:
            return None  # answered from a stored snapshot within the call, however large the scope
        loaded = self.loaded_policy
        return self.large_scan_jobs.check_or_start(  # type: ignore[attr-defined]
            scope, loaded.policy, loaded.description, force_refresh
        )

"""The pipeline's steps with their ledger bookkeeping: what each Lambda handler calls, once.

The in-process runner calls the same steps, so both runners record progress the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from pydantic import BaseModel, Field

from tagcompliance.aws import AwsClients
from tagcompliance.drift import choose_baseline, detect_drift
from tagcompliance.policy import TaggingPolicy, parse_policy
from tagcompliance.scope import ScopeResolver, configured_accounts
from tagcompliance.settings import Settings
from tagcompliance.snapshots import resource_from_state
from tagcompliance.store import Store

from .distributed import close_unfinished_shards
from .ledger import Ledger
from .models import AuditOutcome, AuditPlan, AuditRequest, AuditScope, Shard, ShardResult, snapshot_id_for
from .notify import DriftSummary, NotifyReport, build_message, deliver, run_recipients
from .pipeline import DEFAULT_ROLE_NAME, aggregate, failed_shard_result, outcome_of, plan_audit, scan_shard

PolicyLoader = Callable[[], TaggingPolicy]
logger = logging.getLogger("tagcompliance.audits")


class ScheduledStart(BaseModel):
    """The input EventBridge Scheduler starts the state machine with (``schedules.EventBridgeScheduler``)."""

    schedule_id: str | None = None
    resource_types: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    trigger: str = "scheduled"
    recipients: list[str] = Field(default_factory=list)
    correlation_id: str | None = None


def audited_accounts(settings: Settings, clients: AwsClients) -> list[str]:
    """The accounts a run audits: the organization's, the configured list, or the credentials' own."""
    return configured_accounts(
        settings.audit_accounts_from_organizations, settings.audit_accounts, clients
    ) or [clients.account_id]


def build_scope(
    settings: Settings,
    clients: AwsClients,
    resource_types: list[str] | None,
    regions: list[str] | None,
    trigger: str = "manual",
) -> AuditScope:
    """A run's scope with every default resolved: types, regions and the accounts from settings."""
    scope = ScopeResolver(clients, settings.default_regions).resolve(resource_types, regions)
    return AuditScope(
        account_id=scope.account_id,
        accounts=audited_accounts(settings, clients),
        regions=scope.regions,
        resource_types=scope.resource_types,
        trigger=trigger,
    )


def resolve_request(
    execution_input: dict[str, object], execution_name: str, clients: AwsClients, settings: Settings
) -> AuditRequest:
    """An ``AuditRequest`` as given, or one resolved from a scheduled start (run id: the execution name).

    A policy imported by the state machine's ImportPolicy step (``imported_policy``) is the one the
    run evaluates with. A start without a correlation id (a schedule's) gets ``correlation_of``'s.
    """
    if "scope" in execution_input:
        request = AuditRequest.model_validate(execution_input)
    else:
        start = ScheduledStart.model_validate(execution_input)
        scope = build_scope(settings, clients, start.resource_types, start.regions, start.trigger)
        request = AuditRequest(
            run_id=execution_name, scope=scope, schedule_id=start.schedule_id, recipients=start.recipients
        )
    request = request.model_copy(update={"correlation_id": correlation_of(execution_input, execution_name)})
    imported = execution_input.get("imported_policy")
    if isinstance(imported, dict) and imported.get("status") == "success" and imported.get("policy"):
        request = request.model_copy(update={"policy": imported["policy"]})
    return request


def correlation_of(execution_input: Mapping[str, object], execution_name: str) -> str:
    """An execution's correlation id: the one its input carries (the tool call that started it), else
    its run id (a scheduled or daily start has no caller), so a run's lines can always be found."""
    value = execution_input.get("correlation_id")
    if isinstance(value, str) and value:
        return value
    run_id = execution_input.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else execution_name


def start_run(request: AuditRequest, ledger: Ledger, runner: str, record_pending: bool = True) -> AuditPlan:
    """Plan the run's shards and record them (all as pending unless ``record_pending`` is false:
    a shard without a ledger row is pending)."""
    plan = plan_audit(request)
    ledger.start_run(plan, runner, record_pending)
    logger.info(
        "audit run started: %d shards (%s)",
        len(plan.shards),
        runner,
        extra={"shards": len(plan.shards), "runner": runner, "trigger": plan.scope.trigger},
    )
    return plan


def run_shard(
    run_id: str, shard: Shard, clients: AwsClients, ledger: Ledger, role_name: str = DEFAULT_ROLE_NAME
) -> ShardResult:
    """Scan a shard once per run: a shard the ledger already holds as done is not scanned again.

    ``ShardThrottledError`` propagates (nothing is recorded) so the caller retries the shard.
    """
    stored = ledger.shard_started(run_id, shard.shard_id)
    if stored is not None:
        return stored
    result = scan_shard(run_id, shard, clients, role_name)
    ledger.record_shard(result)
    return result


def failure_message(error: str | None, cause: str | None) -> str:
    """A readable message from a Step Functions ``Catch`` error/cause pair."""
    message = cause or ""
    try:
        parsed = json.loads(message) if message else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        message = str(parsed["errorMessage"])
    return f"{error or 'Error'}: {message}".rstrip(": ") if message else (error or "unknown error")


def record_shard_failure(run_id: str, shard: Shard, error: str, ledger: Ledger) -> ShardResult:
    """Record a shard whose scan failed for good (retries exhausted); the others go on."""
    result = failed_shard_result(run_id, shard, error)
    ledger.record_shard(result)
    return result


def plan_policy(plan: AuditPlan, fallback: PolicyLoader) -> TaggingPolicy:
    """The policy a run evaluates with: the one it was started with, else the runner's own."""
    return parse_policy(plan.policy, "audit run") if plan.policy is not None else fallback()


def finish_run(run_id: str, ledger: Ledger, store: Store, policy_loader: PolicyLoader) -> AuditOutcome:
    """Aggregate the run's shards from the ledger into its snapshot (once per run id)."""
    run = ledger.run(run_id)
    if run is None or run["plan"] is None:
        raise LookupError(f"audit run {run_id} has no plan in the ledger")
    plan: AuditPlan = run["plan"]
    # A shard no child execution reported (timed out, crashed) is recorded failed, never lost.
    close_unfinished_shards(plan, ledger)
    try:
        outcome = aggregate(plan, ledger.shard_results(run_id), plan_policy(plan, policy_loader), store)
    except Exception as error:
        ledger.finish_run(run_id, None, f"{type(error).__name__}: {error}")
        logger.exception("audit run could not be aggregated")
        raise
    ledger.finish_run(run_id, outcome)
    logger.info(
        "audit run aggregated: %d resources, %d failed shards",
        outcome.total_resources,
        outcome.failed_shards,
        extra={
            "resources": outcome.total_resources,
            "score": outcome.compliance_score,
            "failed_shards": outcome.failed_shards,
            "snapshot_id": outcome.snapshot_id,
        },
    )
    return outcome


def detect_run_drift(run_id: str, ledger: Ledger, store: Store, limit: int = 20) -> DriftSummary:
    """Compare the run's snapshot with the previous snapshot of the same scope (the core ``drift``)."""
    snapshot = store.get_snapshot(snapshot_id_for(run_id))
    if snapshot is None:
        raise LookupError(f"audit run {run_id} has no snapshot yet: aggregate it first")
    baseline = choose_baseline(
        store,
        (snapshot.resource_types, snapshot.regions, snapshot.covered_accounts),
        None,
        snapshot.created_at,
        exclude_snapshot_id=snapshot.snapshot_id,
    )
    if baseline is None:
        summary = DriftSummary(
            snapshot_id=snapshot.snapshot_id,
            baseline_snapshot_id=None,
            total_drifts=0,
            note="no earlier snapshot of this scope: this run is the baseline for the next one",
        )
    else:
        current = [resource_from_state(state) for state in store.iter_resource_states(snapshot.snapshot_id)]
        result = detect_drift(
            store.iter_resource_states(baseline.snapshot_id),
            current,
            parse_policy(snapshot.policy, "snapshot"),
            baseline=baseline,
            current_snapshot=snapshot,
            limit=limit,
        )
        summary = DriftSummary(
            snapshot_id=snapshot.snapshot_id,
            baseline_snapshot_id=baseline.snapshot_id,
            total_drifts=result.total_drifts,
            by_severity=result.by_severity,
            resources_added=result.total_resources_added,
            resources_removed=result.total_resources_removed,
            drifts=[drift.model_dump(mode="json") for drift in result.drift_detected],
        )
    ledger.record_step(run_id, "drift", summary.model_dump(mode="json"))
    return summary


def run_outcome(run_id: str, ledger: Ledger, store: Store) -> tuple[AuditPlan, AuditOutcome]:
    run = ledger.run(run_id)
    if run is None or run["plan"] is None:
        raise LookupError(f"audit run {run_id} has no plan in the ledger")
    outcome = run["outcome"]
    if outcome is None:
        snapshot = store.get_snapshot(snapshot_id_for(run_id))
        if snapshot is None:
            raise LookupError(f"audit run {run_id} has no snapshot yet: aggregate it first")
        outcome = outcome_of(run_id, snapshot, created=False)
    return run["plan"], outcome


def notify_run(
    run_id: str, ledger: Ledger, store: Store, clients: AwsClients, settings: Settings
) -> NotifyReport:
    """Send the run's result (and drift) to its recipients; every delivery is recorded, none raises."""
    plan, outcome = run_outcome(run_id, ledger, store)
    run = ledger.run(run_id) or {}
    drift_data = (run.get("steps") or {}).get("drift")
    drift = DriftSummary.model_validate(drift_data) if drift_data else None
    recipients = run_recipients(plan, store)
    deliveries = (
        deliver(build_message(plan, outcome, drift), recipients, clients, settings) if recipients else []
    )
    report = NotifyReport(
        run_id=run_id,
        recipients=len(recipients),
        sent=sum(1 for item in deliveries if item.status == "sent"),
        failed=sum(1 for item in deliveries if item.status == "failed"),
        deliveries=deliveries,
    )
    ledger.record_step(run_id, "notifications", [item.model_dump(mode="json") for item in report.deliveries])
    return report


def record_step_failure(run_id: str, step: str, error: str, ledger: Ledger) -> None:
    """A step failed for good: keep why with the run.

    After aggregate (drift, notify) the snapshot stays. The scan itself (the Distributed Map gave
    up: more child executions failed than tolerated) fails the run: its unfinished shards are
    recorded failed and no snapshot is written.
    """
    ledger.record_step(run_id, f"{step}_error", error)
    if step == "scan":
        run = ledger.run(run_id)
        if run is not None and run["plan"] is not None:
            close_unfinished_shards(run["plan"], ledger, f"not scanned: the scan step failed ({error})")
        ledger.finish_run(run_id, None, f"scan failed: {error}")

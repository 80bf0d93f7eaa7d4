"""The pipeline's steps with their ledger bookkeeping: what each Lambda handler calls, once.

The in-process runner calls the same steps, so both runners record progress the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import BaseModel, Field

from tagcompliance.aws import AwsClients
from tagcompliance.policy import TaggingPolicy, parse_policy
from tagcompliance.resources import region_filter, resolve_resource_types
from tagcompliance.settings import Settings
from tagcompliance.store import Store

from .ledger import Ledger
from .models import AuditOutcome, AuditPlan, AuditRequest, AuditScope, Shard, ShardResult
from .pipeline import aggregate, failed_shard_result, plan_audit, scan_shard

PolicyLoader = Callable[[], TaggingPolicy]


class ScheduledStart(BaseModel):
    """The input EventBridge Scheduler starts the state machine with (``schedules.EventBridgeScheduler``)."""

    schedule_id: str | None = None
    resource_types: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    trigger: str = "scheduled"


def resolve_request(
    execution_input: dict[str, object], execution_name: str, clients: AwsClients, settings: Settings
) -> AuditRequest:
    """An ``AuditRequest`` as given, or one resolved from a scheduled start (run id: the execution name)."""
    if "scope" in execution_input:
        return AuditRequest.model_validate(execution_input)
    start = ScheduledStart.model_validate(execution_input)
    if start.regions == ["all"]:
        regions = clients.enabled_regions()
    else:
        regions = region_filter(start.regions) or list(settings.default_regions)
    scope = AuditScope(
        account_id=clients.account_id,
        regions=regions,
        resource_types=resolve_resource_types(start.resource_types),
        trigger=start.trigger,
    )
    return AuditRequest(run_id=execution_name, scope=scope)


def start_run(request: AuditRequest, ledger: Ledger, runner: str) -> AuditPlan:
    """Plan the run's shards and record them all as pending."""
    plan = plan_audit(request)
    ledger.start_run(plan, runner)
    return plan


def run_shard(run_id: str, shard: Shard, clients: AwsClients, ledger: Ledger) -> ShardResult:
    """Scan a shard once per run: a shard the ledger already holds as done is not scanned again.

    ``ShardThrottledError`` propagates (nothing is recorded) so the caller retries the shard.
    """
    stored = ledger.shard_started(run_id, shard.shard_id)
    if stored is not None:
        return stored
    result = scan_shard(run_id, shard, clients)
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
    try:
        outcome = aggregate(plan, ledger.shard_results(run_id), plan_policy(plan, policy_loader), store)
    except Exception as error:
        ledger.finish_run(run_id, None, f"{type(error).__name__}: {error}")
        raise
    ledger.finish_run(run_id, outcome)
    return outcome

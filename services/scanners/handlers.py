"""Lambda handlers of the audit state machine: parse the event, call one audits step, return a model.

Every handler is wrapped by Powertools (structured logger with the run id as correlation id,
EMF metrics, X-Ray tracer). The runtime (settings, AWS clients, store, ledger) is built once per
Lambda container from the environment; tests may install their own with ``set_runtime``.

Errors are not caught here: ``ShardThrottledError`` and Lambda service errors are retried by the
state machine, and any other failure of a shard is caught there and recorded by
``record_shard_failure``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from tagcompliance.audits import (
    AuditSettings,
    Ledger,
    Shard,
    build_ledger,
    failure_message,
    finish_run,
    record_shard_failure,
    resolve_request,
    run_shard,
    start_run,
)
from tagcompliance.audits.steps import PolicyLoader
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.settings import Settings
from tagcompliance.store import Store, open_store

SERVICE = "tag-compliance-audit"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="TagCompliance", service=SERVICE)
tracer = Tracer(service=SERVICE)


@dataclass
class ScannerRuntime:
    settings: Settings
    clients: AwsClients
    store: Store
    ledger: Ledger
    policy_loader: PolicyLoader


_runtime: ScannerRuntime | None = None
_runtime_lock = threading.Lock()


def build_runtime(
    settings: Settings | None = None, audit_settings: AuditSettings | None = None
) -> ScannerRuntime:
    settings = settings or Settings()
    return ScannerRuntime(
        settings=settings,
        clients=AwsClients(settings),
        store=open_store(settings),
        ledger=build_ledger(settings, audit_settings),
        policy_loader=lambda: load_policy(settings.policy_path).policy,
    )


def set_runtime(runtime: ScannerRuntime | None) -> None:
    """Install the runtime the handlers use (None: build it from the environment on next use)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def runtime() -> ScannerRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


class ScanShardEvent(BaseModel):
    run_id: str
    shard: Shard


class ShardFailure(BaseModel):
    Error: str | None = None
    Cause: str | None = None


class ShardFailureEvent(ScanShardEvent):
    failure: ShardFailure = Field(default_factory=ShardFailure)


class PlanEvent(BaseModel):
    input: dict[str, Any] = Field(description="The execution's input: an AuditRequest, or a scheduled start.")
    execution_name: str


class AggregateEvent(BaseModel):
    run_id: str


@logger.inject_lambda_context(correlation_id_path="execution_name")
@metrics.log_metrics
@tracer.capture_lambda_handler
def plan_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = PlanEvent.model_validate(event)
    rt = runtime()
    request = resolve_request(parsed.input, parsed.execution_name, rt.clients, rt.settings)
    plan = start_run(request, rt.ledger, "step_functions")
    metrics.add_metric(name="AuditShardsPlanned", unit=MetricUnit.Count, value=len(plan.shards))
    logger.info("audit planned", extra={"shards": len(plan.shards)})
    return plan.model_dump(mode="json")


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def scan_shard_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = ScanShardEvent.model_validate(event)
    rt = runtime()
    result = run_shard(parsed.run_id, parsed.shard, rt.clients, rt.ledger)
    metrics.add_metric(name="ResourcesScanned", unit=MetricUnit.Count, value=result.resource_count)
    logger.info("shard scanned", extra={"shard": parsed.shard.shard_id, "status": result.status})
    return result.summary().model_dump(mode="json")


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def record_shard_failure_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = ShardFailureEvent.model_validate(event)
    error = failure_message(parsed.failure.Error, parsed.failure.Cause)
    result = record_shard_failure(parsed.run_id, parsed.shard, error, runtime().ledger)
    metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=1)
    logger.warning("shard failed", extra={"shard": parsed.shard.shard_id, "error": error})
    return result.summary().model_dump(mode="json")


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler
def aggregate_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = AggregateEvent.model_validate(event)
    rt = runtime()
    outcome = finish_run(parsed.run_id, rt.ledger, rt.store, rt.policy_loader)
    metrics.add_metric(name="SnapshotsWritten", unit=MetricUnit.Count, value=1 if outcome.created else 0)
    logger.info("audit aggregated", extra={"outcome": outcome.model_dump(mode="json")})
    return outcome.model_dump(mode="json")


# Function name (the last part of each Lambda ARN the state machine is deployed with) -> handler.
HANDLERS = {
    "plan": plan_handler,
    "scan-shard": scan_shard_handler,
    "record-shard-failure": record_shard_failure_handler,
    "aggregate": aggregate_handler,
}

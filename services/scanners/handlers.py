"""Lambda handlers of the audit state machine: parse the event, call one audits step, return a model.

Every handler is wrapped by Powertools (structured logger with the run id as correlation id,
EMF metrics, X-Ray tracer). The runtime (settings, AWS clients, store, ledger) is built once per
Lambda container from the environment; tests may install their own with ``runtime.set``.

Errors are not caught here: throttled shards are retried inside ``run_batch`` (backoff with
jitter) and recorded failed when they keep failing; a child execution that fails anyway is caught
by the state machine and its batch recorded failed by ``record_batch_failure``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from services.lambda_runtime import LambdaRuntime, LambdaTelemetry, LazyRuntime, run_fields
from tagcompliance.audits import Ledger, build_ledger
from tagcompliance.audits.distributed import publish_plan, record_batch_failure, run_batch
from tagcompliance.audits.models import AuditOutcome, ShardBatch
from tagcompliance.audits.steps import (
    PolicyLoader,
    detect_run_drift,
    failure_message,
    finish_run,
    notify_run,
    record_step_failure,
    resolve_request,
    start_run,
)
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.policy_import import OrganizationsTagPolicySource, import_tag_policy
from tagcompliance.settings import Settings
from tagcompliance.store import open_store

SERVICE = "tag-compliance-audit"
telemetry = LambdaTelemetry(SERVICE)
logger = telemetry.logger
metrics = telemetry.metrics


@dataclass
class ScannerRuntime(LambdaRuntime):
    ledger: Ledger
    policy_loader: PolicyLoader


def build_runtime(settings: Settings | None = None) -> ScannerRuntime:
    settings = settings or Settings()
    return ScannerRuntime(
        settings=settings,
        clients=AwsClients(settings),
        store=open_store(settings),
        ledger=build_ledger(settings),
        policy_loader=lambda: load_policy(settings.policy_path).policy,
    )


runtime: LazyRuntime[ScannerRuntime] = LazyRuntime(build_runtime)


class ScanBatchEvent(BaseModel):
    """One item of the Distributed Map (the plan's batch) with the run it belongs to."""

    run_id: str
    correlation_id: str | None = None
    batch: ShardBatch


class ShardFailure(BaseModel):
    Error: str | None = None
    Cause: str | None = None


class BatchFailureEvent(ScanBatchEvent):
    failure: ShardFailure = Field(default_factory=ShardFailure)


class PlanEvent(BaseModel):
    input: dict[str, Any] = Field(description="The execution's input: an AuditRequest, or a scheduled start.")
    execution_name: str


class AggregateEvent(BaseModel):
    run_id: str
    correlation_id: str | None = None


class AggregateResult(AuditOutcome):
    """The run's outcome (the execution's output) with the correlation id the steps after it log."""

    correlation_id: str | None = None


class StepFailureEvent(BaseModel):
    run_id: str
    correlation_id: str | None = None
    step: str = Field(pattern=r"^(scan|drift|notify)$")
    failure: ShardFailure = Field(default_factory=ShardFailure)


class ImportPolicyRequest(BaseModel):
    """The execution input's ``import_policy``: which AWS Organizations tag policy a run evaluates with."""

    policy_id: str | None = None
    use_effective: bool = False


class ImportPolicyEvent(BaseModel):
    request: ImportPolicyRequest = Field(default_factory=ImportPolicyRequest)
    # The execution's input and name: only for the log context (run_fields).
    input: dict[str, Any] = Field(default_factory=dict)
    execution_name: str | None = None


@telemetry.handler(run_fields)
def plan_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = PlanEvent.model_validate(event)
    rt = runtime()
    request = resolve_request(parsed.input, parsed.execution_name, rt.clients, rt.settings)
    # No pending row per shard: the plan (in the run's row and in S3) says what is pending, and
    # tens of thousands of writes here would delay the scan by minutes.
    plan = start_run(request, rt.ledger, "step_functions", record_pending=False)
    if "import_policy_error" in parsed.input:
        failure = ShardFailure.model_validate(parsed.input["import_policy_error"])
        message = failure_message(failure.Error, failure.Cause)
        rt.ledger.record_step(plan.run_id, "import_policy_error", message)
        logger.warning("tag policy import failed; the configured policy is used", extra={"error": message})
    settings = rt.settings
    planned = publish_plan(
        plan,
        rt.clients,
        settings.audit_plan_bucket,
        settings.audit_batch_size,
        settings.audit_max_concurrency,
        settings.audit_tolerated_failure_percentage,
    )
    metrics.add_metric(name="AuditShardsPlanned", unit=MetricUnit.Count, value=planned.shard_count)
    logger.info("audit planned", extra={"shards": planned.shard_count, "batches": planned.batch_count})
    return planned.model_dump(mode="json")


@telemetry.handler(run_fields)
def scan_batch_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = ScanBatchEvent.model_validate(event)
    rt = runtime()
    settings = rt.settings
    report = run_batch(
        parsed.run_id,
        parsed.batch,
        rt.clients,
        rt.ledger,
        role_name=settings.audit_role_name,
        concurrency=settings.audit_region_concurrency,
        attempts=settings.audit_shard_attempts,
        backoff_seconds=settings.audit_backoff_seconds,
    )
    metrics.add_metric(name="ResourcesScanned", unit=MetricUnit.Count, value=report.resources)
    if report.failed:
        metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=report.failed)
    logger.info("batch scanned", extra=report.model_dump(mode="json"))
    return report.model_dump(mode="json")


@telemetry.handler(run_fields)
def record_batch_failure_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = BatchFailureEvent.model_validate(event)
    error = failure_message(parsed.failure.Error, parsed.failure.Cause)
    report = record_batch_failure(parsed.run_id, parsed.batch, error, runtime().ledger)
    metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=report.failed)
    logger.warning("batch failed", extra={"batch": parsed.batch.batch_id, "error": error})
    return report.model_dump(mode="json")


@telemetry.handler(run_fields)
def aggregate_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = AggregateEvent.model_validate(event)
    rt = runtime()
    outcome = finish_run(parsed.run_id, rt.ledger, rt.store, rt.policy_loader)
    metrics.add_metric(name="SnapshotsWritten", unit=MetricUnit.Count, value=1 if outcome.created else 0)
    if outcome.compliance_score is not None:
        # Read by the dashboard's score widget and the score-drop alarm (stacks/constructs/monitoring.py).
        metrics.add_metric(
            name="ComplianceScore", unit=MetricUnit.Percent, value=round(outcome.compliance_score * 100, 2)
        )
    logger.info("audit aggregated", extra={"outcome": outcome.model_dump(mode="json")})
    result = AggregateResult.model_validate({**outcome.model_dump(), "correlation_id": parsed.correlation_id})
    return result.model_dump(mode="json")


@telemetry.handler(run_fields)
def detect_drift_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = AggregateEvent.model_validate(event)
    rt = runtime()
    summary = detect_run_drift(parsed.run_id, rt.ledger, rt.store)
    metrics.add_metric(name="TagDrifts", unit=MetricUnit.Count, value=summary.total_drifts)
    logger.info(
        "drift detected", extra={"drifts": summary.total_drifts, "baseline": summary.baseline_snapshot_id}
    )
    return summary.model_dump(mode="json")


@telemetry.handler(run_fields)
def notify_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = AggregateEvent.model_validate(event)
    rt = runtime()
    report = notify_run(parsed.run_id, rt.ledger, rt.store, rt.clients, rt.settings)
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=report.sent)
    metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=report.failed)
    logger.info("audit notified", extra={"sent": report.sent, "failed": report.failed})
    return report.model_dump(mode="json")


@telemetry.handler(run_fields)
def record_step_failure_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = StepFailureEvent.model_validate(event)
    error = failure_message(parsed.failure.Error, parsed.failure.Cause)
    record_step_failure(parsed.run_id, parsed.step, error, runtime().ledger)
    metrics.add_metric(name="AuditStepsFailed", unit=MetricUnit.Count, value=1)
    logger.warning("audit step failed", extra={"step": parsed.step, "error": error})
    return {"run_id": parsed.run_id, "step": parsed.step, "error": error}


@telemetry.handler(run_fields)
def import_policy_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Fetch and convert an AWS Organizations tag policy for one run (never written to a file)."""
    parsed = ImportPolicyEvent.model_validate(event)
    rt = runtime()
    result = import_tag_policy(
        OrganizationsTagPolicySource(rt.clients),
        parsed.request.policy_id,
        parsed.request.use_effective,
        save_to_file=False,
        output_path=None,
        policies_dir=rt.settings.policy_path.parent,
    )
    logger.info("tag policy import", extra={"status": result.status, "detail": result.message})
    return {
        "status": result.status,
        "message": result.message,
        "policy": result.policy.model_dump(mode="json") if result.policy is not None else None,
        "warnings": result.warnings,
    }


# Function name (the last part of each Lambda ARN the state machine is deployed with) -> handler.
HANDLERS = {
    "plan": plan_handler,
    "scan-batch": scan_batch_handler,
    "record-batch-failure": record_batch_failure_handler,
    "aggregate": aggregate_handler,
    "detect-drift": detect_drift_handler,
    "notify": notify_handler,
    "record-step-failure": record_step_failure_handler,
    "import-policy": import_policy_handler,
}

"""Lambda handlers that keep scheduled audits running (thin adapters over ``tagcompliance``).

* ``sync``: bring EventBridge Scheduler in line with the ``scheduled_audits`` table, and keep the
  daily compliance snapshot schedule at ``DAILY_SNAPSHOT_TIME`` (UTC). This is the one owner of
  that schedule: it starts the state machine directly (trigger ``daily``), and the state machine's
  ``notify`` step delivers results (invoke that function with ``{"run_id": ...}`` to re-deliver).
* ``run-finished``: an EventBridge "Step Functions Execution Status Change" event of the audit
  state machine; for a scheduled run, record its last run and move its next run on.

Where no cloud scheduler exists, ``tagcompliance.schedules.LocalSchedulerLoop`` fires the same
schedules inside the gateway (see ``tag_compliance_mcp.runtime``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from services.lambda_runtime import LambdaRuntime, LambdaTelemetry, LazyRuntime
from tagcompliance.audits.steps import correlation_of
from tagcompliance.aws import AwsClients
from tagcompliance.errors import InvalidInputError
from tagcompliance.schedules import EventBridgeScheduler, reconcile_schedules, record_external_run
from tagcompliance.settings import Settings
from tagcompliance.store import open_store

SERVICE = "tag-compliance-scheduler"
telemetry = LambdaTelemetry(SERVICE)
logger = telemetry.logger
metrics = telemetry.metrics


class SchedulerRuntime(LambdaRuntime):
    def eventbridge(self) -> EventBridgeScheduler:
        if not (self.settings.state_machine_arn and self.settings.scheduler_role_arn):
            raise InvalidInputError(
                "EventBridge Scheduler sync needs STATE_MACHINE_ARN and SCHEDULER_ROLE_ARN (the target "
                "state machine and the role the scheduler assumes to start it)"
            )
        return EventBridgeScheduler(
            self.clients,
            self.settings.scheduler_group,
            self.settings.state_machine_arn,
            self.settings.scheduler_role_arn,
        )


def build_runtime(settings: Settings | None = None) -> SchedulerRuntime:
    settings = settings or Settings()
    return SchedulerRuntime(settings, AwsClients(settings), open_store(settings))


runtime: LazyRuntime[SchedulerRuntime] = LazyRuntime(build_runtime)


class ExecutionDetail(BaseModel):
    """The ``detail`` of EventBridge's "Step Functions Execution Status Change" event."""

    executionArn: str
    name: str
    status: str
    startDate: int | None = None
    stopDate: int | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None


class ExecutionStatusEvent(BaseModel):
    detail: ExecutionDetail


def _epoch_ms(value: int | None) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC) if value else datetime.now(UTC)


@telemetry.handler()
def sync_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    report = reconcile_schedules(rt.store, rt.eventbridge(), rt.settings.daily_snapshot_time)
    metrics.add_metric(name="SchedulesSynced", unit=MetricUnit.Count, value=len(report.synced))
    metrics.add_metric(name="ScheduleSyncErrors", unit=MetricUnit.Count, value=len(report.errors))
    logger.info("schedules synced", extra=report.model_dump())
    return report.model_dump(mode="json")


def finished_run_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The log context of a finished execution's event: its run, correlation id and schedule."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or not detail.get("name"):
        return {}
    try:
        execution_input = json.loads(detail.get("input") or "{}")
    except ValueError:
        execution_input = {}
    execution_input = execution_input if isinstance(execution_input, dict) else {}
    name = str(detail["name"])
    return {
        "run_id": name,
        "correlation_id": correlation_of(execution_input, name),
        "schedule_id": execution_input.get("schedule_id"),
    }


@telemetry.handler(finished_run_fields)
def run_finished_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = ExecutionStatusEvent.model_validate(event).detail
    execution_input = json.loads(detail.input or "{}")
    schedule_id = execution_input.get("schedule_id") if isinstance(execution_input, dict) else None
    if not schedule_id:  # an ad-hoc or daily run: no schedule to update
        metrics.add_metric(name="ScheduledRunsRecorded", unit=MetricUnit.Count, value=0)
        return {"run_id": detail.name, "schedule_id": None, "recorded": False}
    output = json.loads(detail.output or "null")
    snapshot_id = output.get("snapshot_id") if isinstance(output, dict) else None
    error = None
    if detail.status != "SUCCEEDED" or not snapshot_id:
        error = f"execution {detail.status}" + (f": {detail.error}" if detail.error else "")
        snapshot_id = None
    rt = runtime()
    record = record_external_run(rt.store, schedule_id, _epoch_ms(detail.startDate), snapshot_id, error)
    metrics.add_metric(name="ScheduledRunsRecorded", unit=MetricUnit.Count, value=1 if record else 0)
    logger.info("scheduled run recorded", extra={"schedule_id": schedule_id, "error": error})
    return {
        "run_id": detail.name,
        "schedule_id": schedule_id,
        "recorded": record is not None,
        "last_run_status": record.last_run_status if record else None,
        "next_run": record.next_run.isoformat() if record else None,
    }


# Function name -> handler (another module derives the Lambda functions from this table).
HANDLERS = {
    "sync-schedules": sync_handler,
    "record-scheduled-run": run_finished_handler,
}

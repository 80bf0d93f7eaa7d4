"""The audit pipeline: plan shards, scan a shard, aggregate a run; two runners over one ledger.

The package re-exports what the Lambda handlers and the gateway call (the runners, the ledger, the
pipeline steps and the request models); the other names are imported from their modules.
"""

from .ledger import DynamoLedger, Ledger, MemoryLedger
from .models import AuditRequest, AuditScope, AuditStatus, Shard, snapshot_id_for
from .pipeline import plan_shards
from .runner import InProcessRunner, StepFunctionsRunner, build_ledger, build_runner, scheduled_audit_runner
from .steps import (
    build_scope,
    detect_run_drift,
    failure_message,
    finish_run,
    notify_run,
    record_shard_failure,
    record_step_failure,
    resolve_request,
    run_shard,
    start_run,
)

__all__ = [
    "AuditRequest",
    "AuditScope",
    "AuditStatus",
    "DynamoLedger",
    "InProcessRunner",
    "Ledger",
    "MemoryLedger",
    "Shard",
    "StepFunctionsRunner",
    "build_ledger",
    "build_runner",
    "build_scope",
    "detect_run_drift",
    "failure_message",
    "finish_run",
    "notify_run",
    "plan_shards",
    "record_shard_failure",
    "record_step_failure",
    "resolve_request",
    "run_shard",
    "scheduled_audit_runner",
    "snapshot_id_for",
    "start_run",
]

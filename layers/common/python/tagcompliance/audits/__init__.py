"""The audit pipeline: plan shards, scan a shard, aggregate a run; two runners over one ledger.

The package re-exports what the gateway and the schedulers use (the runners, the ledger, the request
models); the Lambda handlers import the state machine's steps from ``steps``.
"""

from .ledger import DynamoLedger, Ledger, MemoryLedger
from .models import AuditRequest, AuditScope, AuditStatus, Shard, snapshot_id_for
from .pipeline import plan_shards
from .runner import InProcessRunner, StepFunctionsRunner, build_ledger, build_runner, scheduled_audit_runner
from .steps import build_scope

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
    "plan_shards",
    "scheduled_audit_runner",
    "snapshot_id_for",
]

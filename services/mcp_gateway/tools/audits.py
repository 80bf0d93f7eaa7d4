"""The audit-job tool: ``get_audit_status`` (progress of a pipeline run, and its result when done).

Runs are started by large ``check_tag_compliance`` calls (a job handle), scheduled audits and the
daily snapshot; this tool reads the shard ledger, so it answers at once however large the run.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from tag_compliance_mcp.runtime import Runtime, run_tool
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps
from tagcompliance.audits import AuditStatus
from tagcompliance.errors import InvalidInputError
from tagcompliance.models import AccountCounts, ComplianceCounts, FailedShard, accounts_worst_first
from tagcompliance.requests import AuditStatusRequest
from tagcompliance.store import SnapshotStore

MAX_LISTED_SHARDS = 50


class AuditResultSummary(ComplianceCounts):
    snapshot_id: str
    failed_shards: int = Field(description="Coverage missing from the score (see failed_shard_details).")
    failed_shard_details: list[FailedShard] = Field(description="Account, region, type and error each.")
    accounts: list[str] = Field(description="The accounts the run audited (sorted).")
    by_account: dict[str, AccountCounts] = Field(
        description="Per account with resources, worst first. Unread accounts: failed_shard_details."
    )


class AuditStatusResult(BaseModel):
    run_id: str
    correlation_id: str | None = Field(
        default=None, description="Finds the run's log lines: the starting call's id, or the run id."
    )
    status: str = Field(description="running | succeeded | failed")
    runner: str = Field(description="in_process | step_functions")
    shards_total: int
    shards_done: int = Field(description="Shards finished, failed ones included.")
    shards_failed: int
    resources_scanned: int = Field(description="Resources read so far by the finished shards.")
    failed_shards: list[dict[str, Any]] = Field(description="Failed shards so far (at most 50).")
    result: AuditResultSummary | None = Field(description="Set once the run's snapshot is written.")
    drift: dict[str, Any] | None = Field(
        default=None, description="Tag drift since the scope's previous snapshot."
    )
    notifications: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per recipient: sent or failed (webhook secrets masked)."
    )
    error: str | None = None
    next_step: str


def status_result(status: AuditStatus) -> AuditStatusResult:
    outcome = status.outcome
    result = (
        AuditResultSummary.model_validate(outcome.model_dump(include=set(AuditResultSummary.model_fields)))
        if outcome is not None
        else None
    )
    if status.status == "running":
        next_step = "Still running: call get_audit_status again in a few seconds."
    elif result is not None:
        next_step = (
            "Done: call check_tag_compliance with the same scope for the violations, or "
            "get_violation_history for the trend."
        )
    else:
        next_step = "The run failed before writing a snapshot: see error."
    return AuditStatusResult(
        **status.model_dump(include=set(AuditStatusResult.model_fields)),
        failed_shards=[
            {"shard_id": shard.shard_id, "attempts": shard.attempts, "error": shard.error}
            for shard in status.shards
            if shard.status == "failed"
        ][:MAX_LISTED_SHARDS],
        result=result,
        next_step=next_step,
    )


def audit_status_for(runtime: Runtime, run_id: str) -> AuditStatusResult:
    if runtime.runner is None:
        raise InvalidInputError("audit runs are not available on this server (see the server log)")
    status = runtime.runner.status(run_id)
    if status.status == "unknown":
        raise InvalidInputError(
            f"no audit run {run_id!r}: pass the run_id of a job handle or a scheduled run"
        )
    return status_result(with_stored_accounts(status, runtime.store))


def with_stored_accounts(status: AuditStatus, store: SnapshotStore) -> AuditStatus:
    """The status with its accounts and per-account totals as the stored snapshot holds them.

    The snapshot is the record that lasts (the ledger's copy of the outcome expires, and a run
    written by an older release has none with violations); the outcome's copy is kept when the
    snapshot is not in this store.
    """
    outcome = status.outcome
    if outcome is None:
        return status
    snapshot = store.get_snapshot(outcome.snapshot_id)
    if snapshot is None:
        return status
    stored = outcome.model_copy(
        update={
            "accounts": snapshot.covered_accounts,
            "by_account": accounts_worst_first(snapshot.counts_by_account),
        }
    )
    return status.model_copy(update={"outcome": stored})


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    @request_tool(mcp, AuditStatusRequest)
    async def get_audit_status(ctx: Context, request: AuditStatusRequest) -> AuditStatusResult:
        """Progress of an audit run (shards done, failed, total) and, once done, its result:
        score, counts, failed shards, drift, notifications."""
        return await run_tool(ctx, lambda progress: audit_status_for(deps.runtime, request.run_id))

"""get_audit_status through the MCP client: a large check becomes a job, the job reports progress
and its result, and the next check is answered from the job's snapshot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.audits import AuditRequest, AuditScope, InProcessRunner, MemoryLedger, snapshot_id_for

from .helpers import call, call_error, gateway_settings

pytestmark = pytest.mark.anyio

TYPES = ["sqs:queue", "sns:topic"]
REGIONS = ["us-east-1", "us-west-2"]


async def _poll(client: Client, run_id: str, timeout: float = 60.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await call(client, "get_audit_status", run_id=run_id)
        assert status["run_id"] == run_id
        assert 0 <= status["shards_done"] <= status["shards_total"] == len(TYPES) * len(REGIONS)
        if status["status"] != "running":
            return status
        assert asyncio.get_running_loop().time() < deadline, "the audit job did not finish"
        await asyncio.sleep(0.2)


async def test_a_large_check_returns_a_job_handle_and_get_audit_status_reports_the_result(
    aws_env: DemoAws, tmp_path: Path
) -> None:
    # Any estimate is "too long" with this threshold: the check must not block, whatever the scope.
    settings = gateway_settings(aws_env, tmp_path, AUDIT_ASYNC_THRESHOLD_SECONDS=0.000001)
    runtime = build_runtime(settings, "memory")
    try:
        assert isinstance(runtime.runner, InProcessRunner)
        expected = [r for r in aws_env.estate.select(TYPES) if r.region in REGIONS]
        async with Client(build_server(runtime)) as client:
            first = await call(client, "check_tag_compliance", resource_types=TYPES, regions=REGIONS)
            job = first["job"]
            assert job is not None and job["poll_with"] == "get_audit_status" and job["status"] == "running"
            assert first["compliance_score"] is None and first["violations"] == []
            assert first["snapshot_id"] == snapshot_id_for(job["run_id"])
            assert first["scope"]["regions"] == REGIONS and first["scope"]["resource_types"] == TYPES

            done = await _poll(client, job["run_id"])
            assert done["status"] == "succeeded", done["error"]
            assert done["runner"] == "in_process"
            assert done["shards_done"] == 4 and done["shards_failed"] == 0 and done["failed_shards"] == []
            result = done["result"]
            assert result["snapshot_id"] == snapshot_id_for(job["run_id"])
            assert result["total_resources"] == done["resources_scanned"] == len(expected) > 0
            assert result["failed_shards"] == 0 and result["accounts"] == [aws_env.account_id]
            summary = aws_env.estate.expected_summary(TYPES, REGIONS)
            assert result["by_account"] == {
                aws_env.account_id: {
                    "total": len(expected),
                    "compliant": summary.total - summary.noncompliant,
                    "violations": sum(summary.violations_by_type.values()),
                    "compliance_score": round(summary.compliant / summary.total, 4),
                }
            }
            assert done["drift"] is not None  # the drift step ran after aggregate
            assert done["notifications"] == []  # nobody to notify for an ad-hoc check

            # The next check of the same scope is answered from the job's snapshot, in the call.
            second = await call(client, "check_tag_compliance", resource_types=TYPES, regions=REGIONS)
            assert second.get("job") is None
            assert second["snapshot_id"] == result["snapshot_id"] and second["cached"] is True
            assert second["total_resources"] == len(expected)
            assert second["violation_count"] == result["violation_count"]
            assert second["compliance_score"] == pytest.approx(result["compliance_score"])
    finally:
        runtime.close()


async def test_a_run_known_only_from_the_store_reports_its_per_account_totals(
    aws_env: DemoAws, tmp_path: Path
) -> None:
    """A run another process wrote (its ledger is not this gateway's): the stored snapshot answers."""
    runtime = build_runtime(gateway_settings(aws_env, tmp_path), "memory")
    try:
        elsewhere = InProcessRunner(
            runtime.service.clients,
            runtime.store,
            MemoryLedger(),
            lambda: runtime.service.loaded_policy.policy,
        )
        scope = AuditScope(account_id=aws_env.account_id, regions=REGIONS, resource_types=TYPES)
        outcome = elsewhere.run(AuditRequest(run_id="audit-written-elsewhere", scope=scope))
        assert outcome.created
        summary = aws_env.estate.expected_summary(TYPES, REGIONS)
        async with Client(build_server(runtime)) as client:
            status = await call(client, "get_audit_status", run_id="audit-written-elsewhere")
        assert status["status"] == "succeeded"
        result = status["result"]
        assert result["snapshot_id"] == snapshot_id_for("audit-written-elsewhere")
        assert result["accounts"] == [aws_env.account_id]
        assert result["by_account"] == {
            aws_env.account_id: {
                "total": summary.total,
                "compliant": summary.total - summary.noncompliant,
                "violations": sum(summary.violations_by_type.values()),
                "compliance_score": round(summary.compliant / summary.total, 4),
            }
        }
    finally:
        runtime.close()


async def test_small_checks_still_answer_in_the_call(aws_env: DemoAws, tmp_path: Path) -> None:
    runtime = build_runtime(gateway_settings(aws_env, tmp_path), "memory")  # default threshold: 40 s
    try:
        async with Client(build_server(runtime)) as client:
            result = await call(
                client, "check_tag_compliance", resource_types=["sqs:queue"], regions=["us-east-1"]
            )
            assert result.get("job") is None
            expected = [r for r in aws_env.estate.select(["sqs:queue"]) if r.region == "us-east-1"]
            assert result["total_resources"] == len(expected)
    finally:
        runtime.close()


async def test_get_audit_status_of_an_unknown_or_malformed_run_id(aws_env: DemoAws, tmp_path: Path) -> None:
    runtime = build_runtime(gateway_settings(aws_env, tmp_path), "memory")
    try:
        async with Client(build_server(runtime)) as client:
            assert "no audit run 'audit-nope'" in await call_error(
                client, "get_audit_status", run_id="audit-nope"
            )
            message = await call_error(client, "get_audit_status", run_id="bad id/with slash")
            assert "run_id" in message
    finally:
        runtime.close()

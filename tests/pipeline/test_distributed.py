"""The Distributed Map's pieces on the DynamoDB ledger: the plan's batches, a child that failed, a
scan that failed, and the backoff between scans of a throttled shard."""

from __future__ import annotations

from random import Random

import pytest

from services.scanners import handlers
from tagcompliance.audits import AuditRequest, AuditScope, Shard
from tagcompliance.audits.distributed import plan_batches, record_batch_failure
from tagcompliance.audits.models import ShardResult
from tagcompliance.audits.pipeline import backoff_delay
from tagcompliance.audits.runner import audit_status
from tagcompliance.audits.steps import record_step_failure, start_run

from .conftest import scanner_runtime
from .lambda_seam import FakeLambdaContext


def _shards(accounts: list[str], regions: list[str], types: list[str]) -> list[Shard]:
    return [
        Shard(account_id=account, region=region, resource_type=type_id)
        for account in accounts
        for region in regions
        for type_id in types
    ]


def test_batches_hold_one_account_region_and_interleave_when_split() -> None:
    shards = _shards(["111111111111", "222222222222"], ["us-east-1", "eu-west-1"], ["a:x", "b:y", "c:z"])
    whole = plan_batches(shards, batch_size=25)
    assert [(b.account_id, b.region, b.resource_types) for b in whole] == [
        ("111111111111", "us-east-1", ["a:x", "b:y", "c:z"]),
        ("111111111111", "eu-west-1", ["a:x", "b:y", "c:z"]),
        ("222222222222", "us-east-1", ["a:x", "b:y", "c:z"]),
        ("222222222222", "eu-west-1", ["a:x", "b:y", "c:z"]),
    ]
    split = plan_batches(shards, batch_size=2)
    # Every account-region's first batch, then the second ones: the two halves of one are 4 apart.
    assert [(b.account_id[0], b.region, len(b.resource_types)) for b in split] == [
        ("1", "us-east-1", 2),
        ("1", "eu-west-1", 2),
        ("2", "us-east-1", 2),
        ("2", "eu-west-1", 2),
        ("1", "us-east-1", 1),
        ("1", "eu-west-1", 1),
        ("2", "us-east-1", 1),
        ("2", "eu-west-1", 1),
    ]
    assert sorted(s.shard_id for b in split for s in b.shards) == sorted(s.shard_id for s in shards)
    assert len({b.batch_id for b in split}) == len(split)
    with pytest.raises(ValueError, match="at least 1"):
        plan_batches(shards, batch_size=0)


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    rng = Random(7)
    for attempt in range(8):
        ceiling = min(30.0, 1.0 * 2**attempt)
        delays = [backoff_delay(attempt, 1.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > 0.6 * ceiling and min(delays) < 0.4 * ceiling  # spread, not a fixed step


def _request(run_id: str) -> AuditRequest:
    return AuditRequest(
        run_id=run_id,
        scope=AuditScope(
            account_id="111111111111",
            accounts=["111111111111"],
            regions=["us-east-1", "eu-west-1"],
            resource_types=["sqs:queue", "sns:topic"],
        ),
    )


def test_a_failed_child_records_its_unfinished_shards_and_never_undoes_a_done_one(ledger) -> None:
    plan = start_run(_request("child-failed"), ledger, "step_functions", record_pending=False)
    (first, _) = plan_batches(plan.shards, batch_size=25)
    done = first.shards[0]
    ledger.record_shards([ShardResult(run_id=plan.run_id, shard=done, status="ok")])
    report = record_batch_failure(plan.run_id, first, "States.Timeout: Lambda timed out", ledger)
    assert (report.failed, report.already_done) == (1, 1)
    progress = {row.shard_id: row for row in ledger.progress(plan.run_id)}
    assert progress[done.shard_id].status == "ok"
    assert progress[first.shards[1].shard_id].status == "failed"
    assert "Lambda timed out" in progress[first.shards[1].shard_id].error


def test_a_failed_scan_fails_the_run_with_every_shard_recorded(settings, store, ledger) -> None:
    """The Map's Catch (more children failed than tolerated): RecordScanFailure through its handler."""
    plan = start_run(_request("scan-failed"), ledger, "step_functions", record_pending=False)
    ledger.record_shards([ShardResult(run_id=plan.run_id, shard=plan.shards[0], status="ok")])
    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    try:
        handlers.record_step_failure_handler(
            {
                "run_id": plan.run_id,
                "step": "scan",
                "failure": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "too many failed"},
            },
            FakeLambdaContext(function_name="tagc-audit-record-step-failure", aws_request_id="scan-1"),
        )
    finally:
        handlers.runtime.set(None)
    status = audit_status(plan.run_id, ledger, store)
    assert status.status == "failed" and status.outcome is None
    assert "ExceedToleratedFailureThreshold" in (status.error or "")
    assert status.shards_total == status.shards_done == len(plan.shards) == 4
    assert status.shards_failed == 3
    failed = [row for row in status.shards if row.status == "failed"]
    assert {row.shard_id for row in failed} == {shard.shard_id for shard in plan.shards[1:]}
    assert all("not scanned: the scan step failed" in (row.error or "") for row in failed)
    # Idempotent: a retried record changes nothing.
    record_step_failure(plan.run_id, "scan", "again", ledger)
    assert audit_status(plan.run_id, ledger, store).shards_failed == 3

"""The ASL file executed by moto's Step Functions interpreter, every Lambda task running its real handler.

No canned Lambda responses: the seam in ``lambda_seam`` routes each invocation to
``services.scanners.handlers``, which scan the demo estate, write the DynamoDB ledger and the store.
"""

from __future__ import annotations

import json

import boto3
import pytest

from services.scanners import handlers
from tagcompliance.audits import (
    AuditRequest,
    AuditScope,
    InProcessRunner,
    MemoryLedger,
    StepFunctionsRunner,
    snapshot_id_for,
)
from tagcompliance.aws import AwsClients
from tagcompliance.resources import resolve_resource_types

from .conftest import comparable, policy_loader, scanner_runtime
from .faults import Throttle, install_throttle

pytestmark = pytest.mark.slow


def _scope(settings, account_id, types=None, regions=None):
    return AuditScope(
        account_id=account_id,
        regions=list(regions or settings.default_regions),
        resource_types=resolve_resource_types(types),
    )


def _session(pipeline_env):
    return boto3.session.Session(
        aws_access_key_id=pipeline_env.environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=pipeline_env.environment["AWS_SECRET_ACCESS_KEY"],
    )


def _batches_of(state_machine, run_id):
    """The batches the Distributed Map's child executions scanned for a run (one invocation each)."""
    return [
        event["batch"]
        for event in state_machine.invocations.named("tagc-audit-scan-batch")
        if event["run_id"] == run_id
    ]


def test_full_estate_through_the_state_machine_equals_the_in_process_runner(
    settings, store, ledger, state_machine, pipeline_env
):
    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    scope = _scope(settings, pipeline_env.account_id)
    run_id = runner.start(scope, run_id="sfn-full-estate")
    status = runner.wait(run_id, timeout=120)
    assert status.status == "succeeded", status.error
    assert status.shards_total == status.shards_done == 60 and status.shards_failed == 0
    assert status.outcome is not None and status.outcome.created
    assert status.outcome.total_resources == len(pipeline_env.estate.resources)

    execution = runner.describe(run_id)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["snapshot_id"] == snapshot_id_for(run_id)
    history = state_machine.client.get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )
    types = [event["type"] for event in history["events"]]
    assert "MapRunStarted" in types and "MapRunSucceeded" in types and "MapStateSucceeded" in types
    # One child execution per account-region: every type of a region scanned together, once.
    batches = _batches_of(state_machine, run_id)
    assert sorted(batch["region"] for batch in batches) == sorted(settings.default_regions)
    assert all(sorted(batch["resource_types"]) == sorted(scope.resource_types) for batch in batches)
    assert sum(len(batch["resource_types"]) for batch in batches) == 60
    plan = json.loads(
        boto3.client("s3", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        .get_object(Bucket=settings.audit_plan_bucket, Key=f"plans/{run_id}.json")["Body"]
        .read()
    )
    assert sorted(item["batch_id"] for item in plan) == sorted(batch["batch_id"] for batch in batches)

    in_process = InProcessRunner(AwsClients(settings), store, MemoryLedger(), policy_loader(settings))
    local = in_process.run(AuditRequest(run_id="inproc-vs-sfn", scope=scope))
    assert comparable(store.get_snapshot(local.snapshot_id)) == comparable(
        store.get_snapshot(status.outcome.snapshot_id)
    )


def test_a_throttled_shard_is_retried_and_succeeds(settings, store, ledger, state_machine, pipeline_env):
    session = _session(pipeline_env)
    throttle = Throttle(region="us-west-2", times=1)
    install_throttle(session, "dynamodb", "ListTables", throttle)
    handlers.runtime.set(scanner_runtime(settings, store, ledger, session))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    types = ["dynamodb:table", "sqs:queue"]
    run_id = runner.start(_scope(settings, pipeline_env.account_id, types), run_id="sfn-throttled-once")
    status = runner.wait(run_id, timeout=60)
    assert status.status == "succeeded", status.error
    assert throttle.throttled == 1 and throttle.calls == 2
    shard_id = f"{pipeline_env.account_id}/us-west-2/dynamodb:table"
    # Retried inside its batch (backoff with jitter): one child execution per region, none again.
    assert sorted(batch["region"] for batch in _batches_of(state_machine, run_id)) == sorted(
        settings.default_regions
    )
    progress = {p.shard_id: p for p in status.shards}
    assert progress[shard_id].status == "ok" and progress[shard_id].attempts == 2
    assert status.shards_failed == 0
    snapshot = store.get_snapshot(status.outcome.snapshot_id)
    assert snapshot.failed_shards == []
    assert snapshot.total_resources == len(pipeline_env.estate.select(types)) > 0


def test_a_shard_that_keeps_failing_is_recorded_while_the_others_complete(
    settings, store, ledger, state_machine, pipeline_env
):
    session = _session(pipeline_env)
    throttle = Throttle(region="eu-west-1", times=None)
    install_throttle(session, "sqs", "ListQueues", throttle)
    handlers.runtime.set(scanner_runtime(settings, store, ledger, session))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    types = ["sqs:queue", "sns:topic"]
    run_id = runner.start(_scope(settings, pipeline_env.account_id, types), run_id="sfn-keeps-failing")
    status = runner.wait(run_id, timeout=60)
    assert status.status == "succeeded", status.error
    shard_id = f"{pipeline_env.account_id}/eu-west-1/sqs:queue"
    assert throttle.calls == settings.audit_shard_attempts == 4  # first try + 3 retries, then recorded
    # The batch recorded its own failed shard: its child execution succeeded, nothing to catch.
    assert not [
        e for e in state_machine.invocations.named("tagc-audit-record-batch-failure") if e["run_id"] == run_id
    ]
    progress = {p.shard_id: p for p in status.shards}
    assert progress[shard_id].status == "failed" and progress[shard_id].attempts == 4
    assert "ShardThrottledError" in progress[shard_id].error
    assert status.shards_failed == 1 and status.shards_done == 6
    snapshot = store.get_snapshot(status.outcome.snapshot_id)
    assert [(f["region"], f["resource_type"]) for f in snapshot.failed_shards] == [("eu-west-1", "sqs:queue")]
    assert "Throttling" in snapshot.failed_shards[0]["error"]
    covered = [
        r
        for r in pipeline_env.estate.select(types)
        if not (r.region == "eu-west-1" and r.resource_type == "sqs:queue")
    ]
    assert snapshot.total_resources == len(covered) > 0


def test_rerunning_a_run_id_through_the_state_machine_duplicates_nothing(
    settings, store, ledger, state_machine, pipeline_env
):
    runtime = scanner_runtime(settings, store, ledger)
    handlers.runtime.set(runtime)
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    scope = _scope(settings, pipeline_env.account_id, ["s3:bucket", "kinesis:stream"])
    run_id = runner.start(scope, run_id="sfn-rerun")
    first = runner.wait(run_id, timeout=60)
    assert first.status == "succeeded" and first.outcome.created

    def scanning_requests():  # every request but the plan written to S3 (again) by the plan step
        return {
            name: count for name, count in runtime.clients.request_counts.items() if name != "s3.PutObject"
        }

    requests_before = scanning_requests()
    plans_before = runtime.clients.request_counts["s3.PutObject"]
    runner.launch(AuditRequest(run_id="sfn-rerun", scope=scope), execution_name="sfn-rerun-again")
    second = runner.wait(run_id, timeout=60, execution_name="sfn-rerun-again")
    assert runner.describe("sfn-rerun-again")["status"] == "SUCCEEDED"
    again = json.loads(runner.describe("sfn-rerun-again")["output"])
    assert again["created"] is False and again["snapshot_id"] == first.outcome.snapshot_id
    assert scanning_requests() == requests_before  # no shard scanned twice
    assert runtime.clients.request_counts["s3.PutObject"] == plans_before + 1
    assert second.outcome.snapshot_id == first.outcome.snapshot_id
    assert [s.snapshot_id for s in store.list_snapshots()].count(first.outcome.snapshot_id) == 1
    assert len(list(store.iter_resource_states(first.outcome.snapshot_id))) == first.outcome.total_resources
    assert len(ledger.progress(run_id)) == 6
    assert all(p.attempts == 1 for p in ledger.progress(run_id))


def test_a_daily_snapshot_run_adds_a_history_point(settings, store, ledger, state_machine, pipeline_env):
    from tagcompliance.cache import MemoryCache
    from tagcompliance.service import ComplianceService

    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    scope = _scope(settings, pipeline_env.account_id, ["secretsmanager:secret"]).model_copy(
        update={"trigger": "daily"}
    )
    service = ComplianceService(settings, AwsClients(settings), store, MemoryCache())
    before = service.violation_history(
        resource_types=["secretsmanager:secret"], regions=list(settings.default_regions)
    )
    run_id = runner.start(scope, run_id="sfn-daily")
    status = runner.wait(run_id, timeout=60)
    assert status.status == "succeeded", status.error
    after = service.violation_history(
        resource_types=["secretsmanager:secret"], regions=list(settings.default_regions)
    )
    assert after.snapshot_count == before.snapshot_count + 1
    latest = after.points[-1]
    assert (latest.trigger, latest.scheduled) == ("daily", True)
    assert (
        latest.total_resources
        == status.outcome.total_resources
        == len(pipeline_env.estate.select(["secretsmanager:secret"]))
    )


def test_a_scheduled_start_from_eventbridge_runs_with_the_execution_name_as_run_id(
    settings, store, ledger, state_machine, pipeline_env
):
    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    # The input schedules.EventBridgeScheduler gives its schedules' state machine target.
    scheduled_input = {
        "schedule_id": "sched-1",
        "resource_types": ["kinesis:stream"],
        "regions": [],
        "trigger": "scheduled",
    }
    state_machine.client.start_execution(
        stateMachineArn=state_machine.arn, name="sched-exec-1", input=json.dumps(scheduled_input)
    )
    status = runner.wait("sched-exec-1", timeout=60)
    assert status.status == "succeeded", status.error
    snapshot = store.get_snapshot(snapshot_id_for("sched-exec-1"))
    assert snapshot is not None and (snapshot.trigger, snapshot.scheduled) == ("scheduled", True)
    assert snapshot.regions == list(settings.default_regions) and snapshot.resource_types == [
        "kinesis:stream"
    ]
    assert snapshot.total_resources == len(pipeline_env.estate.select(["kinesis:stream"]))

"""The audits package on the demo estate: plan, in-process runner, ledger, idempotency."""

from __future__ import annotations

from tagcompliance.audits import (
    AuditRequest,
    AuditScope,
    InProcessRunner,
    MemoryLedger,
    plan_shards,
    snapshot_id_for,
)
from tagcompliance.aws import AwsClients
from tagcompliance.cache import MemoryCache
from tagcompliance.resources import resolve_resource_types
from tagcompliance.service import ComplianceService

from .conftest import comparable, policy_loader


def _scope(settings, clients, types=None, regions=None):
    return AuditScope(
        account_id=clients.account_id,
        regions=list(regions or settings.default_regions),
        resource_types=resolve_resource_types(types),
    )


def test_plan_is_account_by_region_by_type():
    scope = AuditScope(
        account_id="111111111111",
        regions=["us-east-1", "eu-west-1"],
        resource_types=["s3:bucket", "sqs:queue", "rds:db"],
    )
    shards = plan_shards(scope)
    assert [s.shard_id for s in shards] == [
        "111111111111/us-east-1/s3:bucket",
        "111111111111/us-east-1/sqs:queue",
        "111111111111/us-east-1/rds:db",
        "111111111111/eu-west-1/s3:bucket",
        "111111111111/eu-west-1/sqs:queue",
        "111111111111/eu-west-1/rds:db",
    ]


def test_in_process_runner_matches_observe(settings, store, pipeline_env):
    clients = AwsClients(settings)
    service = ComplianceService(settings, clients, store, MemoryCache())
    observed = service.observe(None, None, force_refresh=True).snapshot
    runner = InProcessRunner(clients, store, MemoryLedger(), policy_loader(settings))
    outcome = runner.run(AuditRequest(run_id="inproc-matches-observe", scope=_scope(settings, clients)))
    assert outcome.created
    audited = store.get_snapshot(outcome.snapshot_id)
    assert audited is not None
    assert observed.total_resources == len(pipeline_env.estate.resources) == 369
    assert comparable(audited) == comparable(observed)
    assert sorted(s.resource_arn for s in store.iter_resource_states(audited.snapshot_id)) == sorted(
        s.resource_arn for s in store.iter_resource_states(observed.snapshot_id)
    )


def test_rerun_of_a_run_id_duplicates_nothing_and_rescans_nothing(settings, store, ledger):
    clients = AwsClients(settings)
    runner = InProcessRunner(clients, store, ledger, policy_loader(settings))
    request = AuditRequest(run_id="inproc-rerun", scope=_scope(settings, clients, ["s3:bucket", "sqs:queue"]))
    first = runner.run(request)
    assert first.created and first.total_resources > 0
    progress = ledger.progress("inproc-rerun")
    assert len(progress) == 6 and {p.status for p in progress} == {"ok"}
    assert sum(p.resource_count for p in progress) == first.total_resources

    requests_before = clients.total_requests()
    second = runner.run(request)
    assert not second.created
    assert second.snapshot_id == first.snapshot_id == snapshot_id_for("inproc-rerun")
    assert clients.total_requests() == requests_before  # every shard came from the ledger
    assert [s.snapshot_id for s in store.list_snapshots()].count(first.snapshot_id) == 1
    assert len(list(store.iter_resource_states(first.snapshot_id))) == first.total_resources
    assert [p.attempts for p in ledger.progress("inproc-rerun")] == [1] * 6


def test_start_returns_a_handle_and_status_reports_the_outcome(settings, store, ledger):
    clients = AwsClients(settings)
    runner = InProcessRunner(clients, store, ledger, policy_loader(settings))
    run_id = runner.start(_scope(settings, clients, ["sqs:queue"]))
    early = runner.status(run_id)
    assert early.run_id == run_id and early.shards_total == 3 and early.runner == "in_process"
    done = runner.wait(run_id, timeout=60)
    assert done.status == "succeeded"
    assert done.shards_done == 3 and done.shards_failed == 0
    assert done.outcome is not None and done.outcome.snapshot_id == snapshot_id_for(run_id)
    assert done.outcome.total_resources == done.resources_scanned


def test_in_process_runner_retries_a_throttled_shard_and_records_one_that_keeps_failing(
    settings, store, ledger, pipeline_env
):
    import boto3

    from .faults import Throttle, install_throttle

    session = boto3.session.Session(
        aws_access_key_id=pipeline_env.environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=pipeline_env.environment["AWS_SECRET_ACCESS_KEY"],
    )
    once = Throttle(region="us-west-2", times=1)
    always = Throttle(region="eu-west-1", times=None)
    install_throttle(session, "sqs", "ListQueues", once)
    install_throttle(session, "sqs", "ListQueues", always)
    clients = AwsClients(settings, session)
    runner = InProcessRunner(
        clients, store, ledger, policy_loader(settings), shard_attempts=3, backoff_seconds=0.01
    )
    outcome = runner.run(
        AuditRequest(run_id="inproc-throttled", scope=_scope(settings, clients, ["sqs:queue"]))
    )
    progress = {p.shard_id.split("/")[1]: p for p in ledger.progress("inproc-throttled")}
    assert (progress["us-west-2"].status, progress["us-west-2"].attempts) == ("ok", 2)
    assert (progress["eu-west-1"].status, progress["eu-west-1"].attempts) == ("failed", 3)
    assert progress["us-east-1"].status == "ok"
    assert always.throttled == 3
    snapshot = store.get_snapshot(outcome.snapshot_id)
    assert [(f["region"], f["resource_type"]) for f in snapshot.failed_shards] == [("eu-west-1", "sqs:queue")]
    expected = [r for r in pipeline_env.estate.select(["sqs:queue"]) if r.region != "eu-west-1"]
    assert outcome.total_resources == len(expected) > 0


def test_build_runner_picks_step_functions_only_when_a_state_machine_is_configured(settings, store):
    import pytest

    from tagcompliance.audits import DynamoLedger, StepFunctionsRunner, build_runner

    clients = AwsClients(settings)
    local = build_runner(settings, clients, store)
    assert isinstance(local, InProcessRunner) and isinstance(local.ledger, MemoryLedger)

    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:tagc-audit"
    deployed_settings = settings.model_copy(update={"state_machine_arn": arn})
    with pytest.raises(ValueError, match="AUDIT_LEDGER_TABLE"):
        build_runner(deployed_settings, clients, store)
    deployed = build_runner(
        deployed_settings.model_copy(update={"audit_ledger_table": "ledger", "audit_ledger_ttl_days": 7}),
        clients,
        store,
    )
    assert isinstance(deployed, StepFunctionsRunner) and isinstance(deployed.ledger, DynamoLedger)
    assert deployed.ledger.ttl.days == 7
    assert (
        deployed.execution_arn("run-1") == "arn:aws:states:us-east-1:123456789012:execution:tagc-audit:run-1"
    )

"""services.scheduler: EventBridge Scheduler kept in step with scheduled_audits and the daily snapshot,
scheduled runs recorded from Step Functions events, and the local loop firing a due schedule."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.scheduler import handlers as scheduler
from tag_compliance_mcp.runtime import build_runtime as build_gateway_runtime
from tagcompliance.audits import InProcessRunner, StepFunctionsRunner
from tagcompliance.aws import AwsClients
from tagcompliance.schedules import DAILY_SNAPSHOT_NAME, ScheduleService
from tagcompliance.store import open_store

from .lambda_seam import FakeLambdaContext

CONTEXT = FakeLambdaContext(function_name="scheduler", aws_request_id="local-test")


@pytest.fixture
def own_store(settings, tmp_path):
    """A store of this test's own (the package store holds other tests' schedules)."""
    store = open_store(settings.model_copy(update={"data_dir": tmp_path}))
    yield store
    store.close()


def _runtime(settings, store, **updates):
    run_settings = settings.model_copy(update=updates)
    clients = AwsClients(run_settings)
    return scheduler.SchedulerRuntime(run_settings, clients, store)


def test_sync_brings_eventbridge_in_line_with_the_table(settings, own_store, pipeline_env):
    group = f"tagc-sync-{secrets.token_hex(3)}"
    arn = f"arn:aws:states:{settings.aws_region}:{pipeline_env.account_id}:stateMachine:tagc-audit"
    role = f"arn:aws:iam::{pipeline_env.account_id}:role/tagc-scheduler"
    rt = _runtime(
        settings,
        own_store,
        state_machine_arn=arn,
        scheduler_role_arn=role,
        scheduler_group=group,
        daily_snapshot_time="05:30",
    )
    service = ScheduleService(own_store)  # no backend: the table changes, EventBridge does not
    active = service.create({"schedule": "daily", "time": "08:00", "recipients": ["a@example.com"]})
    paused = service.create(
        {"schedule": "weekly", "time": "09:15", "day_of_week": "friday", "recipients": ["finops@example.com"]}
    )
    service.pause(paused.schedule_id)
    gone = service.create({"schedule": "daily", "time": "10:00", "recipients": ["finops@example.com"]})
    service.delete(gone.schedule_id)
    client = pipeline_env.client("scheduler", settings.aws_region)
    client.create_schedule_group(Name=group)
    target = {"Arn": arn, "RoleArn": role}
    for name in ("audit-sched-0badc0de", "someone-elses"):
        client.create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression="rate(1 day)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
        )
    scheduler.runtime.set(rt)
    try:
        report = scheduler.sync_handler({}, CONTEXT)
        again = scheduler.sync_handler({}, CONTEXT)
    finally:
        scheduler.runtime.set(None)
    assert sorted(report["synced"]) == sorted([active.schedule_id, paused.schedule_id])
    assert report["deleted"] == [gone.schedule_id]
    assert report["orphans_removed"] == ["audit-sched-0badc0de"] and report["errors"] == []
    assert again["orphans_removed"] == [] and again["errors"] == []
    names = sorted(item["Name"] for item in client.list_schedules(GroupName=group)["Schedules"])
    assert names == sorted([active.schedule_id, paused.schedule_id, "someone-elses", DAILY_SNAPSHOT_NAME])
    assert client.get_schedule(Name=paused.schedule_id, GroupName=group)["State"] == "DISABLED"
    assert client.get_schedule(Name=active.schedule_id, GroupName=group)["State"] == "ENABLED"
    daily = client.get_schedule(Name=DAILY_SNAPSHOT_NAME, GroupName=group)
    assert (
        daily["ScheduleExpression"] == "cron(30 5 * * ? *)" and daily["ScheduleExpressionTimezone"] == "UTC"
    )
    assert json.loads(daily["Target"]["Input"])["trigger"] == "daily"
    assert daily["Target"]["Arn"] == arn


def test_sync_without_a_state_machine_is_a_clear_error(settings, own_store):
    scheduler.runtime.set(_runtime(settings, own_store))
    try:
        with pytest.raises(Exception, match="STATE_MACHINE_ARN and SCHEDULER_ROLE_ARN"):
            scheduler.sync_handler({}, CONTEXT)
    finally:
        scheduler.runtime.set(None)


def _event(schedule_id, started, status, output):
    return {
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:tagc-audit:sched-run",
            "name": "sched-run",
            "status": status,
            "startDate": int(started.timestamp() * 1000),
            "input": json.dumps({"schedule_id": schedule_id, "trigger": "scheduled"}),
            "output": json.dumps(output) if output is not None else None,
            "error": None if status == "SUCCEEDED" else "States.TaskFailed",
        },
    }


def test_a_finished_execution_updates_the_schedules_last_and_next_run(settings, own_store):
    service = ScheduleService(own_store)
    created = service.create(
        {"schedule": "daily", "time": "06:00", "timezone": "UTC", "recipients": ["finops@example.com"]}
    )
    record = own_store.get_scheduled_audit(created.schedule_id)
    due = record.next_run
    scheduler.runtime.set(_runtime(settings, own_store))
    try:
        done = scheduler.run_finished_handler(
            _event(created.schedule_id, due, "SUCCEEDED", {"snapshot_id": "snap-123"}), CONTEXT
        )
        repeated = scheduler.run_finished_handler(
            _event(created.schedule_id, due, "SUCCEEDED", {"snapshot_id": "snap-123"}), CONTEXT
        )
        after = own_store.get_scheduled_audit(created.schedule_id)
        failed = scheduler.run_finished_handler(
            _event(created.schedule_id, after.next_run, "FAILED", None), CONTEXT
        )
        unscheduled = scheduler.run_finished_handler(
            {"detail": {**_event("x", due, "SUCCEEDED", None)["detail"], "input": "{}"}}, CONTEXT
        )
    finally:
        scheduler.runtime.set(None)
    assert done["recorded"] and done["last_run_status"] == "success"
    assert (after.last_run, after.last_snapshot_id, after.last_error) == (due, "snap-123", None)
    assert after.next_run == due + timedelta(days=1)  # moved once, also when the event came twice
    assert repeated["next_run"] == after.next_run.isoformat()
    final = own_store.get_scheduled_audit(created.schedule_id)
    assert failed["last_run_status"] == "error" and "FAILED" in final.last_error
    assert final.next_run == due + timedelta(days=2)
    assert unscheduled == {"run_id": "sched-run", "schedule_id": None, "recorded": False}


def test_the_local_loop_fires_a_due_schedule_into_history_as_scheduled(settings, pipeline_env, tmp_path):
    """The ``make demo`` path: the gateway's runtime with its local loop, a schedule coming due."""
    demo_settings = settings.model_copy(update={"data_dir": tmp_path, "local_scheduler_interval_seconds": 1})
    runtime = build_gateway_runtime(demo_settings, "http")
    try:
        assert runtime.scheduler_loop is not None and runtime.scheduler_loop.running
        assert isinstance(runtime.runner, InProcessRunner) and not isinstance(
            runtime.runner, StepFunctionsRunner
        )
        soon = datetime.now(UTC) + timedelta(minutes=1)
        created = runtime.service.schedules.create(
            {
                "schedule": "daily",
                "time": soon.strftime("%H:%M"),
                "timezone": "UTC",
                "resource_types": ["sqs:queue"],
                "regions": ["us-east-1"],
                "recipients": ["finops@example.com"],
            }
        )
        record = runtime.store.get_scheduled_audit(created.schedule_id)
        assert record.next_run <= soon
        # Instead of waiting the minute out, the schedule comes due now.
        runtime.store.update_scheduled_audit(
            replace(record, next_run=datetime.now(UTC) - timedelta(seconds=1))
        )
        deadline = time.monotonic() + 60
        while not any(run.schedule_id == created.schedule_id for run in runtime.scheduler_loop.fired):
            assert time.monotonic() < deadline, "the local loop did not fire the due schedule"
            time.sleep(0.2)
        fired = next(run for run in runtime.scheduler_loop.fired if run.schedule_id == created.schedule_id)
        assert fired.status == "success", fired.error
        history = runtime.service.violation_history(resource_types=["sqs:queue"], regions=["us-east-1"])
        latest = history.points[-1]
        assert (latest.trigger, latest.scheduled) == ("scheduled", True)
        expected = [r for r in pipeline_env.estate.select(["sqs:queue"]) if r.region == "us-east-1"]
        assert latest.total_resources == len(expected)
        stored = runtime.store.get_scheduled_audit(created.schedule_id)
        assert (stored.last_run_status, stored.last_snapshot_id) == ("success", fired.snapshot_id)
        assert stored.next_run > datetime.now(UTC)
    finally:
        runtime.close()

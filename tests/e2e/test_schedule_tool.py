"""schedule_compliance_audit through the MCP client, and a due schedule firing into history."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.schedules import run_due_schedules

from .helpers import call, call_confirmed, call_error, gateway_settings

pytestmark = pytest.mark.anyio


async def test_schedule_lifecycle_and_a_scheduled_run(aws_env: DemoAws, tmp_path: Path) -> None:
    runtime = build_runtime(gateway_settings(aws_env, tmp_path), "memory")
    try:
        async with Client(build_server(runtime)) as client:
            created = (
                await call_confirmed(
                    client,
                    "schedule_compliance_audit",
                    schedule="daily",
                    time="09:00",
                    timezone="America/New_York",
                    resource_types=["sqs:queue"],
                    regions=["us-east-1"],
                    recipients=["finops-team@example.com"],
                )
            )["schedule"]
            schedule_id = created["schedule_id"]
            assert created["status"] == "active" and created["format"] == "email"
            next_run = datetime.fromisoformat(created["next_run"])
            assert (next_run.hour, next_run.minute) == (9, 0)
            assert next_run.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))  # EST or EDT

            listed = await call(client, "schedule_compliance_audit", action="list")
            assert [s["schedule_id"] for s in listed["schedules"]] == [schedule_id]
            paused = await call(client, "schedule_compliance_audit", action="pause", schedule_id=schedule_id)
            assert paused["schedule"]["status"] == "paused" and paused["schedule"]["next_run"] is None
            resumed = await call(
                client, "schedule_compliance_audit", action="resume", schedule_id=schedule_id
            )
            assert resumed["schedule"]["status"] == "active"
            updated = await call_confirmed(
                client, "schedule_compliance_audit", action="update", schedule_id=schedule_id, time="07:30"
            )
            assert datetime.fromisoformat(updated["schedule"]["next_run"]).hour == 7

            # The local scheduler's tick, an hour after the run was due: the audit runs once, flagged.
            due = datetime.fromisoformat(updated["schedule"]["next_run_utc"].replace("Z", "+00:00"))
            fired = run_due_schedules(
                runtime.store, due + timedelta(hours=1), runtime.service.run_scheduled_audit
            )
            assert [(run.schedule_id, run.status) for run in fired] == [(schedule_id, "success")]
            assert (
                run_due_schedules(
                    runtime.store, due + timedelta(hours=1), runtime.service.run_scheduled_audit
                )
                == []
            )
            history = await call(
                client, "get_violation_history", resource_types=["sqs:queue"], regions=["us-east-1"]
            )
            assert (
                history["points"][-1]["scheduled"] is True and history["points"][-1]["trigger"] == "scheduled"
            )
            expected = aws_env.estate.expected_summary(resource_types=["sqs:queue"], regions=["us-east-1"])
            assert history["points"][-1]["total_resources"] == expected.total

            deleted = await call_confirmed(
                client, "schedule_compliance_audit", action="delete", schedule_id=schedule_id
            )
            assert deleted["schedule"]["status"] == "deleted"
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"schedule": "daily", "time": "25:00", "recipients": ["a@example.com"]}, "time"),
        (
            {
                "schedule": "daily",
                "time": "09:00",
                "timezone": "Mars/Olympus",
                "recipients": ["a@example.com"],
            },
            "timezone",
        ),
        ({"schedule": "daily", "time": "09:00", "recipients": ["not-an-address"]}, "recipients"),
        ({"schedule": "cron", "cron_expression": "61 * * * *", "recipients": ["a@example.com"]}, "cron"),
        (
            {"schedule": "daily", "time": "09:00", "recipients": ["a@example.com"], "format": "slack"},
            "format",
        ),
        ({"action": "pause"}, "schedule_id"),
        ({"action": "get", "schedule_id": "audit-sched-00000000"}, "audit-sched-00000000"),
        (
            {
                "schedule": "daily",
                "time": "09:00",
                "recipients": ["a@example.com"],
                "resource_types": ["ec2:vpc"],
            },
            "unknown resource type",
        ),
    ],
)
async def test_schedule_bad_input(client: Client, arguments: dict, message: str) -> None:
    assert message in await call_error(client, "schedule_compliance_audit", **arguments)


async def test_webhook_urls_never_reach_the_audit_log(client: Client, runtime) -> None:
    hook = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"
    result = await call_confirmed(
        client, "schedule_compliance_audit", schedule="weekly", time="08:00", recipients=[hook]
    )
    assert "XXXXSECRETXXXX" not in str(result)
    [entry] = runtime.store.list_calls(limit=1)
    assert "XXXXSECRETXXXX" not in str(entry.parameters) and "[redacted]" in str(entry.parameters)
    await call_confirmed(
        client, "schedule_compliance_audit", action="delete", schedule_id=result["schedule"]["schedule_id"]
    )


async def test_deployed_mode_mirrors_schedules_to_eventbridge(aws_env: DemoAws, tmp_path: Path) -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:compliance-audit"
    role = "arn:aws:iam::123456789012:role/scheduler-invokes-audit"
    settings = gateway_settings(
        aws_env, tmp_path, STATE_MACHINE_ARN=machine, SCHEDULER_ROLE_ARN=role, SCHEDULER_GROUP="e2e-audits"
    )
    runtime = build_runtime(settings, "http")  # a server process: with EventBridge, no local loop
    try:
        assert runtime.health()["scheduler"] == "eventbridge" and runtime.scheduler_loop is None
        async with Client(build_server(runtime)) as client:
            created = (
                await call_confirmed(
                    client,
                    "schedule_compliance_audit",
                    schedule="weekly",
                    day_of_week="friday",
                    time="18:30",
                    timezone="Europe/Berlin",
                    recipients=["a@example.com"],
                )
            )["schedule"]
            remote = aws_env.client("scheduler").get_schedule(
                Name=created["schedule_id"], GroupName="e2e-audits"
            )
            assert remote["ScheduleExpressionTimezone"] == "Europe/Berlin" and remote["State"] == "ENABLED"
            assert remote["ScheduleExpression"].startswith("cron(30 18 ")
            assert remote["Target"]["Arn"] == machine and remote["Target"]["RoleArn"] == role
            await call(
                client, "schedule_compliance_audit", action="pause", schedule_id=created["schedule_id"]
            )
            paused = aws_env.client("scheduler").get_schedule(
                Name=created["schedule_id"], GroupName="e2e-audits"
            )
            assert paused["State"] == "DISABLED"
            await call_confirmed(
                client, "schedule_compliance_audit", action="delete", schedule_id=created["schedule_id"]
            )
    finally:
        runtime.close()

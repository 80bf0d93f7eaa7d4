"""Scheduled audits mirrored to EventBridge Scheduler, against the demo's moto server.

moto stores schedules (never fires them), so each test reads them back with get_schedule and
checks the expression, time zone, state, target and input. Every test works in its own schedule
group and deletes it, leaving the shared demo AWS as it found it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from services.demo.aws import DemoAws
from services.demo.seed import CREDENTIALS
from tagcompliance.aws import AwsClients
from tagcompliance.errors import InvalidInputError
from tagcompliance.schedules import EventBridgeScheduler, SchedulerSyncError, ScheduleService
from tagcompliance.settings import Settings
from tagcompliance.store import SqliteStore

REGION = "us-east-1"
ACCOUNT = "123456789012"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:tag-compliance-audit"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/tag-compliance-scheduler"
WEBHOOK = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdEFGH1234ijklMNOP5678"


@pytest.fixture(scope="module")
def clients(demo_aws: DemoAws) -> AwsClients:
    session = boto3.session.Session(**CREDENTIALS, region_name=REGION)
    return AwsClients(Settings(AWS_ENDPOINT_URL=demo_aws.endpoint_url, AWS_REGION=REGION), session)


@pytest.fixture
def group(clients: AwsClients) -> Iterator[str]:
    name = f"tag-audits-{secrets.token_hex(4)}"
    yield name
    scheduler = clients.client("scheduler")
    try:
        scheduler.get_schedule_group(Name=name)
    except ClientError:
        return  # never created (moto answers deleting a missing group with HTTP 500, retried for long)
    for schedule in scheduler.list_schedules(GroupName=name)["Schedules"]:
        scheduler.delete_schedule(Name=schedule["Name"], GroupName=name)
    scheduler.delete_schedule_group(Name=name)


@pytest.fixture
def service(clients: AwsClients, group: str, tmp_path: Path) -> Iterator[ScheduleService]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.migrate()
    backend = EventBridgeScheduler(clients, group, STATE_MACHINE_ARN, ROLE_ARN)
    try:
        yield ScheduleService(store, backend, clock=lambda: datetime(2026, 2, 9, 20, tzinfo=UTC))
    finally:
        store.close()


def get_schedule(clients: AwsClients, group: str, name: str) -> dict[str, Any]:
    return clients.client("scheduler").get_schedule(Name=name, GroupName=group)


def schedule_names(clients: AwsClients, group: str) -> list[str]:
    return sorted(s["Name"] for s in clients.client("scheduler").list_schedules(GroupName=group)["Schedules"])


def test_a_new_schedule_becomes_an_eventbridge_schedule(
    clients: AwsClients, group: str, service: ScheduleService
) -> None:
    created = service.create(
        {
            "schedule": "weekly",
            "day_of_week": "friday",
            "time": "17:30",
            "timezone": "Europe/Berlin",
            "resource_types": ["ec2:instance", "rds:db"],
            "regions": ["us-east-1", "eu-west-1"],
            "recipients": ["finops@example.com", WEBHOOK],
        },
        created_by="alice",
    )

    # The group did not exist: the adapter created it.
    assert clients.client("scheduler").get_schedule_group(Name=group)["Name"] == group
    aws = get_schedule(clients, group, created.schedule_id)
    assert created.external_id == aws["Arn"]
    assert aws["Arn"].endswith(f":schedule/{group}/{created.schedule_id}")
    assert aws["ScheduleExpression"] == "cron(30 17 ? * FRI *)"
    assert aws["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert aws["State"] == "ENABLED"
    assert aws["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = aws["Target"]
    assert (target["Arn"], target["RoleArn"]) == (STATE_MACHINE_ARN, ROLE_ARN)
    assert json.loads(target["Input"]) == {
        "schedule_id": created.schedule_id,
        "resource_types": ["ec2:instance", "rds:db"],
        "regions": ["us-east-1", "eu-west-1"],
        "trigger": "scheduled",
    }
    assert "abcdEFGH1234" not in json.dumps(aws, default=str)  # webhook secrets stay in the store
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def test_pause_resume_update_and_delete_follow_in_eventbridge(
    clients: AwsClients, group: str, service: ScheduleService
) -> None:
    sid = service.create(
        {
            "schedule": "daily",
            "time": "09:00",
            "timezone": "America/New_York",
            "recipients": ["a@example.com"],
        }
    ).schedule_id

    service.pause(sid)
    assert get_schedule(clients, group, sid)["State"] == "DISABLED"
    service.resume(sid)
    assert get_schedule(clients, group, sid)["State"] == "ENABLED"

    service.update(
        sid, {"schedule": "cron", "cron_expression": "*/30 9-17 * * mon-fri", "timezone": "Asia/Tokyo"}
    )
    aws = get_schedule(clients, group, sid)
    assert (aws["ScheduleExpression"], aws["ScheduleExpressionTimezone"], aws["State"]) == (
        "cron(0,30 9-17 ? * MON-FRI *)",
        "Asia/Tokyo",
        "ENABLED",
    )

    deleted = service.delete(sid)
    assert deleted.status == "deleted"
    with pytest.raises(ClientError) as raised:
        get_schedule(clients, group, sid)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert service.delete(sid).status == "deleted"  # again: nothing left to delete, no error


def test_monthly_on_day_30_needs_a_february_schedule_which_goes_when_no_longer_needed(
    clients: AwsClients, group: str, service: ScheduleService
) -> None:
    sid = service.create(
        {"schedule": "monthly", "day_of_month": 30, "time": "06:00", "recipients": ["a@example.com"]}
    ).schedule_id

    assert schedule_names(clients, group) == [sid, f"{sid}-feb"]
    assert get_schedule(clients, group, sid)["ScheduleExpression"] == "cron(0 6 30 1,3-12 ? *)"
    assert get_schedule(clients, group, f"{sid}-feb")["ScheduleExpression"] == "cron(0 6 L 2 ? *)"
    service.pause(sid)
    assert {get_schedule(clients, group, name)["State"] for name in (sid, f"{sid}-feb")} == {"DISABLED"}

    service.update(sid, {"day_of_month": 31})
    assert schedule_names(clients, group) == [sid]
    assert get_schedule(clients, group, sid)["ScheduleExpression"] == "cron(0 6 L * ? *)"
    assert get_schedule(clients, group, sid)["State"] == "DISABLED"  # still paused

    service.delete(sid)
    assert schedule_names(clients, group) == []


def test_a_schedule_missing_in_eventbridge_is_recreated_on_update(
    clients: AwsClients, group: str, service: ScheduleService
) -> None:
    sid = service.create({"schedule": "daily", "time": "09:00", "recipients": ["a@example.com"]}).schedule_id
    clients.client("scheduler").delete_schedule(Name=sid, GroupName=group)  # removed behind our back

    service.update(sid, {"time": "10:00"})

    assert get_schedule(clients, group, sid)["ScheduleExpression"] == "cron(0 10 * * ? *)"


def test_eventbridge_errors_are_reported_and_nothing_is_stored(
    clients: AwsClients, group: str, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.migrate()
    # moto accepts whatever the adapter sends, so the refusal (missing IAM permission) is simulated.
    backend = EventBridgeScheduler(clients, group, STATE_MACHINE_ARN, ROLE_ARN)
    failing = clients.client("scheduler")
    original = failing.get_schedule_group

    def refuse(**kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetScheduleGroup"
        )

    failing.get_schedule_group = refuse
    try:
        service = ScheduleService(store, backend)
        with pytest.raises(SchedulerSyncError, match="AccessDeniedException not allowed"):
            service.create({"schedule": "daily", "time": "09:00", "recipients": ["a@example.com"]})
        assert store.list_scheduled_audits() == []
    finally:
        failing.get_schedule_group = original
        store.close()


def test_group_names_are_checked(clients: AwsClients) -> None:
    with pytest.raises(InvalidInputError, match="schedule group name"):
        EventBridgeScheduler(clients, "bad group/name", STATE_MACHINE_ARN, ROLE_ARN)

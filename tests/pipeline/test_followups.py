"""After aggregate, the state machine detects drift and notifies (SES email, Slack webhook).

Every Lambda task runs its real handler (see lambda_seam); emails are read back from moto's SES,
Slack posts from a receiver on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest

from services.scanners import handlers
from tagcompliance.audits import StepFunctionsRunner, snapshot_id_for
from tagcompliance.errors import StoreError
from tagcompliance.schedules import ScheduleService

from .conftest import scanner_runtime
from .receivers import sent_emails, slack_receiver

pytestmark = pytest.mark.slow

SENDER = "tag-audits@example.com"
EMAIL = "finops-team@example.com"
GOOD_HOOK = "https://hooks.slack.com/services/T0001/B0001/goodsecret1"
BAD_HOOK = "https://hooks.slack.com/services/T0001/B0002/revokedsecret"
TYPES = ["sns:topic"]
REGIONS = ["eu-west-1"]


def _start(state_machine, name: str, schedule_id: str) -> None:
    scheduled_input = {"schedule_id": schedule_id, "resource_types": TYPES, "regions": REGIONS}
    state_machine.client.start_execution(
        stateMachineArn=state_machine.arn, name=name, input=json.dumps(scheduled_input)
    )


def test_a_scheduled_run_detects_drift_and_notifies_its_recipients(
    settings, store, ledger, state_machine, pipeline_env
):
    pipeline_env.client("ses", settings.aws_region).verify_email_identity(EmailAddress=SENDER)
    schedule = ScheduleService(store).create(
        {
            "schedule": "daily",
            "time": "06:00",
            "resource_types": TYPES,
            "regions": REGIONS,
            "recipients": [EMAIL, GOOD_HOOK, BAD_HOOK],
        }
    )
    expected = [r for r in pipeline_env.estate.select(TYPES) if r.region in REGIONS]
    with slack_receiver() as slack:
        slack.failing.add("/services/T0001/B0002/revokedsecret")
        run_settings = settings.model_copy(
            update={"notify_email_sender": SENDER, "notify_slack_base_url": slack.base_url}
        )
        handlers.runtime.set(scanner_runtime(run_settings, store, ledger))
        runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
        emails_before = len(sent_emails(pipeline_env.account_id, settings.aws_region))

        _start(state_machine, "notify-first", schedule.schedule_id)
        first = runner.wait("notify-first", timeout=60)
        assert first.status == "succeeded", first.error
        assert first.outcome.total_resources == len(expected) > 0
        assert first.drift is not None and first.drift["baseline_snapshot_id"] is None

        _start(state_machine, "notify-second", schedule.schedule_id)
        second = runner.wait("notify-second", timeout=60)
        assert second.status == "succeeded", second.error

        posts = list(slack.posts)

    # Drift: the second run is compared with the first (nothing changed in between).
    assert second.drift["baseline_snapshot_id"] == snapshot_id_for("notify-first")
    assert second.drift["total_drifts"] == 0
    assert second.drift["resources_added"] == second.drift["resources_removed"] == 0

    # Notifications: one delivery per recipient, the broken webhook recorded as failed.
    deliveries = {d["recipient"]: d for d in second.notifications}
    assert deliveries[EMAIL]["status"] == "sent" and deliveries[EMAIL]["channel"] == "email"
    assert deliveries["https://hooks.slack.com/services/T0001/B0001/****"]["status"] == "sent"
    failed = deliveries["https://hooks.slack.com/services/T0001/B0002/****"]
    assert (failed["status"], failed["error"]) == ("failed", "HTTP 500")
    assert "secret" not in json.dumps(second.notifications)

    # What was really sent: two emails (one per run) through SES, four Slack posts.
    emails = sent_emails(pipeline_env.account_id, settings.aws_region)[emails_before:]
    assert [(e["source"], e["destinations"]["ToAddresses"]) for e in emails] == [(SENDER, [EMAIL])] * 2
    assert "notify-second" in emails[1]["body"] and "Compliance score" in emails[1]["body"]
    assert f"Resources: {len(expected)}" in emails[1]["body"]
    assert sorted(path for path, _ in posts) == sorted(
        ["/services/T0001/B0001/goodsecret1", "/services/T0001/B0002/revokedsecret"] * 2
    )
    assert any("notify-second" in body["text"] for _, body in posts)

    # A failed delivery never loses the snapshot, and the execution's output carries it all.
    snapshot = store.get_snapshot(snapshot_id_for("notify-second"))
    assert snapshot is not None and (snapshot.trigger, snapshot.scheduled) == ("scheduled", True)
    output = json.loads(runner.describe("notify-second")["output"])
    assert output["snapshot_id"] == snapshot.snapshot_id
    assert output["notifications"]["report"]["sent"] == 2 and output["notifications"]["report"]["failed"] == 1
    assert output["drift"]["summary"]["baseline_snapshot_id"] == snapshot_id_for("notify-first")


def test_without_a_configured_sender_the_email_is_recorded_as_failed(
    settings, store, ledger, state_machine, pipeline_env
):
    schedule = ScheduleService(store).create(
        {
            "schedule": "daily",
            "time": "07:00",
            "resource_types": TYPES,
            "regions": REGIONS,
            "recipients": [EMAIL],
        }
    )
    handlers.runtime.set(scanner_runtime(settings, store, ledger))  # NOTIFY_EMAIL_SENDER unset
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    _start(state_machine, "notify-no-sender", schedule.schedule_id)
    status = runner.wait("notify-no-sender", timeout=60)
    assert status.status == "succeeded", status.error
    assert [(d["recipient"], d["status"]) for d in status.notifications] == [(EMAIL, "failed")]
    assert "NOTIFY_EMAIL_SENDER" in status.notifications[0]["error"]
    assert store.get_snapshot(snapshot_id_for("notify-no-sender")) is not None


class _SchedulesUnavailable:
    """The store, except that reading a scheduled audit fails (the database lost the table)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def get_scheduled_audit(self, schedule_id):
        raise StoreError("scheduled_audits is unavailable")


def test_a_crashing_notify_step_is_recorded_and_the_snapshot_stays(
    settings, store, ledger, state_machine, pipeline_env
):
    handlers.runtime.set(scanner_runtime(settings, _SchedulesUnavailable(store), ledger))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    _start(state_machine, "notify-crash", "audit-sched-00000000")
    status = runner.wait("notify-crash", timeout=60)
    assert runner.describe("notify-crash")["status"] == "SUCCEEDED"
    assert status.status == "succeeded"
    assert status.error is not None and "notify_error" in status.error
    assert "scheduled_audits is unavailable" in status.error
    assert status.notifications is None  # nothing was delivered
    assert len(state_machine.invocations.named("tagc-audit-record-step-failure")) >= 1
    snapshot = store.get_snapshot(snapshot_id_for("notify-crash"))
    expected = [r for r in pipeline_env.estate.select(TYPES) if r.region in REGIONS]
    assert snapshot is not None and snapshot.total_resources == len(expected)

"""What a finished audit run tells people: one message, sent by email (SES) and to Slack webhooks.

Every recipient gets its own delivery, and every delivery is reported (sent or failed, with the
reason) instead of raised: a notification that cannot be delivered never undoes the run's
snapshot. Slack webhook URLs are secrets: reports show them masked.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from tagcompliance.aws import AwsClients, describe_aws_error
from tagcompliance.schedules import is_email, is_slack_webhook, mask_recipient
from tagcompliance.settings import Settings
from tagcompliance.store import Store

from .models import AuditOutcome, AuditPlan

SLACK_HOST = "https://hooks.slack.com"
MAX_LISTED_ACCOUNTS = 10
MAX_LISTED_FAILURES = 20

# (url, body bytes, timeout) -> HTTP status; replaceable in tests of the adapter itself.
HttpPost = Callable[[str, bytes, float], int]


class DriftSummary(BaseModel):
    """The drift step's result: what changed since the previous snapshot of the same scope."""

    snapshot_id: str
    baseline_snapshot_id: str | None
    total_drifts: int
    by_severity: dict[str, int] = Field(default_factory=dict)
    resources_added: int = 0
    resources_removed: int = 0
    drifts: list[dict[str, Any]] = Field(default_factory=list, description="The most severe, at most 20.")
    note: str | None = None


class AuditMessage(BaseModel):
    subject: str
    text: str


class Delivery(BaseModel):
    channel: Literal["email", "slack"]
    recipient: str = Field(description="The email address, or the webhook URL with its secret masked.")
    status: Literal["sent", "failed"]
    error: str | None = None
    message_id: str | None = None


class NotifyReport(BaseModel):
    run_id: str
    recipients: int
    sent: int
    failed: int
    deliveries: list[Delivery]


def run_recipients(plan: AuditPlan, store: Store) -> list[str]:
    """The run's own recipients plus those of the scheduled audit that started it, each once."""
    recipients = list(plan.recipients)
    if plan.schedule_id:
        record = store.get_scheduled_audit(plan.schedule_id)
        if record is not None:
            recipients.extend(record.recipients)
    return list(dict.fromkeys(recipients))


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def build_message(plan: AuditPlan, outcome: AuditOutcome, drift: DriftSummary | None) -> AuditMessage:
    scope = plan.scope
    subject = (
        f"Tag compliance {scope.trigger} audit: score {_score(outcome.compliance_score)}, "
        f"{outcome.violation_count} violations"
    )
    lines = [
        f"Run {outcome.run_id} ({scope.trigger}), snapshot {outcome.snapshot_id}",
        f"Accounts: {', '.join(scope.audited_accounts)}",
        f"Regions: {', '.join(scope.regions)}",
        f"Resource types: {len(scope.resource_types)}",
        f"Compliance score: {_score(outcome.compliance_score)}",
        f"Resources: {outcome.total_resources}, compliant: {outcome.compliant_resources}, "
        f"violations: {outcome.violation_count}",
    ]
    if len(scope.audited_accounts) > 1 and outcome.by_account:
        # outcome.by_account is worst first: the accounts to act on lead the message.
        lines.append("Accounts, worst first:")
        lines.extend(
            f"  - {account}: score {_score(counts.compliance_score)}, {counts.violations} violations, "
            f"{counts.total} resources"
            for account, counts in list(outcome.by_account.items())[:MAX_LISTED_ACCOUNTS]
        )
        if len(outcome.by_account) > MAX_LISTED_ACCOUNTS:
            lines.append(f"  - and {len(outcome.by_account) - MAX_LISTED_ACCOUNTS} more")
    if outcome.failed_shards:
        lines.append(f"Missing coverage: {outcome.failed_shards} failed shard(s) (the score excludes them)")
        lines.extend(
            f"  - {entry.account_id or '?'}/{entry.region}/{entry.resource_type}"
            f"{' ' + entry.resource_arn if entry.resource_arn else ''}: {entry.error}"
            for entry in outcome.failed_shard_details[:MAX_LISTED_FAILURES]
        )
    if drift is None:
        lines.append("Drift: not computed")
    elif drift.baseline_snapshot_id is None:
        lines.append("Drift: no earlier snapshot of this scope to compare with")
    else:
        severities = ", ".join(f"{name} {count}" for name, count in sorted(drift.by_severity.items()))
        lines.append(
            f"Drift since snapshot {drift.baseline_snapshot_id}: {drift.total_drifts} tag change(s)"
            + (f" ({severities})" if severities else "")
            + f", {drift.resources_added} resource(s) added, {drift.resources_removed} removed"
        )
    return AuditMessage(subject=subject, text="\n".join(lines))


def _http_post(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def deliver(
    message: AuditMessage,
    recipients: Iterable[str],
    clients: AwsClients,
    settings: Settings,
    post: HttpPost = _http_post,
) -> list[Delivery]:
    """Send ``message`` to every recipient; one ``Delivery`` each, failures included."""
    deliveries: list[Delivery] = []
    for recipient in recipients:
        if is_email(recipient):
            deliveries.append(_email(message, recipient, clients, settings))
        elif is_slack_webhook(recipient):
            deliveries.append(_slack(message, recipient, settings, post))
        else:
            deliveries.append(
                Delivery(
                    channel="email" if "@" in recipient else "slack",
                    recipient=mask_recipient(recipient) if "://" not in recipient else "(invalid URL)",
                    status="failed",
                    error="neither an email address nor a Slack incoming-webhook URL",
                )
            )
    return deliveries


def _email(message: AuditMessage, address: str, clients: AwsClients, settings: Settings) -> Delivery:
    if not settings.notify_email_sender:
        return Delivery(
            channel="email",
            recipient=address,
            status="failed",
            error="no sender configured: set NOTIFY_EMAIL_SENDER to an SES-verified address",
        )
    try:
        response = clients.client("ses").send_email(
            Source=settings.notify_email_sender,
            Destination={"ToAddresses": [address]},
            Message={
                "Subject": {"Data": message.subject[:200], "Charset": "UTF-8"},
                "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
            },
        )
    except Exception as error:
        return Delivery(channel="email", recipient=address, status="failed", error=describe_aws_error(error))
    return Delivery(channel="email", recipient=address, status="sent", message_id=response.get("MessageId"))


def _slack(message: AuditMessage, webhook: str, settings: Settings, post: HttpPost) -> Delivery:
    url = settings.notify_slack_base_url + webhook.removeprefix(SLACK_HOST)
    body = json.dumps({"text": f"*{message.subject}*\n```{message.text}```"}).encode()
    shown = mask_recipient(webhook)
    try:
        status = post(url, body, settings.notify_timeout_seconds)
    except Exception as error:  # unreachable, timed out: reported, never raised
        return Delivery(
            channel="slack", recipient=shown, status="failed", error=f"{type(error).__name__}: {error}"
        )
    if status != 200:
        return Delivery(channel="slack", recipient=shown, status="failed", error=f"HTTP {status}")
    return Delivery(channel="slack", recipient=shown, status="sent")

"""Who receives a scheduled audit's report: email addresses and Slack webhooks, masked when shown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_SLACK_WEBHOOK = re.compile(
    r"https://hooks\.slack\.com/services/([A-Za-z0-9]+)/([A-Za-z0-9]+)/([A-Za-z0-9]+)"
)


def is_email(value: str) -> bool:
    local = value.rpartition("@")[0]
    return len(value) <= 254 and len(local) <= 64 and _EMAIL.fullmatch(value) is not None


def is_slack_webhook(value: str) -> bool:
    return _SLACK_WEBHOOK.fullmatch(value) is not None


def mask_recipient(value: str) -> str:
    """A Slack webhook URL with its secret part hidden; email addresses unchanged."""
    match = _SLACK_WEBHOOK.fullmatch(value)
    if match is None:
        return value
    return f"https://hooks.slack.com/services/{match.group(1)}/{match.group(2)}/****"


def recipient_as_shown(value: str) -> str:
    """A refused recipient as an error may repeat it: a URL's path (maybe a secret) is left out."""
    if "://" in value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}/..."
    return value[:100]

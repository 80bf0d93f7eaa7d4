"""The one redactor: what the gateway and the Lambdas log, what ``call_log`` stores and what a tool
error answers.

* ``redact`` (parameters, log fields) and ``redact_text`` (messages) remove credentials: values
  under secret-looking keys, Slack incoming-webhook secrets (also the truncated echo pydantic makes
  of one), HTTP credentials as botocore and urllib3 print them at DEBUG (``Authorization``,
  ``X-Amz-Security-Token``, cookies, signatures), and the input values pydantic repeats in its
  validation errors (it shows a long value's last 24 characters: a webhook's secret part).
* ``one_line`` escapes CR/LF and other control characters so a logged value cannot forge a line;
  ``capped`` bounds a record's length. Both formatters (``observability.logs``) apply all three.

Plain Python (it lived in the gateway until the Lambdas needed the same redaction).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_core import to_jsonable_python

REDACTED = "[redacted]"
SECRET_MARKERS = ("token", "secret", "password", "authorization", "webhook", "credential", "key_id", "cookie")
MAX_PARAMETER_CHARS = 500  # a string parameter as stored in call_log
MAX_LIST_ITEMS = 100
MAX_LOGGED_CHARS = 4000  # one log record's message (a traceback has its own lines)

_TEXT_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    # pydantic's "[type=..., input_value='...', input_type=str]": the caller knows what it sent.
    (re.compile(r"(input_value=).*?(?=, input_type=)", re.DOTALL), rf"\1{REDACTED}"),
    # A Slack incoming-webhook URL is a credential wherever it appears; pydantic's truncated
    # "https://hooks.slack.com/...B0/secret" too. "https://hooks.slack.com/services/..." (a hint) stays.
    (
        re.compile(r"(hooks\.slack\.com/)(?:services/(?!\.\.\.)|\.\.\.)[^\s'\"<>,;)\]}]+", re.IGNORECASE),
        rf"\1services/{REDACTED}",
    ),
    # The webhook's path without its host (a fragment pasted or cut): team/bot/secret.
    (re.compile(r"\b(T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/)[A-Za-z0-9]{8,}"), rf"\1{REDACTED}"),
    # Headers and query parameters, as dict reprs ('Cookie': b'...'), lines (x-amz-security-token:...)
    # or URLs (X-Amz-Security-Token=...&).
    (
        re.compile(
            r"\b(authorization|proxy-authorization|x-amz-security-token|x-amz-credential|x-amz-signature"
            r"|set-cookie|cookie)(['\"]?\s*[:=]\s*(?:b?['\"])?)[^'\"\r\n&]+",
            re.IGNORECASE,
        ),
        rf"\1\2{REDACTED}",
    ),
    # botocore.auth logs the request signature on the line after "Signature:".
    (re.compile(r"(Signature:\s*)[0-9a-f]{64}"), rf"\1{REDACTED}"),
)
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {
    ord("\r"): "\\r",
    ord("\n"): "\\n",
    ord("\t"): "\t",  # a tab forges nothing
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def redact_text(text: str) -> str:
    """``text`` without the credentials it may hold (see the module docstring)."""
    for pattern, replacement in _TEXT_SECRETS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """Parameters as stored and logged: values under secret-looking keys are replaced, strings
    redacted and capped, lists capped."""
    if any(marker in key.lower() for marker in SECRET_MARKERS):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, key) for item in value[:MAX_LIST_ITEMS]]
    if isinstance(value, str):
        text = redact_text(value)
        return text[:MAX_PARAMETER_CHARS] + "..." if len(text) > MAX_PARAMETER_CHARS else text
    return to_jsonable_python(value, fallback=str)  # dates and the like, as the call log stores JSON


def one_line(text: str) -> str:
    """CR, LF and other control characters escaped: a value cannot start a log line of its own."""
    return text.translate(_CONTROL)


def capped(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"

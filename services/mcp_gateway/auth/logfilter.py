"""The one redactor: what the gateway logs, stores in ``call_log`` and answers in a tool error.

* ``redact`` (parameters) and ``redact_text`` (messages) remove credentials: values under
  secret-looking keys, Slack incoming-webhook secrets (also the truncated echo pydantic makes of
  one), HTTP credentials as botocore and urllib3 print them at DEBUG (``Authorization``,
  ``X-Amz-Security-Token``, cookies, signatures), and the input values pydantic repeats in its
  validation errors (it shows a long value's last 24 characters: a webhook's secret part).
* ``public_error`` also hides the server's absolute paths from a caller.
* ``SafeFormatter`` (installed on the root logger by ``configure_logging``) redacts every record,
  escapes CR/LF so a logged value cannot forge a line, and caps each record's length.
* ``RedactQueryStrings``: uvicorn's access log line holds the request's full path, query string
  included: on ``/oauth/callback`` that is the IdP's authorization code and the login state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TextIO

from pydantic_core import to_jsonable_python

ACCESS_LOGGER = "uvicorn.access"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
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
# An absolute POSIX path of two or more parts, not part of a URL (after "host:port" or "//").
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/:,;()\[\]<>]+/)+([^\s'\"/:,;()\[\]<>]*)")
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
    return to_jsonable_python(value)  # dates and the like, as the call log stores JSON


def public_error(message: str) -> str:
    """A tool error as the caller and ``call_log`` see it: redacted, and naming no directory of
    the server (``/srv/app/policies/x.json`` -> ``.../x.json``)."""
    return _SERVER_PATH.sub(lambda match: f".../{match.group(1)}", redact_text(message))


def one_line(text: str) -> str:
    """CR, LF and other control characters escaped: a value cannot start a log line of its own."""
    return text.translate(_CONTROL)


def capped(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


class SafeFormatter(logging.Formatter):
    """Every record redacted, on one line (a traceback's lines indented below it) and capped."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)  # other handlers (tests' capture) keep the original
        safe.msg, safe.args = capped(one_line(redact_text(record.getMessage()))), None
        safe.exc_info, safe.exc_text, safe.stack_info = None, None, None
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        text = super().format(safe)
        for detail in details:  # indented: no line of a traceback can pass for a record
            text += "\n" + "\n".join(f"    {capped(line)}" for line in redact_text(detail).splitlines())
        return text


class RedactQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] + "?[redacted]" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


def install_access_log_redaction() -> None:
    """Idempotent: at most one filter on uvicorn's access logger."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactQueryStrings) for existing in logger.filters):
        logger.addFilter(RedactQueryStrings())


def configure_logging(level: str, stream: TextIO) -> Callable[[], None]:
    """The gateway's logging: one root handler on ``stream`` with ``SafeFormatter`` (run uvicorn with
    ``log_config=None`` so its records reach it too) and the access-log query redaction. Returns
    the function that undoes it."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(LOG_FORMAT))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    install_access_log_redaction()

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(previous_level)

    return restore

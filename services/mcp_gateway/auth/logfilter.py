"""The gateway's side of the one redactor (``tagcompliance.observability.redaction``, shared with the
Lambdas): what it logs, stores in ``call_log`` and answers in a tool error.

* ``redact`` (parameters) and ``redact_text`` (messages) come from the core redactor.
* ``public_error`` also hides the server's absolute paths from a caller.
* ``configure_logging`` installs the core's formatter on the root logger (``LOG_FORMAT``: text, or
  one JSON object per line), so every record is redacted, cannot forge a line and is capped.
* ``RedactQueryStrings``: uvicorn's access log line holds the request's full path, query string
  included: on ``/oauth/callback`` that is the IdP's authorization code and the login state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TextIO

from tagcompliance.observability import LogFormat, redact, redact_text
from tagcompliance.observability import configure_logging as core_configure_logging
from tagcompliance.observability.metrics import GATEWAY_SERVICE

__all__ = ["configure_logging", "install_access_log_redaction", "public_error", "redact", "redact_text"]

ACCESS_LOGGER = "uvicorn.access"
# An absolute POSIX path of two or more parts, not part of a URL (after "host:port" or "//").
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/:,;()\[\]<>]+/)+([^\s'\"/:,;()\[\]<>]*)")


def public_error(message: str) -> str:
    """A tool error as the caller and ``call_log`` see it: redacted, and naming no directory of
    the server (``/srv/app/policies/x.json`` -> ``.../x.json``)."""
    return _SERVER_PATH.sub(lambda match: f".../{match.group(1)}", redact_text(message))


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


def configure_logging(
    level: str, stream: TextIO, log_format: LogFormat = "text", environment: str = ""
) -> Callable[[], None]:
    """The gateway's logging: the core's root handler on ``stream`` (run uvicorn with ``log_config=None``
    so its records reach it too) and the access-log query redaction. Returns the function that undoes it."""
    restore = core_configure_logging(level, stream, log_format, GATEWAY_SERVICE, environment)
    install_access_log_redaction()
    return restore

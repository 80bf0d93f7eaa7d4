"""Keeps OAuth secrets out of the HTTP access log.

uvicorn's access log line holds the request's full path, query string included: on
``/oauth/callback`` that is the IdP's authorization code and the login state, and clients may send
other secrets in a query. The filter drops every query string from access-log records.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


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

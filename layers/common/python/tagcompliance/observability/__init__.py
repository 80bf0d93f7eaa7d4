"""Logs and metrics the gateway and the Lambdas share: the one redactor, the log context (correlation
fields, plain ``contextvars``), the JSON and text log formats, and the names of the metrics."""

from .context import (
    CORRELATION_FIELDS,
    collect_notes,
    correlation_id,
    in_current_context,
    log_context,
    log_fields,
    note,
)
from .logs import BASE_FIELDS, JsonFormatter, LogFormat, SafeFormatter, configure_logging, formatter_for
from .redaction import REDACTED, capped, one_line, redact, redact_text

__all__ = [
    "BASE_FIELDS",
    "CORRELATION_FIELDS",
    "REDACTED",
    "JsonFormatter",
    "LogFormat",
    "SafeFormatter",
    "capped",
    "collect_notes",
    "configure_logging",
    "correlation_id",
    "formatter_for",
    "in_current_context",
    "log_context",
    "log_fields",
    "note",
    "one_line",
    "redact",
    "redact_text",
]

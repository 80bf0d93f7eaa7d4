"""The log formats: one JSON schema for every process, or text for a person at a terminal.

Every JSON line has ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``,
``service`` and ``environment``; then the correlation fields bound in the log context
(``observability.context``), then the record's own ``extra`` fields, then ``exception`` (the
traceback, as one string). Both formats go through the one redactor (``observability.redaction``):
messages and string fields redacted, secret-looking keys replaced, the message capped; the text
format also escapes CR/LF (JSON escapes them by itself).

``LOG_FORMAT=json`` is what the deployed gateway and Lambdas use (the CDK stacks set it): CloudWatch
Logs Insights then reads every field. ``LOG_FORMAT=text`` (the default) is for local runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from .context import CORRELATION_FIELDS, log_fields
from .redaction import capped, one_line, redact, redact_text

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The schema's leading fields, in order (README "Operations": the log schema).
BASE_FIELDS = ("timestamp", "level", "logger", "message", "service", "environment")
# What a LogRecord holds of its own: everything else on it came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {name: value for name, value in record.__dict__.items() if name not in _RECORD_ATTRIBUTES}


class SafeFormatter(logging.Formatter):
    """Text: every record redacted, on one line (a traceback's lines indented below it) and capped."""

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


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for the schema)."""

    def __init__(self, service: str, environment: str) -> None:
        super().__init__()
        self.service = service
        self.environment = environment

    def format(self, record: logging.LogRecord) -> str:
        return self.format_with(record, {})

    def format_with(self, record: logging.LogRecord, fields: Mapping[str, Any]) -> str:
        """The record's line with ``fields`` (a Lambda's invocation keys) after the context's."""
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": capped(redact_text(record.getMessage())),
            "service": self.service,
            "environment": self.environment,
        }
        bound = log_fields()
        ordered = [(name, bound[name]) for name in CORRELATION_FIELDS if name in bound]
        for name, value in (*ordered, *bound.items(), *fields.items(), *record_extras(record).items()):
            if name not in BASE_FIELDS and value is not None:
                line[name] = redact(value, name)
        if record.exc_info:
            line["exception"] = capped(redact_text(self.formatException(record.exc_info)))
        elif record.exc_text:
            line["exception"] = capped(redact_text(record.exc_text))
        if record.stack_info:
            line["stack"] = capped(redact_text(self.formatStack(record.stack_info)))
        # ensure_ascii: U+2028 and the like escaped too, so no viewer splits the line.
        return json.dumps(line, default=str, separators=(",", ":"))


def formatter_for(log_format: LogFormat, service: str, environment: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(service, environment)
    return SafeFormatter(TEXT_FORMAT)


def configure_logging(
    level: str, stream: TextIO, log_format: LogFormat = "text", service: str = "", environment: str = ""
) -> Callable[[], None]:
    """One root handler on ``stream`` in ``log_format``. Returns the function that undoes it."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(log_format, service, environment))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(previous_level)

    return restore

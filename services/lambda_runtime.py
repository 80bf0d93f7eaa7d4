"""What a Lambda module's handlers share: the one runtime (settings, clients, store, ...) across
invocations, built on first use so a warm container reuses its connections (tests install their own),
and the Powertools logger, metrics and tracer every handler is wrapped in.

Logs: the Powertools logger writes the core's JSON schema (``tagcompliance.observability.logs``, the
gateway's too) through ``CoreJsonFormatter``, with Powertools' Lambda keys (cold start, function,
request id, X-Ray trace). Each invocation binds its run's fields (run id, correlation id, batch,
schedule) in the core's log context, and inside Lambda the core's loggers get the same handler at
cold start (``route_core_loggers``), so every line of a run carries its ids, whichever logger wrote it.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import utils as logging_utils
from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter
from aws_lambda_powertools.utilities.typing import LambdaContext

from tagcompliance.audits.steps import correlation_of
from tagcompliance.aws import AwsClients, aws_request_id
from tagcompliance.observability import JsonFormatter, log_context
from tagcompliance.observability.metrics import NAMESPACE
from tagcompliance.settings import LogSettings, Settings
from tagcompliance.store import Store

RuntimeT = TypeVar("RuntimeT")
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass
class LambdaRuntime:
    """What every Lambda module's handlers use: the settings, the AWS clients and the store."""

    settings: Settings
    clients: AwsClients
    store: Store


class LazyRuntime(Generic[RuntimeT]):
    """The runtime one Lambda module's handlers share: built on first call, replaceable by tests."""

    def __init__(self, build: Callable[[], RuntimeT]) -> None:
        self._build = build
        self._value: RuntimeT | None = None
        self._lock = threading.Lock()

    def __call__(self) -> RuntimeT:
        """The installed runtime, built from the environment on first use."""
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def set(self, value: RuntimeT | None) -> None:
        """Install the runtime the handlers use (None: build it from the environment on next use)."""
        with self._lock:
            self._value = value


CORE_LOGGER = "tagcompliance"
# Powertools' own keys the core schema already has (or that only configure Powertools).
_POWERTOOLS_SKIPPED_KEYS = frozenset({"service", "sampling_rate", "name", "level", "location", "timestamp"})
XRAY_TRACE_ENV = "_X_AMZN_TRACE_ID"  # set by Lambda for each invocation


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stdout`` as it is when a record is emitted (the Lambda runtime's, a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


class CoreJsonFormatter(BasePowertoolsFormatter):
    """Powertools' formatter slot filled with the core's JSON schema: the keys Powertools appends
    (``inject_lambda_context``) become fields after the log context's."""

    def __init__(self, service: str, environment: str) -> None:
        super().__init__()
        self.core = JsonFormatter(service, environment)
        self.keys: dict[str, Any] = {}

    def append_keys(self, **additional_keys: Any) -> None:
        for name, value in additional_keys.items():
            if name in _POWERTOOLS_SKIPPED_KEYS or (isinstance(value, str) and value.startswith("%(")):
                continue
            if value is None:
                self.keys.pop(name, None)
            else:
                self.keys[name] = value

    def get_current_keys(self) -> dict[str, Any]:
        return dict(self.keys)

    def remove_keys(self, keys: Iterable[str]) -> None:
        for name in keys:
            self.keys.pop(name, None)

    def clear_state(self) -> None:
        self.keys.clear()

    def format(self, record: logging.LogRecord) -> str:
        trace = os.environ.get(XRAY_TRACE_ENV, "").split(";")[0].removeprefix("Root=")
        return self.core.format_with(record, {**self.keys, "xray_trace_id": trace or None})


def run_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The log context of an audit step's invocation: its run id and correlation id (the plan and the
    policy import read them from the execution input), the batch of a scan."""
    execution_input = event.get("input")
    if isinstance(execution_input, Mapping) and event.get("execution_name"):
        name = str(event["execution_name"])
        return {
            "run_id": execution_input.get("run_id") or name,
            "correlation_id": correlation_of(execution_input, name),
            "schedule_id": execution_input.get("schedule_id"),
        }
    batch = event.get("batch")
    return {
        "run_id": event.get("run_id"),
        "correlation_id": event.get("correlation_id") or event.get("run_id"),
        "batch_id": batch.get("batch_id") if isinstance(batch, Mapping) else None,
    }


class LambdaTelemetry:
    """One Lambda module's Powertools logger (the core's JSON schema), metrics (namespace
    ``TagCompliance``, the gateway's too) and tracer."""

    def __init__(self, service: str) -> None:
        log_settings = LogSettings()
        self.logger = Logger(
            service=service,
            logger_handler=StdoutHandler(),
            logger_formatter=CoreJsonFormatter(service, log_settings.environment_name),
        )
        self.metrics = Metrics(namespace=NAMESPACE, service=service)
        self.tracer = Tracer(service=service)
        self._routed = False
        if log_settings.lambda_function_name:
            self.route_core_loggers()

    def route_core_loggers(self) -> None:
        """The core's loggers write through this logger's handler (Powertools'
        ``copy_config_to_registered_loggers``), so their lines have the same schema and keys. Done at
        cold start inside Lambda only: it stops those loggers propagating to the root logger, which
        the Lambda runtime's own handler would print a second time."""
        if self._routed:
            return
        logging.getLogger(CORE_LOGGER)  # registered even before the first core module logs
        logging_utils.copy_config_to_registered_loggers(source_logger=self.logger, include={CORE_LOGGER})
        self._routed = True

    def handler(
        self, fields: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    ) -> Callable[[Handler], Handler]:
        """Wrap a handler: the invocation's ``fields(event)`` (run id, correlation id...) and Lambda
        context on every log line, a failure logged with AWS's request id, its metrics flushed on
        return, and an X-Ray subsegment."""

        def wrap(handler: Handler) -> Handler:
            traced = self.metrics.log_metrics(self.tracer.capture_lambda_handler(handler))
            logged = self.logger.inject_lambda_context(traced)

            @functools.wraps(handler)
            def invoke(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
                bound = fields(event) if fields is not None and isinstance(event, Mapping) else {}
                with log_context(**bound):
                    try:
                        return logged(event, context)
                    except Exception as error:
                        self.logger.exception(
                            "invocation failed: %s",
                            type(error).__name__,
                            extra={"aws_request_id": aws_request_id(error)},
                        )
                        raise

            return invoke

        return wrap

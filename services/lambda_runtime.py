"""What a Lambda module's handlers share: the one runtime (settings, clients, store, ...) across
invocations, built on first use so a warm container reuses its connections (tests install their own),
and the Powertools logger, metrics and tracer every handler is wrapped in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from tagcompliance.aws import AwsClients
from tagcompliance.settings import Settings
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


class LambdaTelemetry:
    """One Lambda module's Powertools logger, metrics (namespace TagCompliance) and tracer."""

    def __init__(self, service: str) -> None:
        self.logger = Logger(service=service)
        self.metrics = Metrics(namespace="TagCompliance", service=service)
        self.tracer = Tracer(service=service)

    def handler(self, correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
        """Wrap a handler: Lambda context (and the event's correlation id) in its logs, its metrics
        flushed on return, and an X-Ray subsegment."""

        def wrap(handler: Handler) -> Handler:
            traced = self.metrics.log_metrics(self.tracer.capture_lambda_handler(handler))
            return self.logger.inject_lambda_context(traced, correlation_id_path=correlation_id_path)

        return wrap

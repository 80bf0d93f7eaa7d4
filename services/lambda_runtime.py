"""The one runtime (settings, clients, store, ...) a Lambda module's handlers share across invocations.

Built on first use, so a warm container reuses its connections; tests install their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

RuntimeT = TypeVar("RuntimeT")


class LazyRuntime(Generic[RuntimeT]):
    def __init__(self, build: Callable[[], RuntimeT]) -> None:
        self._build = build
        self._value: RuntimeT | None = None
        self._lock = threading.Lock()

    def get(self) -> RuntimeT:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def set(self, value: RuntimeT | None) -> None:
        """Install the runtime the handlers use (None: build it from the environment on next use)."""
        with self._lock:
            self._value = value

"""How long AWS work may take, and when it must stop: call budgets and per-region circuit breakers.

A ``CallBudget`` is one tool call's deadline plus its cancellation (the client cancelled, the
process is shutting down). The gateway opens one per call (``budget_scope``); it travels to the scan's
worker threads in a context variable, and every AWS request checks it just before it is sent (the
``before-send`` hook in ``tagcompliance.aws``), so a stopped call sends nothing more: pending shards
are never started and retries are not attempted. A request already on the wire ends within the
read timeout chosen in ``tagcompliance.aws``.

A ``CircuitBreakers`` counts consecutive connection failures and timeouts per (endpoint, region).
After ``threshold`` of them the region's circuit is open: its requests fail at once with
``CircuitOpenError`` instead of each waiting out its own timeouts and retries, until ``cooldown``
seconds have passed; then requests are let through again and the first success closes it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

StopReason = Literal["deadline", "cancelled", "shutdown"]
# What a failed shard's ``reason`` says: an AWS error, or why its work was not done.
FailureReason = Literal["error", "deadline", "cancelled", "shutdown", "circuit_open"]

STOP_MESSAGES: dict[str, str] = {
    "deadline": "not finished within the call's deadline (TOOL_DEADLINE_SECONDS)",
    "cancelled": "not finished: the client cancelled the call",
    "shutdown": "not finished: the server is shutting down",
}


class CallStoppedError(Exception):
    """The call's budget is spent (deadline, cancellation or shutdown): no more AWS requests."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(STOP_MESSAGES[reason])
        self.reason: StopReason = reason


class CircuitOpenError(Exception):
    """The region's endpoint failed too often in a row: the request was not sent."""

    def __init__(self, region: str, failures: int) -> None:
        super().__init__(
            f"not attempted: {region} is unreachable ({failures} consecutive connection failures or "
            "timeouts; circuit open)"
        )
        self.region = region


def failure_reason(error: BaseException) -> FailureReason:
    """The ``reason`` a failed shard records for ``error``."""
    if isinstance(error, CallStoppedError):
        return error.reason
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    return "error"


@dataclass(eq=False)
class CallBudget:
    """One call's deadline (monotonic seconds, None: no deadline) and its cancellation."""

    deadline: float | None = None
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    _reason: StopReason | None = None

    @classmethod
    def lasting(cls, seconds: float | None) -> CallBudget:
        budget = cls(None if seconds is None else time.monotonic() + seconds)
        with _ACTIVE_LOCK:
            _ACTIVE.add(budget)
        return budget

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the call must stop now, or None while it may go on."""
        if self._reason is not None:
            return self._reason
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "deadline"
        return None

    def cancel(self, reason: StopReason = "cancelled") -> None:
        if self._reason is None:
            self._reason = reason
        self._stopped.set()

    def check(self) -> None:
        reason = self.stop_reason
        if reason is not None:
            raise CallStoppedError(reason)

    def wait(self, seconds: float) -> StopReason | None:
        """Sleep up to ``seconds`` (less when the deadline comes first or the call is cancelled);
        the stop reason when the call must stop."""
        remaining = self.remaining()
        if remaining is not None:
            seconds = min(seconds, max(remaining, 0.0))
        self._stopped.wait(seconds)
        return self.stop_reason


_CURRENT: ContextVar[CallBudget | None] = ContextVar("tagcompliance_call_budget", default=None)
_ACTIVE: weakref.WeakSet[CallBudget] = weakref.WeakSet()
_ACTIVE_LOCK = threading.Lock()


def current_budget() -> CallBudget | None:
    return _CURRENT.get()


@contextlib.contextmanager
def budget_scope(budget: CallBudget) -> Iterator[CallBudget]:
    """Make ``budget`` the current one (for this thread's context and what it copies to workers)."""
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def cancel_all(reason: StopReason = "shutdown") -> int:
    """Stop every open budget (process shutdown); how many were still running."""
    with _ACTIVE_LOCK:
        budgets = list(_ACTIVE)
    running = [budget for budget in budgets if budget.stop_reason is None]
    for budget in running:
        budget.cancel(reason)
    return len(running)


class CircuitBreakers:
    """Consecutive connection failures per key (endpoint and region); thread-safe."""

    def __init__(self, threshold: int, cooldown_seconds: float) -> None:
        self.threshold = threshold
        self.cooldown_seconds = cooldown_seconds
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}

    def before_request(self, key: str) -> None:
        """Raise ``CircuitOpenError`` while ``key``'s circuit is open (within its cool-down)."""
        with self._lock:
            failures = self._failures.get(key, 0)
            opened = self._opened_at.get(key)
        cooling = opened is not None and time.monotonic() - opened < self.cooldown_seconds
        if failures >= self.threshold and cooling:
            raise CircuitOpenError(key.rsplit("|", 1)[-1], failures)

    def record_failure(self, key: str) -> None:
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            if failures >= self.threshold:
                self._opened_at[key] = time.monotonic()  # (re)opened: a trial after cool-down failed

    def record_success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._opened_at.pop(key, None)

    def is_open(self, key: str) -> bool:
        try:
            self.before_request(key)
        except CircuitOpenError:
            return True
        return False

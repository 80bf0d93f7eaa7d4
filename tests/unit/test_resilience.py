"""Call budgets and circuit breakers (``tagcompliance.resilience``) on their own: the rules the scan
and the AWS clients rely on."""

from __future__ import annotations

import threading
import time

import pytest

from tagcompliance.resilience import (
    CallBudget,
    CallStoppedError,
    CircuitBreakers,
    CircuitOpenError,
    budget_scope,
    cancel_all,
    current_budget,
    failure_reason,
)


def test_budget_stops_at_its_deadline() -> None:
    budget = CallBudget.lasting(0.2)
    assert budget.stop_reason is None
    budget.check()
    assert budget.wait(5) == "deadline"  # woken by the deadline, not after 5 s
    with pytest.raises(CallStoppedError) as raised:
        budget.check()
    assert failure_reason(raised.value) == "deadline"


def test_cancellation_wakes_a_waiter_and_keeps_its_first_reason() -> None:
    budget = CallBudget.lasting(None)
    threading.Timer(0.1, budget.cancel, args=("cancelled",)).start()
    started = time.monotonic()
    assert budget.wait(5) == "cancelled"
    assert time.monotonic() - started < 2
    budget.cancel("shutdown")
    assert budget.stop_reason == "cancelled"


def test_budget_scope_and_cancel_all() -> None:
    running, finished = CallBudget.lasting(None), CallBudget.lasting(None)
    finished.cancel("cancelled")
    with budget_scope(running):
        assert current_budget() is running
    assert current_budget() is None
    assert cancel_all("shutdown") >= 1
    assert running.stop_reason == "shutdown" and finished.stop_reason == "cancelled"


def test_breaker_opens_after_consecutive_failures_and_cools_down() -> None:
    breakers = CircuitBreakers(threshold=3, cooldown_seconds=0.3)
    key = "http://127.0.0.1:1|eu-west-1"
    for _ in range(2):
        breakers.record_failure(key)
    breakers.before_request(key)  # 2 < 3: still closed
    breakers.record_success(key)  # a success resets the count
    for _ in range(2):
        breakers.record_failure(key)
    assert not breakers.is_open(key)
    breakers.record_failure(key)
    with pytest.raises(CircuitOpenError, match="eu-west-1 is unreachable") as raised:
        breakers.before_request(key)
    assert failure_reason(raised.value) == "circuit_open"
    assert not breakers.is_open("http://127.0.0.1:1|us-east-1")  # per region
    time.sleep(0.35)
    breakers.before_request(key)  # cooled down: a trial request may go
    breakers.record_failure(key)  # the trial failed: open again
    assert breakers.is_open(key)
    time.sleep(0.35)
    breakers.record_success(key)
    assert not breakers.is_open(key)

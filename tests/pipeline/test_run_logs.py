"""One audit run's story in its logs: the real ASL on moto, every Lambda task its real handler, and
every line they print (the handlers' and the core's own loggers') one JSON object of the log schema
carrying the run id and the correlation id of the tool call that started the run (issue 19)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from services.scanners import handlers
from tagcompliance.audits import AuditScope, StepFunctionsRunner
from tagcompliance.observability import BASE_FIELDS, log_context

from .conftest import scanner_runtime
from .machine import FUNCTION_PREFIX

pytestmark = pytest.mark.slow

CALLER_CORRELATION_ID = "0f3c9a1d2b4e4f6a8c0d1e2f3a4b5c6d"  # a tool call's call_id
EXPECTED_FUNCTIONS = {
    f"{FUNCTION_PREFIX}{name}" for name in ("plan", "scan-batch", "aggregate", "detect-drift", "notify")
}


@pytest.fixture
def core_loggers_routed() -> Iterator[None]:
    """The core's loggers through the Powertools handler, as at a Lambda cold start; undone after
    (in this process they would otherwise stop reaching pytest's capture for the later tests)."""
    core = logging.getLogger("tagcompliance")
    saved = (list(core.handlers), core.propagate, core.level)
    handlers.telemetry.route_core_loggers()
    try:
        yield
    finally:
        core.handlers[:], core.propagate = saved[0], saved[1]
        core.setLevel(saved[2])
        handlers.telemetry._routed = False


def _printed(output: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(log lines, EMF metric documents) of what the functions printed; anything else fails."""
    logs, metrics = [], []
    for line in output.splitlines():
        document = json.loads(line)  # not JSON: a line outside the schema
        (metrics if "_aws" in document and "level" not in document else logs).append(document)
    return logs, metrics


def test_every_line_of_a_run_carries_its_run_id_and_the_callers_correlation_id(
    settings, store, ledger, state_machine, pipeline_env, core_loggers_routed, capsys
):
    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    scope = AuditScope(
        account_id=pipeline_env.account_id,
        regions=pipeline_env.regions[:2],
        resource_types=["ec2:instance", "s3:bucket"],
    )
    capsys.readouterr()
    with log_context(correlation_id=CALLER_CORRELATION_ID):  # what the gateway binds for a tool call
        run_id = runner.start(scope, run_id="logs-correlated")
    status = runner.wait(run_id, timeout=120)
    assert status.status == "succeeded", status.error
    assert status.correlation_id == CALLER_CORRELATION_ID

    logs, metrics = _printed(capsys.readouterr().out)
    assert metrics and logs
    for line in logs:
        assert all(line.get(name) not in (None, "") for name in BASE_FIELDS), line
        assert line["run_id"] == run_id, line
        assert line["correlation_id"] == CALLER_CORRELATION_ID, line
    # Every task of the run logged, the core's own lines among them, each with its Lambda keys.
    assert {line["function_name"] for line in logs} >= EXPECTED_FUNCTIONS
    assert {line["logger"] for line in logs} >= {handlers.SERVICE, "tagcompliance.audits"}
    batches = [line for line in logs if line["message"] == "batch scanned"]
    assert len(batches) == 2 and all(line["batch_id"] for line in batches)
    assert all(line["function_request_id"] for line in logs)
    aggregated = next(line for line in logs if line["message"].startswith("audit run aggregated"))
    assert aggregated["snapshot_id"] == status.outcome.snapshot_id

"""The gateway's logs as CloudWatch reads them (issue 19): a real gateway process with
``LOG_FORMAT=json``, called through the official MCP client over HTTP. Every line it writes is one
JSON object of the log schema; each tool call is one event (outcome, duration, figures, EMF metrics)
whose correlation id is its call log row's ``call_id`` and, for a call that starts an audit, the
run's correlation id, which ``get_audit_status`` answers and the run's own log lines carry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from bench.gateway import start_gateway_process
from services.demo.aws import DemoAws
from tagcompliance.observability import BASE_FIELDS
from tagcompliance.observability.metrics import (
    GATEWAY_SERVICE,
    NAMESPACE,
    TOOL_CALLS,
    TOOL_ERRORS,
    TOOL_LATENCY,
)
from tagcompliance.settings import Settings
from tagcompliance.store import open_store
from tests.auth.conftest import free_port

from .helpers import call, call_error
from .test_transports import gateway_environment

pytestmark = pytest.mark.anyio

ENVIRONMENT = "observability-test"
TYPES = ["sqs:queue", "sns:topic"]
REGIONS = ["us-east-1", "us-west-2"]
CALL_FIELDS = ("correlation_id", "jsonrpc_request_id", "tool", "user", "outcome", "duration_ms")


async def _one_call_of_each_outcome(url: str) -> dict[str, Any]:
    async with Client(url) as client:
        await call(client, "get_tagging_policy")
        clarification = await call(client, "find_untagged_resources")
        assert clarification["safety"] == "clarification_needed"
        refused = await call_error(
            client, "check_tag_compliance", resource_types=TYPES, regions=REGIONS, confirmation_token="guess"
        )
        assert "not a token" in refused
        await call_error(client, "no_such_tool")
        job = (await call(client, "check_tag_compliance", resource_types=TYPES, regions=REGIONS))["job"]
        assert job is not None
        for _ in range(300):
            status = await call(client, "get_audit_status", run_id=job["run_id"])
            if status["status"] != "running":
                return status
            await asyncio.sleep(0.2)
    raise AssertionError("the audit job did not finish")


async def test_every_line_is_json_and_each_tool_call_is_one_event(demo_aws: DemoAws, tmp_path: Path) -> None:
    environment = gateway_environment(demo_aws, tmp_path / "data") | {
        "LOG_FORMAT": "json",
        "ENVIRONMENT_NAME": ENVIRONMENT,
        # Any check is "too long" with this threshold: it starts an audit run and answers a job handle.
        "AUDIT_ASYNC_THRESHOLD_SECONDS": "0.000001",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as stderr:
        process = start_gateway_process(environment, free_port(), log_level="INFO", stderr=stderr)
        try:
            url = f"http://127.0.0.1:{process.args[process.args.index('--port') + 1]}/mcp"
            status = await _one_call_of_each_outcome(url)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert status["status"] == "succeeded", status

    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line, or it fails here
    assert len(lines) > 10
    for line in lines:
        assert list(line)[: len(BASE_FIELDS)] == list(BASE_FIELDS), line
        assert line["service"] == GATEWAY_SERVICE and line["environment"] == ENVIRONMENT, line
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

    events = [line for line in lines if line.get("event") == "tool_call"]
    polls = sum(1 for event in events if event["tool"] == "get_audit_status")
    assert [(event["tool"], event["outcome"]) for event in events] == [
        ("get_tagging_policy", "answered"),
        ("find_untagged_resources", "clarification"),
        ("check_tag_compliance", "refused"),
        ("no_such_tool", "error"),
        ("check_tag_compliance", "answered"),
        *[("get_audit_status", "answered")] * polls,
    ]
    for event in events:
        assert all(event.get(name) is not None for name in CALL_FIELDS), event
        assert event["user"] == "anonymous" and isinstance(event["duration_ms"], int)
        # The line is also the call's CloudWatch metrics (embedded metric format).
        directives = event["_aws"]["CloudWatchMetrics"]
        assert {directive["Namespace"] for directive in directives} == {NAMESPACE}
        assert ["service", "tool"] in directives[0]["Dimensions"]
        assert event[TOOL_CALLS] == 1 and event[TOOL_LATENCY] == event["duration_ms"]
        assert event[TOOL_ERRORS] == (1 if event["outcome"] == "error" else 0)
    assert events[2]["refused"] == "confirmation_token" and events[2]["error_type"] == "ConfirmationError"
    assert events[2]["level"] == "WARNING" and "not a token" in events[2]["error"]
    started = events[4]
    assert started["run_id"] == status["run_id"] and started["snapshot_id"]

    # One id ties the call log row, the call's event, the run it started and the run's own lines.
    assert status["correlation_id"] == started["correlation_id"]
    run_lines = [line for line in lines if line["logger"] == "tagcompliance.audits"]
    assert run_lines and all(
        line["run_id"] == status["run_id"] and line["correlation_id"] == started["correlation_id"]
        for line in run_lines
    )
    assert any(line["message"].startswith("audit run aggregated") for line in run_lines)
    store = open_store(Settings(DATA_DIR=str(tmp_path / "data"), DATABASE_URL=None))
    try:
        call_ids = {row.call_id for row in store.list_calls(limit=500)}
    finally:
        store.close()
    assert call_ids == {event["correlation_id"] for event in events}

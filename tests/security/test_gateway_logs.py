"""Issue 13, attack 4: with ``AWS_SESSION_TOKEN`` set, DEBUG logs carried ``X-Amz-Security-Token``;
validation errors echoed Slack webhook secrets into the reply and ``call_log.error_message``; a
webhook put in ``timezone`` reached the audit table and the INFO log; a newline in a logged value
forged a log line. The gateway runs here as a real process at DEBUG and is attacked over HTTP."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.auth.logfilter import configure_logging
from tagcompliance.observability import LogFormat
from tagcompliance.settings import Settings
from tagcompliance.store import open_store
from tests.auth.conftest import free_port
from tests.e2e.helpers import DEMO_REGIONS, REPO_ROOT
from tests.e2e.test_transports import gateway_environment

from .conftest import SLACK_SECRET, SLACK_WEBHOOK

pytestmark = pytest.mark.anyio

SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENnever+logged/" + "Zk9" * 40
FORGED = "2026-12-03 00:00:00,000 INFO gw root authorized evil"


@dataclass
class GatewayProcess:
    url: str
    log: Path
    data_dir: Path


@pytest.fixture(scope="module")
def debug_gateway(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp_path = tmp_path_factory.mktemp("debug-gateway")
    port = free_port()
    environment = gateway_environment(demo_aws, tmp_path / "data")
    environment["AWS_SESSION_TOKEN"] = SESSION_TOKEN
    log = tmp_path / "gateway.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tag_compliance_mcp", "--transport", "http", "--port", str(port)),
                *("--allow-unauthenticated-loopback", "--log-level", "DEBUG"),
            ],
            env=environment,
            cwd=str(REPO_ROOT),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield GatewayProcess(f"http://127.0.0.1:{port}/mcp", log, tmp_path / "data")
    finally:
        process.terminate()
        process.wait(timeout=20)


SECRET_CARRYING_CALLS = [
    {"action": "create", "schedule": "daily", "time": "09:00", "timezone": SLACK_WEBHOOK},
    {"action": "create", "schedule": "daily", "time": "09:00", "timezone": SLACK_WEBHOOK[:60]},
    {"action": "create", "schedule": "cron", "cron_expression": SLACK_WEBHOOK, "timezone": "UTC"},
    {"action": "get", "schedule_id": SLACK_WEBHOOK},
    {"action": "get", "schedule_id": SLACK_WEBHOOK[-60:]},
    {"action": "create", "schedule": "daily", "time": "09:00", "timezone": "UTC", "regions": [SLACK_WEBHOOK]},
    {
        "action": "create",
        "schedule": "daily",
        "time": "09:00",
        "timezone": "UTC",
        "recipients": [SLACK_WEBHOOK + "x/"],
    },
]


async def test_secrets_stay_out_of_replies_audit_rows_and_logs(debug_gateway: GatewayProcess) -> None:
    replies: list[str] = []
    async with Client(debug_gateway.url) as client:
        untagged = await client.call_tool(  # AWS calls signed with the session token, logged at DEBUG
            "find_untagged_resources", {"resource_types": ["dynamodb:table"], "regions": DEMO_REGIONS}
        )
        assert not untagged.is_error, untagged.content
        for arguments in SECRET_CARRYING_CALLS:
            result = await client.call_tool(
                "schedule_compliance_audit", {"resource_types": ["all"], "regions": DEMO_REGIONS} | arguments
            )
            assert result.is_error, (arguments, result.structured_content)
            replies.append(" ".join(getattr(block, "text", "") for block in result.content))
    log = debug_gateway.log.read_text()
    assert "botocore" in log and "DEBUG" in log  # the DEBUG output under test is there
    # Neither the secret nor a tail of it long enough to use (pydantic shows the last 24 characters).
    tail = SLACK_SECRET[-8:]
    for reply in replies:
        assert tail not in reply, reply
        assert "hooks.slack.com/services/T0AAAAAAA" not in reply, reply
    assert tail not in log
    assert SESSION_TOKEN[:24] not in log and SESSION_TOKEN[-24:] not in log
    assert not re.search(r"Signature=[0-9a-f]{64}", log)
    store = open_store(Settings(DATA_DIR=str(debug_gateway.data_dir), DATABASE_URL=None))
    try:
        rows = [row for row in store.list_calls(limit=50) if row.tool_name == "schedule_compliance_audit"]
    finally:
        store.close()
    assert len(rows) == len(SECRET_CARRYING_CALLS)
    for row in rows:
        assert tail not in str(row.parameters) and tail not in (row.error_message or ""), row


async def test_a_newline_in_a_logged_value_cannot_forge_a_log_line(debug_gateway: GatewayProcess) -> None:
    injected = f"x\r\n{FORGED}"
    async with Client(debug_gateway.url) as client:
        for arguments in (
            {"action": "get", "schedule_id": injected},
            {"action": "create", "schedule": "cron", "cron_expression": injected, "timezone": "UTC"},
            {"action": "create", "schedule": "daily", "time": "09:00", "timezone": injected},
        ):
            result = await client.call_tool(
                "schedule_compliance_audit", {"resource_types": ["all"], "regions": DEMO_REGIONS} | arguments
            )
            assert result.is_error
    base = debug_gateway.url.removesuffix("/mcp")
    httpx.get(f"{base}/health%0D%0A{FORGED.replace(' ', '%20')}", timeout=5)
    log = debug_gateway.log.read_text()
    assert "authorized evil" in log  # logged, but inside the line of the record that holds it
    for line in log.splitlines():
        assert not line.startswith(FORGED[:19]), line


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_wire_logs_redact_cookies_and_authorization(log_format: LogFormat) -> None:
    """Records shaped like botocore's and urllib3's DEBUG output, through the gateway's log setup, in
    both formats (JSON: the fields a record carries are redacted too, and every line parses)."""
    stream = io.StringIO()
    restore = configure_logging("DEBUG", stream, log_format)
    try:
        logging.getLogger("botocore.endpoint").debug(
            "Sending http request: %s",
            "<AWSPreparedRequest headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/x, "
            "SignedHeaders=host, Signature=abc123', 'X-Amz-Security-Token': b'tokEN-value', "
            "'Cookie': 'session=cookie-value'}>",
        )
        logging.getLogger("botocore.auth").debug(
            "CanonicalRequest:\nGET\n/\n\nhost:example\nx-amz-security-token:tokEN-value\n\nhost"
        )
        logging.getLogger("botocore.parsers").debug(
            "Response headers: {'Set-Cookie': 'AWSALB=cookie-value; Path=/', 'x-amzn-RequestId': 'r1'}"
        )
        logging.getLogger("urllib3.connectionpool").debug("Cookie: session=cookie-value; other=cookie-value")
        logging.getLogger("httpx").debug("Authorization: Bearer tokEN-value")
        logging.getLogger("tagcompliance.gateway").info("value %s", "a" * 50_000)
        logging.getLogger("tagcompliance.gateway").info(
            "fields\r\nforged", extra={"webhook_url": SLACK_WEBHOOK, "detail": "Cookie: session=cookie-value"}
        )
        try:
            raise ValueError("b" * 50_000)
        except ValueError:
            logging.getLogger("tagcompliance.gateway").exception("failed")
    finally:
        restore()
    output = stream.getvalue()
    for secret in ("tokEN-value", "cookie-value", "Signature=abc123"):
        assert secret not in output, output
    assert "x-amzn-RequestId" in output and "r1" in output  # the rest of the record is kept
    assert SLACK_SECRET[-8:] not in output and "\nforged" not in output
    assert max(len(line) for line in output.splitlines()) < 10_000
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines()]  # one object per line, tracebacks too
        assert lines[-1]["exception"].startswith("Traceback")
        assert any(line.get("webhook_url") == "[redacted]" for line in lines)

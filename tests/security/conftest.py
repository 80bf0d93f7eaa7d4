"""Fixtures for the security regression suite: the gateway attacked over real HTTP (uvicorn threads
from ``tests/auth/conftest.py``, or ``python -m tag_compliance_mcp`` as a process), with real
PostgreSQL where the attack is about it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.demo.aws import DemoAws
from tests.auth.conftest import AuthStack, anyio_backend, running_stack, stack  # noqa: F401 - fixtures

PROTOCOL_VERSION = "2025-06-18"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "security-suite", "version": "1"},
    },
}
ACCEPT = "application/json, text/event-stream"
SLACK_SECRET = "q7Zs3cretWebh00kT4il"  # the secret part of a Slack incoming-webhook URL
SLACK_WEBHOOK = f"https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/{SLACK_SECRET}"


def user_token(gateway: AuthStack, subject: str, scope: str = "tag:read") -> str:
    """A live access token for ``subject``, signed by the gateway, as its OAuth flow would issue."""
    now = int(time.time())
    return gateway.sign(
        {
            "iss": gateway.issuer,
            "sub": subject,
            "aud": gateway.mcp_url,
            "client_id": f"client-of-{subject}",
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
    )


@pytest.fixture(scope="module")
def capped_stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """The OAuth gateway with a small per-user limit on calls in flight, so an attack reaches it at once."""
    limits: dict[str, Any] = {"MCP_MAX_CALLS_IN_FLIGHT_PER_USER": "3"}
    environment = pytest.MonkeyPatch()
    for name, value in limits.items():
        environment.setenv(name, value)
    try:
        with running_stack(demo_aws, tmp_path_factory.mktemp("capped-gateway")) as running:
            yield running
    finally:
        environment.undo()

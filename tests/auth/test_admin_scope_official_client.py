"""The ``admin`` scope through the official MCP client (``mcp.client.auth.OAuthClientProvider``), over
real streamable HTTP on 127.0.0.1.

The client chooses its scope from discovery (MCP authorization spec, scope selection: the 401
challenge's ``scope``, else the protected-resource metadata's ``scopes_supported``) and ignores the
scope in its own metadata. The gateway advertises every scope it supports (``tag:read admin tag:write``) while
the HTTP layer requires only ``tag:read``; its authorization server then grants ``admin`` to users in
``AUTH_ADMIN_GROUPS`` / ``AUTH_ADMIN_USERS`` only, everyone else the subset ``tag:read``, and says
which in the token response's ``scope`` (RFC 6749 §3.3, §5.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
import pytest
from joserfc import jwt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull

from services.demo.testidp import TestUser
from tag_compliance_mcp.auth.authserver import token_hash
from tag_compliance_mcp.auth.config import build_auth
from tag_compliance_mcp.callevents import logger as CALL_EVENTS
from tag_compliance_mcp.settings import GatewaySettings
from tests.e2e.helpers import call, call_confirmed, call_error

from .conftest import (
    ADMIN,
    ALICE,
    REDIRECT_URI,
    AuthStack,
    OAuthClient,
    ServerThread,
    free_port,
    oauth_client,
)

pytestmark = pytest.mark.anyio

PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
SCHEDULE = {
    "action": "create",
    "schedule": "daily",
    "time": "06:15",
    "recipients": ["scope-step@example.com"],
}


class TokenResponses:
    """Records the JSON bodies of the gateway's /token answers, as the client received them."""

    def __init__(self, issuer: str) -> None:
        self.url = f"{issuer}/token"
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, response: httpx.Response) -> None:
        if str(response.request.url) == self.url and response.status_code == 200:
            await response.aread()
            self.bodies.append(response.json())


def connect_recording(stack: AuthStack, client: OAuthClient, tokens: TokenResponses) -> Client:
    http = httpx.AsyncClient(auth=client.provider, event_hooks={"response": [tokens]})
    return Client(streamable_http_client(stack.mcp_url, http_client=http))


@contextmanager
def logged_in_as(stack: AuthStack, user: TestUser) -> Iterator[None]:
    previous, stack.idp.user = stack.idp.user, user
    try:
        yield
    finally:
        stack.idp.user = previous  # the module's default user (alice) for the other tests


def requested_scope(client: OAuthClient) -> list[str]:
    assert len(client.browser.authorize_urls) == 1, client.browser.authorize_urls  # one login, no step-up
    return parse_qs(urlparse(client.browser.authorize_urls[0]).query)["scope"][0].split()


def granted(stack: AuthStack, client: OAuthClient, responses: TokenResponses) -> list[str]:
    """The granted scope, checked to be the same in the token response, the client's stored token,
    the access token's ``scope`` claim and the grant's ``oauth_sessions`` row."""
    assert len(responses.bodies) == 1, responses.bodies
    body = responses.bodies[0]
    stored = client.storage.tokens
    assert stored is not None and stored.access_token == body["access_token"]
    assert stored.scope == body["scope"]
    claims = jwt.decode(body["access_token"], stack.key, algorithms=["RS256"]).claims
    assert claims["scope"] == body["scope"]
    session = stack.runtime.store.find_oauth_session(access_token_hash=token_hash(body["access_token"]))
    assert session is not None and session.scopes == body["scope"].split()
    return str(body["scope"]).split()


def live_schedules(stack: AuthStack, recipient: str) -> list[Any]:
    return [
        record
        for record in stack.runtime.store.list_scheduled_audits()
        if recipient in record.recipients and record.status != "deleted"
    ]


async def test_the_resource_advertises_every_scope_and_requires_tag_read(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        prm = (await http.get(stack.issuer + PRM_PATH)).json()
        asm = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
        unauthenticated = await http.post(stack.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert prm["scopes_supported"] == ["tag:read", "admin", "tag:write"]
    assert asm["scopes_supported"] == ["tag:read", "admin", "tag:write"]
    assert unauthenticated.status_code == 401
    # the challenge names no narrower scope: a client falls back to scopes_supported (MCP scope selection)
    assert "scope=" not in unauthenticated.headers["www-authenticate"]
    assert stack.auth.settings.required_scopes == ["tag:read"]  # what the HTTP layer requires


@pytest.mark.parametrize("configured_scope", ["tag:read admin", "tag:read"])
async def test_an_admin_gets_admin_and_schedules_an_audit(stack: AuthStack, configured_scope: str) -> None:
    client = oauth_client(stack, configured_scope)  # the client's own scope is not what it asks for
    responses = TokenResponses(stack.issuer)
    recipient = f"admin-{len(configured_scope)}@example.com"
    with logged_in_as(stack, ADMIN):
        async with connect_recording(stack, client, responses) as mcp:
            created = await call_confirmed(
                mcp, "schedule_compliance_audit", **{**SCHEDULE, "recipients": [recipient]}
            )
            schedule_id = created["schedule"]["schedule_id"]
            assert [record.schedule_id for record in live_schedules(stack, recipient)] == [schedule_id]
            beliefs = await call(mcp, "get_intent_beliefs", tool_name="schedule_compliance_audit")
            assert beliefs["beliefs"], beliefs
            deleted = await call_confirmed(
                mcp, "schedule_compliance_audit", action="delete", schedule_id=schedule_id
            )
            assert deleted["schedule"]["status"] == "deleted", deleted
    assert requested_scope(client) == ["tag:read", "admin", "tag:write"]
    assert granted(stack, client, responses) == ["tag:read", "admin"]
    assert live_schedules(stack, recipient) == []
    entries = stack.runtime.store.list_calls(limit=4)
    assert {entry.user_id for entry in entries} == {ADMIN.email}


async def test_a_non_admin_gets_tag_read_and_is_refused_admin_calls(
    stack: AuthStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CALL_EVENTS.name)
    client = oauth_client(stack, "tag:read admin")  # the same client configuration as the admin's
    responses = TokenResponses(stack.issuer)
    recipient = "not-an-admin@example.com"
    with logged_in_as(stack, ALICE):
        async with connect_recording(stack, client, responses) as mcp:
            refused = await call_error(
                mcp, "schedule_compliance_audit", **{**SCHEDULE, "recipients": [recipient]}
            )
            assert "insufficient_scope" in refused and "'admin' scope" in refused, refused
            assert "granted: tag:read" in refused, refused
            refused = await call_error(mcp, "get_intent_beliefs")
            assert "'admin' scope" in refused, refused
            listed = await call(mcp, "schedule_compliance_audit", action="list")
            assert "schedules" in listed, listed
    assert requested_scope(client) == ["tag:read", "admin", "tag:write"]  # asked for both, granted the subset
    assert granted(stack, client, responses) == ["tag:read"]
    assert live_schedules(stack, recipient) == []
    entries = stack.runtime.store.list_calls(limit=3)
    assert [entry.status for entry in entries] == ["success", "error", "error"]
    assert {entry.user_id for entry in entries} == {ALICE.email}
    # Each call's log event says refused (not error) for the missing scope (issue 19).
    events = [record for record in caplog.records if record.name == CALL_EVENTS.name]
    assert [(event.tool, event.outcome) for event in events] == [  # type: ignore[attr-defined]
        ("schedule_compliance_audit", "refused"),
        ("get_intent_beliefs", "refused"),
        ("schedule_compliance_audit", "answered"),
    ]
    assert [getattr(event, "refused", None) for event in events] == ["insufficient_scope"] * 2 + [None]


async def test_a_client_registered_for_tag_read_only_can_still_log_an_admin_in(stack: AuthStack) -> None:
    """A client that registered before ``admin`` was advertised (its registration says ``tag:read``)
    keeps its client id: its next login asks for ``tag:read admin`` and is not refused."""
    async with httpx.AsyncClient() as http:
        registration = await http.post(
            f"{stack.issuer}/register",
            json={
                "client_name": "registered-earlier",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "tag:read",
            },
        )
    assert registration.status_code == 201, registration.text
    assert registration.json()["scope"] == "tag:read"
    client = oauth_client(stack, "tag:read")
    client.storage.client_info = OAuthClientInformationFull.model_validate(registration.json())
    responses = TokenResponses(stack.issuer)
    with logged_in_as(stack, ADMIN):
        async with connect_recording(stack, client, responses) as mcp:
            await call(mcp, "get_intent_beliefs", limit=1)
    assert client.storage.client_info.client_id == registration.json()["client_id"]  # not re-registered
    assert requested_scope(client) == ["tag:read", "admin", "tag:write"]
    assert granted(stack, client, responses) == ["tag:read", "admin"]


async def test_resource_server_only_mode_advertises_the_same_scopes() -> None:
    """With an external issuer (``AUTH_ISSUER_URL``) the metadata is the same: that issuer decides
    who gets ``admin``; the HTTP layer still requires only ``tag:read``."""
    port = free_port()
    issuer = "https://idp.example.com/oauth2/default"
    auth = build_auth(GatewaySettings(AUTH_ISSUER_URL=issuer), "127.0.0.1", port)
    assert auth is not None and auth.authorization_server is None
    server = MCPServer("scopes", token_verifier=auth.verifier, auth=auth.settings)
    app = auth.install(server.streamable_http_app(host="127.0.0.1"))
    base = f"http://127.0.0.1:{port}"
    with ServerThread(app, port):
        async with httpx.AsyncClient() as http:
            prm = (await http.get(base + PRM_PATH)).json()
            unauthenticated = await http.post(
                f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
    assert prm["resource"] == f"{base}/mcp"
    assert [server.rstrip("/") for server in prm["authorization_servers"]] == [issuer]
    assert prm["scopes_supported"] == ["tag:read", "admin", "tag:write"]
    assert unauthenticated.status_code == 401
    assert f'resource_metadata="{base}{PRM_PATH}"' in unauthenticated.headers["www-authenticate"]
    assert auth.settings.required_scopes == ["tag:read"]


WRITER = TestUser("00u-writer", "writer@example.com", ["finops-writers"])
SOME_INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"


async def test_tag_write_goes_to_writers_only_and_guards_the_remediation_tools(stack: AuthStack) -> None:
    """A reader asking (as clients do) for every advertised scope gets tag:read and is refused the
    writing tools by scope; a member of AUTH_WRITE_GROUPS gets tag:write and reaches the tool (which
    then refuses because this gateway runs without REMEDIATION_ENABLED)."""
    change = {"changes": [{"resource_arn": SOME_INSTANCE, "set_tags": {"Owner": "a@example.com"}}]}
    reader = oauth_client(stack, "tag:read")
    reader_responses = TokenResponses(stack.issuer)
    with logged_in_as(stack, ALICE):
        async with connect_recording(stack, reader, reader_responses) as mcp:
            refused = await call_error(mcp, "apply_tag_remediation", **change, dry_run=True)
            assert "insufficient_scope" in refused and "'tag:write' scope" in refused, refused
            refused = await call_error(mcp, "undo_tag_remediation", remediation_id="rem_" + "0" * 32)
            assert "'tag:write' scope" in refused, refused
    assert granted(stack, reader, reader_responses) == ["tag:read"]

    writer = oauth_client(stack, "tag:read")
    writer_responses = TokenResponses(stack.issuer)
    with logged_in_as(stack, WRITER):
        async with connect_recording(stack, writer, writer_responses) as mcp:
            answer = await call_error(mcp, "apply_tag_remediation", **change, dry_run=True)
            assert "insufficient_scope" not in answer and "REMEDIATION_ENABLED=true" in answer, answer
    assert granted(stack, writer, writer_responses) == ["tag:read", "tag:write"]

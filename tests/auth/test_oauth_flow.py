"""The whole OAuth flow over real HTTP with the official mcp client and its OAuthClientProvider:
discovery, registration, authorize with PKCE (user login delegated to the test OIDC IdP), token,
tool calls, refresh (rotating), revoke - with every token, code and secret stored hashed in the
store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from tag_compliance_mcp.auth.authserver import token_hash

from .conftest import ADMIN, ALICE, AuthStack, ManualClient, audit_entries, connect, oauth_client

pytestmark = pytest.mark.anyio

OAUTH_TABLES = ("oauth_sessions", "oauth_clients", "oauth_authorization_codes")
SCOPE_ARGS = {"resource_types": ["ec2:instance", "s3:bucket"], "regions": ["us-east-1"]}


def table_text(stack: AuthStack, table: str) -> tuple[list[str], str]:
    """The table's column names and every row, as one text to search for raw secrets."""
    sql = f"SELECT * FROM {table}"
    if stack.database_url:
        with psycopg.connect(stack.database_url) as conn:
            cursor = conn.execute(sql)
            rows = cursor.fetchall()
            columns = [column.name for column in cursor.description or []]
    else:
        with sqlite3.connect(stack.runtime.store.info().location) as conn:
            cursor = conn.execute(sql)
            rows = cursor.fetchall()
            columns = [column[0] for column in cursor.description]
    return columns, "\n".join(json.dumps([str(value) for value in row]) for row in rows)


def session_rows(stack: AuthStack, access_token: str) -> list[dict[str, Any]]:
    record = stack.runtime.store.find_oauth_session(access_token_hash=token_hash(access_token))
    return (
        []
        if record is None
        else [{"user": record.user_id, "scopes": record.scopes, "grant": record.grant_id}]
    )


async def test_discovery_documents(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        prm = (
            await http.get(stack.mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
        ).json()
        assert prm["resource"] == stack.mcp_url
        assert [server.rstrip("/") for server in prm["authorization_servers"]] == [stack.issuer]
        assert "tag:read" in prm["scopes_supported"]
        asm = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
        assert asm["code_challenge_methods_supported"] == ["S256"]
        assert asm["authorization_endpoint"].startswith(stack.issuer)
        assert asm["registration_endpoint"] and asm["revocation_endpoint"]
        keys = (await http.get(f"{stack.issuer}/oauth/jwks")).json()["keys"]
        assert [key["kid"] for key in keys] == [stack.key.kid]
        assert all("d" not in key and "p" not in key for key in keys)  # public halves only
        health = (await http.get(stack.mcp_url.replace("/mcp", "/health"))).json()
        assert health["auth"].startswith(f"oauth (issuer {stack.issuer}: this gateway, login delegated to ")
        assert stack.idp.issuer in health["auth"]


async def test_full_flow_read_scope_tokens_stored_hashed(any_stack: AuthStack) -> None:
    stack = any_stack
    logins_before = len(stack.idp.logins)
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        result = await mcp.call_tool("get_tagging_policy", {})
        assert not result.is_error, result.content
        checked = await mcp.call_tool("check_tag_compliance", SCOPE_ARGS)
        assert not checked.is_error, checked.content
        assert checked.structured_content is not None and "compliance_score" in checked.structured_content
        # tag:read cannot change shared state: scheduling and saving imports need admin
        refused = await mcp.call_tool(
            "schedule_compliance_audit", {"action": "create", "schedule": "daily", "time": "09:00"}
        )
        assert refused.is_error and "'admin' scope" in refused.content[0].text
        refused = await mcp.call_tool(
            "import_aws_tag_policy", {"policy_id": "p-12345678", "save_to_file": True}
        )
        assert refused.is_error and "'admin' scope" in refused.content[0].text
        listed = await mcp.call_tool("schedule_compliance_audit", {"action": "list"})
        assert not listed.is_error, listed.content

    # PKCE S256 towards the gateway, and the login went through the IdP and back to the gateway
    authorize_url = client.browser.authorize_urls[0]
    assert authorize_url.startswith(f"{stack.issuer}/authorize?")
    assert "code_challenge_method=S256" in authorize_url and "code_challenge=" in authorize_url
    hops = client.browser.hops
    assert any(hop.startswith(f"{stack.idp.issuer}/authorize?") and "nonce=" in hop for hop in hops), hops
    assert any(hop.startswith(f"{stack.issuer}/oauth/callback?") for hop in hops), hops
    assert stack.idp.logins[logins_before:] == [ALICE.subject]
    tokens, info = client.storage.tokens, client.storage.client_info
    assert tokens is not None and tokens.expires_in == 3600 and tokens.refresh_token
    assert info is not None and info.client_secret and info.client_id

    # persisted, hashed: the digest is there, the token, code and secret are nowhere in the tables
    assert session_rows(stack, tokens.access_token)[0]["user"] == ALICE.email
    stored = stack.runtime.store.find_oauth_session(refresh_token_hash=token_hash(tokens.refresh_token))
    assert stored is not None and stored.scopes == ["tag:read"] and stored.client_id == info.client_id
    client_record = stack.runtime.store.get_oauth_client(info.client_id)
    assert client_record is not None and client_record.client_secret_hash == token_hash(info.client_secret)
    secrets = [tokens.access_token, tokens.refresh_token, info.client_secret, *client.browser.codes]
    for table in OAUTH_TABLES:
        columns, text = table_text(stack, table)
        assert text, table
        for secret in secrets:
            assert secret not in text, (table, columns)
    _, sessions = table_text(stack, "oauth_sessions")
    assert token_hash(tokens.access_token) in sessions and token_hash(tokens.refresh_token) in sessions

    entries = audit_entries(stack.runtime, limit=5)
    assert [entry.tool_name for entry in entries] == [
        "schedule_compliance_audit",
        "import_aws_tag_policy",
        "schedule_compliance_audit",
        "check_tag_compliance",
        "get_tagging_policy",
    ]
    assert {entry.user_id for entry in entries} == {ALICE.email}  # the user the IdP logged in
    assert {entry.client_id for entry in entries} == {info.client_id}
    assert [entry.status for entry in entries] == ["success", "error", "error", "success", "success"]
    assert entries[3].parameters["regions"] == ["us-east-1"]
    assert entries[3].ip_address == "127.0.0.1" and entries[3].duration_ms >= 0
    assert entries[3].user_agent and entries[3].result_summary


async def test_admin_scope_only_for_admins(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        registered = await ManualClient.register(stack, http)
        # alice asks for admin but is not in AUTH_ADMIN_GROUPS: she gets tag:read only
        tokens = await registered.tokens(http, scope="tag:read admin")
        assert tokens["scope"] == "tag:read"
        stack.idp.user = ADMIN
        try:
            admin_tokens = await registered.tokens(http, scope="tag:read admin")
            # asking for admin alone, as alice, is refused outright
            stack.idp.user = ALICE
            _, challenge = __import__("tests.auth.conftest", fromlist=["pkce_pair"]).pkce_pair()
            denied = await registered.login(http, challenge, scope="admin")
        finally:
            stack.idp.user = ALICE
    assert admin_tokens["scope"] == "tag:read admin"
    location = denied.headers["location"]
    assert "error=access_denied" in location and "code=" not in location

    async with connect(stack.mcp_url, token=tokens["access_token"]) as mcp:
        refused = await mcp.call_tool(
            "schedule_compliance_audit", {"action": "create", "schedule": "daily", "time": "09:00"}
        )
        assert refused.is_error and "'admin' scope" in refused.content[0].text
    async with connect(stack.mcp_url, token=admin_tokens["access_token"]) as mcp:
        arguments = {
            "action": "create",
            "schedule": "daily",
            "time": "09:00",
            "recipients": ["finops@example.com"],
        }
        created = await confirmed_call(mcp, "schedule_compliance_audit", arguments)
        schedule_id = created["schedule"]["schedule_id"]
        deleted = await confirmed_call(
            mcp, "schedule_compliance_audit", {"action": "delete", "schedule_id": schedule_id}
        )
        assert deleted["schedule"]["status"] == "deleted", deleted
    entries = audit_entries(stack.runtime, limit=2)
    assert {entry.user_id for entry in entries} == {ADMIN.email}


async def test_refresh_rotates_and_revoke_ends_the_grant(any_stack: AuthStack) -> None:
    stack = any_stack
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
    info, first = client.storage.client_info, client.storage.tokens
    assert info is not None and first is not None and first.refresh_token

    async with httpx.AsyncClient() as http:
        form = {"client_id": info.client_id, "client_secret": info.client_secret or ""}
        wrong_secret = await http.post(
            f"{stack.issuer}/token",
            data={
                **form,
                "client_secret": "x" * 64,
                "grant_type": "refresh_token",
                "refresh_token": first.refresh_token,
            },
        )
        assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
        refreshed = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": first.refresh_token},
        )
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()
        assert second["refresh_token"] != first.refresh_token and second["access_token"] != first.access_token
        assert second["expires_in"] == 3600
        async with connect(stack.mcp_url, token=second["access_token"]) as mcp:
            assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
        rotated = stack.runtime.store.find_oauth_session(refresh_token_hash=token_hash(first.refresh_token))
        assert rotated is not None and rotated.rotated_at is not None
        # the rotated-out refresh token is dead, and presenting it again revokes the whole grant
        replay = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": first.refresh_token},
        )
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        after_reuse = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        )
        assert after_reuse.status_code == 400 and after_reuse.json()["error"] == "invalid_grant"
        # and the access token of the stolen grant stops working at once
        blocked = await http.post(
            stack.mcp_url,
            headers={"Authorization": f"Bearer {second['access_token']}", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert blocked.status_code == 401

    # a fresh grant, revoked through its refresh token (RFC 7009)
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
    info, tokens = client.storage.client_info, client.storage.tokens
    assert info is not None and tokens is not None and tokens.refresh_token
    async with httpx.AsyncClient() as http:
        form = {"client_id": info.client_id, "client_secret": info.client_secret or ""}
        revoked = await http.post(f"{stack.issuer}/revoke", data={**form, "token": tokens.refresh_token})
        assert revoked.status_code == 200
        refused = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        blocked = await http.post(
            stack.mcp_url,
            headers={"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert blocked.status_code == 401
    record = stack.runtime.store.find_oauth_session(access_token_hash=token_hash(tokens.access_token))
    assert record is not None and record.revoked_at is not None


async def test_no_secret_reaches_the_logs(stack: AuthStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
        assert not (await mcp.call_tool("check_tag_compliance", SCOPE_ARGS)).is_error
    tokens, info = client.storage.tokens, client.storage.client_info
    assert tokens is not None and info is not None and info.client_secret and tokens.refresh_token
    async with httpx.AsyncClient() as http:
        form = {"client_id": info.client_id, "client_secret": info.client_secret}
        refreshed = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        )
        assert refreshed.status_code == 200
        new_tokens = refreshed.json()
        assert (
            await http.post(f"{stack.issuer}/revoke", data={**form, "token": new_tokens["access_token"]})
        ).is_success
        refused = await http.post(  # an alg-none token: refused, and logged without the token
            stack.mcp_url,
            headers={
                "Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                "Accept": "application/json",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert refused.status_code == 401
    states = [value for hop in client.browser.hops for value in _query_values(hop, "state")]
    secrets = [
        tokens.access_token,
        tokens.refresh_token,
        new_tokens["access_token"],
        new_tokens["refresh_token"],
        info.client_secret,
        stack.idp.client_secret,
        *client.browser.codes,
        *[state for state in states if len(state) > 100],  # the signed login state
        "eyJzdWIiOiJ4In0",
    ]
    # What the servers logged: every record from their threads (uvicorn, the SDK, the gateway's own
    # HTTP calls to the IdP, at DEBUG), and the product's loggers from any thread. The test's own
    # client-side HTTP traces (main thread) are not the product's logs: they show the redirects.
    main = threading.main_thread().ident
    server_records = [
        record
        for record in caplog.records
        if record.thread != main or record.name.startswith("tagcompliance")
    ]
    assert any(record.name.startswith("httpcore") for record in server_records)  # DEBUG really captured
    messages = [record.getMessage() for record in server_records]
    assert any("GET /oauth/callback?[redacted]" in message for message in messages), messages  # access log
    assert any("registered OAuth client" in message for message in messages)
    for secret in secrets:
        assert secret, secrets
        leaks = [message for message in messages if secret in message]
        assert not leaks, leaks
    for entry in audit_entries(stack.runtime, limit=50):
        assert not any(secret in repr(entry) for secret in secrets)


async def confirmed_call(mcp: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A state-changing call, confirmed when the agent-safety layer asks for it (intent commit)."""
    result = await mcp.call_tool(tool, arguments)
    assert not result.is_error, result.content
    content = result.structured_content or {}
    if content.get("confirmation_token") and not content.get("executed", True):
        result = await mcp.call_tool(tool, {**arguments, "confirmation_token": content["confirmation_token"]})
        assert not result.is_error, result.content
        content = result.structured_content or {}
    return content


def _query_values(url: str, name: str) -> list[str]:
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(url).query).get(name, [])

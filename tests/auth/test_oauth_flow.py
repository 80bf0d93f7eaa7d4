"""The whole OAuth flow over real HTTP with the official mcp client and its OAuthClientProvider:
discovery, registration, authorize with PKCE, token, tool calls, refresh (rotating), revoke."""

from __future__ import annotations

import logging

import httpx2 as httpx
import pytest

from .conftest import AuthStack, ManualClient, audit_entries, connect, oauth_client

pytestmark = pytest.mark.anyio


async def test_discovery_documents(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        prm = (
            await http.get(stack.mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
        ).json()
        assert prm["resource"] == stack.mcp_url
        assert prm["authorization_servers"] == [stack.issuer]
        assert "tag:read" in prm["scopes_supported"]
        asm = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
        assert asm["code_challenge_methods_supported"] == ["S256"]
        assert asm["registration_endpoint"] and asm["revocation_endpoint"]
        oidc = (await http.get(f"{stack.issuer}/.well-known/openid-configuration")).json()
        keys = (await http.get(oidc["jwks_uri"])).json()["keys"]
        assert keys and all("d" not in key for key in keys)  # public halves only
        health = (await http.get(stack.mcp_url.replace("/mcp", "/health"))).json()
        assert health["auth"].startswith("oauth (issuer ")


async def test_full_flow_read_scope(stack: AuthStack) -> None:
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        result = await mcp.call_tool("get_tagging_policy", {})
        assert not result.is_error, result.content
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

    # PKCE S256 was used, the token is a JWT for this resource
    authorize_url = client.browser.authorize_urls[0]
    assert "code_challenge_method=S256" in authorize_url and "code_challenge=" in authorize_url
    tokens = client.storage.tokens
    assert tokens is not None and tokens.expires_in == 3600 and tokens.refresh_token

    entries = audit_entries(stack.runtime, limit=4)
    assert [entry.tool_name for entry in entries] == [
        "schedule_compliance_audit",
        "import_aws_tag_policy",
        "schedule_compliance_audit",
        "get_tagging_policy",
    ]
    assert {entry.user_id for entry in entries} == {"alice@example.com"}
    assert {entry.client_id for entry in entries} == {client.storage.client_info.client_id}
    assert [entry.status for entry in entries] == ["success", "error", "error", "success"]


async def test_admin_scope_can_schedule(stack: AuthStack) -> None:
    # The SDK client requests the scopes the resource metadata advertises (tag:read); an admin
    # client asks for admin explicitly.
    async with httpx.AsyncClient() as http:
        registered = await ManualClient.register(stack, http)
        tokens = await registered.tokens(http, scope="tag:read admin")
    assert tokens["scope"] == "tag:read admin"
    async with connect(stack.mcp_url, token=tokens["access_token"]) as mcp:
        created = await mcp.call_tool(
            "schedule_compliance_audit",
            {"action": "create", "schedule": "daily", "time": "09:00", "recipients": ["finops@example.com"]},
        )
        assert not created.is_error, created.content
        schedule_id = created.structured_content["schedule"]["schedule_id"]
        deleted = await mcp.call_tool(
            "schedule_compliance_audit", {"action": "delete", "schedule_id": schedule_id}
        )
        assert not deleted.is_error, deleted.content


async def test_refresh_rotates_and_revoke_ends_the_grant(stack: AuthStack) -> None:
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
    info, first = client.storage.client_info, client.storage.tokens
    assert info is not None and first is not None and first.refresh_token

    async with httpx.AsyncClient() as http:
        form = {"client_id": info.client_id, "client_secret": info.client_secret or ""}
        refreshed = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": first.refresh_token},
        )
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()
        assert second["refresh_token"] != first.refresh_token and second["access_token"] != first.access_token
        # the new access token works
        async with connect(stack.mcp_url, token=second["access_token"]) as mcp:
            assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
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
        assert after_reuse.status_code == 400

    # a fresh grant, revoked through its refresh token
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
    info, tokens = client.storage.client_info, client.storage.tokens
    assert info is not None and tokens is not None
    async with httpx.AsyncClient() as http:
        form = {"client_id": info.client_id, "client_secret": info.client_secret or ""}
        revoked = await http.post(f"{stack.issuer}/revoke", data={**form, "token": tokens.refresh_token})
        assert revoked.status_code == 200
        refused = await http.post(
            f"{stack.issuer}/token",
            data={**form, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        # the IdP no longer recognises the access token of the revoked grant either
        assert await stack.idp.load_access_token(tokens.access_token) is None


async def test_no_secret_reaches_the_logs(stack: AuthStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = oauth_client(stack, "tag:read")
    async with connect(stack.mcp_url, auth=client.provider) as mcp:
        assert not (await mcp.call_tool("get_tagging_policy", {})).is_error
    async with httpx.AsyncClient() as http:  # an alg-none token: refused, and logged without the token
        refused = await http.post(
            stack.mcp_url,
            headers={
                "Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                "Accept": "application/json",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert refused.status_code == 401
    tokens, info = client.storage.tokens, client.storage.client_info
    assert tokens is not None and info is not None and info.client_secret
    secrets = [tokens.access_token, tokens.refresh_token, info.client_secret, "eyJzdWIiOiJ4In0"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert text  # something was logged
    for secret in secrets:
        assert secret and secret not in text
    for entry in audit_entries(stack.runtime, limit=20):
        assert not any(secret in repr(entry) for secret in secrets if secret)

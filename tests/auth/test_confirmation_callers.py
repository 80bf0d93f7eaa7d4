"""A confirmation token belongs to the user it was issued to, over real streamable HTTP with OAuth.

Two users log in through the gateway's /authorize, the test OIDC IdP (its ``user`` is who the next
login becomes), the gateway's callback and /token with PKCE, asking for ``tag:read admin`` (creating
a schedule needs ``admin``; ``test_admin_scope_official_client.py`` covers the same login through
the official OAuthClientProvider), then call tools with the official mcp client over HTTP. Ana gets an
intent commit for a new scheduled audit; Bo presenting Ana's token with exactly the same parameters
is refused and nothing is created; Ana's confirmation then creates the schedule exactly once, and her
reuse of the token is refused. Every attempt is in ``call_log`` under the user who made it.
"""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from services.demo.testidp import TestUser

from .conftest import AuthStack, ManualClient, audit_entries, connect

pytestmark = pytest.mark.anyio

# Both are admins (schedule create needs the admin scope): only their identity differs.
ANA = TestUser("00u-ana", "ana@example.com", ["finops-admins"])
BO = TestUser("00u-bo", "bo@example.com", ["finops-admins"])
TOOL = "schedule_compliance_audit"
RECIPIENT = "ana-audits@example.com"
ARGUMENTS = {
    "action": "create",
    "schedule": "weekly",
    "day_of_week": "tuesday",
    "time": "07:45",
    "timezone": "Europe/Paris",
    "recipients": [RECIPIENT],
    "format": "email",
}


async def login(stack: AuthStack, client: ManualClient, user: TestUser) -> dict[str, Any]:
    """``user``'s tokens from a full login: gateway /authorize -> IdP -> gateway callback -> /token."""
    previous, stack.idp.user = stack.idp.user, user
    try:
        async with httpx.AsyncClient() as http:
            return await client.tokens(http, scope="tag:read admin")
    finally:
        stack.idp.user = previous  # the module's default user (alice) for the other tests


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def schedules_for(stack: AuthStack, recipient: str) -> list[Any]:
    return [
        record
        for record in stack.runtime.store.list_scheduled_audits()
        if recipient in record.recipients and record.status != "deleted"
    ]


@pytest.mark.parametrize("bo_client", ["same MCP client as Ana", "his own MCP client"])
async def test_another_user_cannot_use_a_confirmation_token(any_stack: AuthStack, bo_client: str) -> None:
    stack = any_stack
    recipient = f"{bo_client.split()[0]}-{stack.backend}-{RECIPIENT}"
    arguments = {**ARGUMENTS, "recipients": [recipient]}
    idp_logins_before = len(stack.idp.logins)
    async with httpx.AsyncClient() as http:
        ana_client = await ManualClient.register(stack, http)
        # one MCP client app used by two people (only the user differs), or two apps
        bo_client_app = (
            ana_client if bo_client.startswith("same") else await ManualClient.register(stack, http)
        )
    ana_tokens = await login(stack, ana_client, ANA)
    bo_tokens = await login(stack, bo_client_app, BO)
    assert ana_tokens["scope"] == bo_tokens["scope"] == "tag:read admin"  # both are admins
    assert ana_tokens["access_token"] != bo_tokens["access_token"]
    assert stack.idp.logins[idp_logins_before:] == [ANA.subject, BO.subject]

    async with (
        connect(stack.mcp_url, token=ana_tokens["access_token"]) as ana_mcp,
        connect(stack.mcp_url, token=bo_tokens["access_token"]) as bo_mcp,
    ):
        commit = await ana_mcp.call_tool(TOOL, arguments)
        assert not commit.is_error, text_of(commit)
        answer = commit.structured_content
        assert answer is not None and answer["safety"] == "intent_commit", answer
        token = answer["confirmation_token"]
        assert token.startswith("ct_")
        committed = answer["intent_commit"]["parameters"]
        assert committed["time"] == "07:45" and committed["recipients"] == [recipient]
        assert schedules_for(stack, recipient) == []  # a commit creates nothing

        stolen = await bo_mcp.call_tool(TOOL, {**arguments, "confirmation_token": token})
        assert stolen.is_error, stolen.structured_content
        refusal = text_of(stolen)
        assert "issued to another caller" in refusal, refusal
        assert "Traceback" not in refusal and token not in refusal
        assert schedules_for(stack, recipient) == []  # nothing was created for Bo

        # Bo's refused attempt did not use the token up: Ana confirms, once.
        confirmed = await ana_mcp.call_tool(TOOL, {**arguments, "confirmation_token": token})
        assert not confirmed.is_error, text_of(confirmed)
        assert confirmed.structured_content is not None
        created = confirmed.structured_content["schedule"]
        assert created["status"] == "active" and created["schedule"] == "weekly"
        assert created["time"] == "07:45" and created["day_of_week"] == "tuesday"
        assert created["timezone"] == "Europe/Paris" and created["recipients"] == [recipient]
        assert created["created_by"] == ANA.email
        [stored] = schedules_for(stack, recipient)
        assert stored.schedule_id == created["schedule_id"] and stored.created_by == ANA.email

        reused = await ana_mcp.call_tool(TOOL, {**arguments, "confirmation_token": token})
        assert reused.is_error, reused.structured_content
        assert "already used" in text_of(reused) and "single-use" in text_of(reused)
        assert len(schedules_for(stack, recipient)) == 1  # still exactly one

    # The call log names who made each attempt (newest first): Ana's reuse, her confirmation,
    # Bo's refused attempt, Ana's commit.
    entries = audit_entries(stack.runtime, limit=4)
    assert [entry.tool_name for entry in entries] == [TOOL] * 4
    assert [(entry.user_id, entry.client_id, entry.status) for entry in entries] == [
        (ANA.email, ana_client.client_id, "error"),
        (ANA.email, ana_client.client_id, "success"),
        (BO.email, bo_client_app.client_id, "error"),
        (ANA.email, ana_client.client_id, "success"),
    ]
    assert "already used" in (entries[0].error_message or "")
    assert "issued to another caller" in (entries[2].error_message or "")
    assert entries[1].result_summary.get("action") == "create"
    for entry in entries:
        assert entry.parameters["recipients"] == [recipient] and entry.parameters["time"] == "07:45"
        assert token not in str((entry.parameters, entry.result_summary, entry.error_message))
    assert [entry.parameters.get("confirmation_token") for entry in entries] == ["[redacted]"] * 3 + [None]

"""Item 5 of issue 13, the OAuth details.

Before the fix: ``AUTH_LEEWAY_SECONDS`` was ignored for ``exp`` (the verifier allowed it, then the
SDK's bearer middleware and the session check compared ``exp`` with the bare clock); ``/token``
issued tokens for a ``resource`` other than the code's (RFC 8707 wants ``invalid_target``); a code
survived a failed PKCE attempt, so a verifier could be guessed again and again.
"""

from __future__ import annotations

import time
import uuid

import httpx2 as httpx
import pytest

from tests.auth.conftest import AuthStack, ManualClient, pkce_pair

from .conftest import ACCEPT, INITIALIZE

pytestmark = pytest.mark.anyio


def claims(stack: AuthStack, expires_in: int) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": stack.issuer,
        "aud": stack.mcp_url,
        "sub": "alice@example.com",
        "scope": "tag:read",
        "iat": now - 3600,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
    }


async def call_mcp(stack: AuthStack, token: str) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            stack.mcp_url,
            json=INITIALIZE,
            headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT},
        )
    return response.status_code


async def test_exp_within_the_leeway_is_accepted_and_beyond_it_refused(stack: AuthStack) -> None:
    leeway = stack.runtime.settings.auth_leeway_seconds
    assert leeway == 30
    assert await call_mcp(stack, stack.sign(claims(stack, expires_in=-10))) == 200
    assert await call_mcp(stack, stack.sign(claims(stack, expires_in=-(leeway + 30)))) == 401


async def test_a_code_exchanged_for_another_resource_is_invalid_target(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        verifier, challenge = pkce_pair()
        code = await client.code(http, challenge)
        client.resource = "https://other.example.com/mcp"
        response = await client.exchange(http, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_a_refresh_for_another_resource_is_invalid_target(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        tokens = await client.tokens(http)
        response = await http.post(
            f"{stack.issuer}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "resource": "https://other.example.com/mcp",
            },
        )
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_a_code_is_burnt_by_a_wrong_pkce_verifier(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        verifier, challenge = pkce_pair()
        code = await client.code(http, challenge)
        guess = await client.exchange(http, code, pkce_pair()[0])
        assert guess.status_code == 400 and guess.json()["error"] == "invalid_grant"
        right = await client.exchange(http, code, verifier)  # too late: the code is gone
    assert right.status_code == 400 and right.json()["error"] == "invalid_grant"

"""The security matrix: each bad token or bad authorization request is refused with the right status."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey

from .conftest import AuthStack, ManualClient, pkce_pair, shown_error

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "matrix", "version": "1"},
    },
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(stack: AuthStack, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": stack.issuer,
        "sub": "mallory@example.com",
        "aud": stack.mcp_url,
        "client_id": "matrix",
        "scope": "tag:read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with_public_key(stack: AuthStack) -> str:
    public_pem = stack.key.as_pem(private=False)
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': stack.key.kid, 'typ': 'JWT'}).encode())}."
        f"{b64(json.dumps(claims(stack)).encode())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def forged_with_same_kid(stack: AuthStack) -> str:
    other = RSAKey.generate_key(2048, parameters={"kid": stack.key.kid})
    return jwt.encode({"alg": "RS256", "kid": stack.key.kid}, claims(stack), other)


def unknown_kid(stack: AuthStack) -> str:
    other = RSAKey.generate_key(2048, parameters={"kid": "rotated-" + uuid.uuid4().hex})
    return jwt.encode({"alg": "RS256", "kid": other.kid}, claims(stack), other)


async def post_mcp(stack: AuthStack, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient() as http:
        return await http.post(stack.mcp_url, headers=headers, json=INITIALIZE)


async def test_a_valid_token_is_accepted(stack: AuthStack) -> None:
    response = await post_mcp(stack, stack.sign(claims(stack)))
    assert response.status_code == 200, response.text


async def test_no_token_gets_401_pointing_to_the_metadata(stack: AuthStack) -> None:
    response = await post_mcp(stack, None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
    assert "/.well-known/oauth-protected-resource/mcp" in challenge


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda s: s.sign(claims(s, exp=int(time.time()) - 120, iat=int(time.time()) - 800)),
            id="expired",
        ),
        pytest.param(lambda s: s.sign(claims(s, nbf=int(time.time()) + 600)), id="not-yet-valid"),
        pytest.param(lambda s: s.sign(claims(s, iss="http://127.0.0.1:1")), id="wrong-issuer"),
        pytest.param(lambda s: s.sign(claims(s, aud="http://127.0.0.1:1/mcp")), id="wrong-audience"),
        pytest.param(lambda s: s.sign(claims(s, exp=None)), id="no-exp"),
        pytest.param(lambda s: s.sign(claims(s, sub=None)), id="no-subject"),
        pytest.param(forged_with_same_kid, id="bad-signature"),
        pytest.param(lambda s: unsigned({"alg": "none", "kid": s.key.kid}, claims(s)), id="alg-none"),
        pytest.param(hs256_with_public_key, id="hs256-with-public-key"),
        pytest.param(unknown_kid, id="unknown-kid"),
        pytest.param(lambda s: "not.a.jwt", id="garbage"),
    ],
)
async def test_bad_tokens_get_401(stack: AuthStack, make_token: Any) -> None:
    response = await post_mcp(stack, make_token(stack))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_missing_read_scope_gets_403_insufficient_scope(stack: AuthStack) -> None:
    response = await post_mcp(stack, stack.sign(claims(stack, scope="admin:other")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "tag:read" in response.json()["error_description"]


async def test_a_replayed_code_is_refused_and_revokes_its_grant(any_stack: AuthStack) -> None:
    stack = any_stack
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        verifier, challenge = pkce_pair()
        code = await client.code(http, challenge)
        first = await client.exchange(http, code, verifier)
        assert first.status_code == 200
        assert (await post_mcp(stack, first.json()["access_token"])).status_code == 200
        replay = await client.exchange(http, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # the code was intercepted: the tokens its first exchange produced stop working too
    assert (await post_mcp(stack, first.json()["access_token"])).status_code == 401


async def test_a_wrong_code_verifier_is_refused(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        _verifier, challenge = pkce_pair()
        code = await client.code(http, challenge)
        wrong, _ = pkce_pair()
        response = await client.exchange(http, code, wrong)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_plain_pkce_is_refused(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        verifier, _ = pkce_pair()
        response = await client.authorize(http, verifier, method="plain")
    # shown, not redirected: before the login nobody has approved the client's redirect URI
    shown_error(response, 400)
    assert response.json()["error"] == "invalid_request"


async def test_an_unregistered_redirect_uri_is_refused(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        _, challenge = pkce_pair()
        response = await client.authorize(http, challenge, redirect_uri="http://127.0.0.1:2/evil")
    # never redirected to an unregistered URI
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


@settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
            ),
            max_leaves=10,
        ).map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries(
            {
                "jsonrpc": st.just("2.0"),
                "id": st.integers(),
                "method": st.sampled_from(["tools/call", "initialize"]),
            },
            optional={
                "params": st.dictionaries(
                    st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3
                )
            },
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_junk_bodies_with_a_valid_token_never_get_a_5xx(stack: AuthStack, body: bytes) -> None:
    headers = {
        "Authorization": f"Bearer {stack.sign(claims(stack))}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    response = httpx.post(stack.mcp_url, headers=headers, content=body, timeout=10)
    assert response.status_code < 500, (body, response.status_code, response.text)

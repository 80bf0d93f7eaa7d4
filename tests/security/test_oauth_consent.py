"""Attack 1 of issue 13: account takeover through an attacker's registration and a link.

Before the fix: ``/register`` took any redirect URI and ``/authorize`` relayed straight to the IdP,
so a user with an IdP session who opened the attacker's link was sent back with a code to the
attacker's host (``tag:read admin`` for an admin, with a 30-day refresh token), and error
redirects made the gateway an open redirector. Now no code reaches any redirect URI without the
user's Allow on the consent page, and errors go only to a redirect URI the user consented to.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
import pytest

from services.demo.testidp import TestUser
from tests.auth import conftest as auth_fixtures
from tests.auth.conftest import (
    ALICE,
    REDIRECT_URI,
    AuthStack,
    ManualClient,
    answer_consent,
    is_consent_page,
    pkce_pair,
    redirect_query,
)

from .oauth_helpers import register

pytestmark = pytest.mark.anyio
pg_stack, any_stack = auth_fixtures.pg_stack, auth_fixtures.any_stack  # the gateway on PostgreSQL too

EVIL_REDIRECT = "https://evil.example.com/steal"


async def walk(http: httpx.AsyncClient, url: str, stop_at: str) -> tuple[httpx.Response, list[str]]:
    """Follow redirects like a browser until a page, or a redirect to ``stop_at`` (not followed)."""
    locations: list[str] = []
    response = await http.get(url, follow_redirects=False)
    for _ in range(6):
        if response.status_code not in (302, 303):
            return response, locations
        location = response.headers["location"]
        locations.append(location)
        if location.startswith(stop_at):
            return response, locations
        response = await http.get(location, follow_redirects=False)
    raise AssertionError(f"too many redirects: {locations}")


async def consent_page_of(
    http: httpx.AsyncClient, client: ManualClient, challenge: str, scope: str = "tag:read"
) -> httpx.Response:
    """The client's /authorize followed through the IdP login: the consent page, or the redirect
    back when the consent is remembered."""
    first = await client.authorize(http, challenge, scope=scope)
    response, _ = await walk(http, first.headers["location"], REDIRECT_URI)
    return response


def attacker_link(stack: AuthStack, client_id: str, redirect_uri: str, scope: str = "tag:read admin") -> str:
    _, challenge = pkce_pair()  # the attacker keeps the verifier
    query = httpx.QueryParams(
        response_type="code",
        client_id=client_id,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        code_challenge_method="S256",
        scope=scope,
        state="attacker",
        resource=stack.mcp_url,
    )
    return f"{stack.issuer}/authorize?{query}"


async def test_an_attackers_link_reaches_the_consent_page_and_no_code_leaves(any_stack: AuthStack) -> None:
    stack = any_stack
    registration = register(stack, [EVIL_REDIRECT], client_name="Tag Compliance (official)")
    assert registration.status_code == 201, registration.text  # https: a legitimate-looking client
    client_id = registration.json()["client_id"]
    async with httpx.AsyncClient() as victim:  # the victim has an IdP session (the test IdP logs in)
        page, locations = await walk(victim, attacker_link(stack, client_id, EVIL_REDIRECT), EVIL_REDIRECT)
    assert not any(location.startswith(EVIL_REDIRECT) for location in locations), locations
    assert is_consent_page(page)
    assert "self-asserted" in page.text and "nobody has verified it" in page.text
    assert "https://evil.example.com" in page.text and "Tag Compliance (official)" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_deny_sends_access_denied_and_allow_sends_the_code(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        _, challenge = pkce_pair()
        page = await consent_page_of(http, client, challenge)
        denied = redirect_query(await answer_consent(http, page, "deny"))
        assert denied == {
            "error": "access_denied",
            "error_description": "the user denied access",
            "state": "xyz",
            "iss": stack.issuer,
        }
        verifier, challenge = pkce_pair()
        page = await consent_page_of(http, client, challenge)
        allowed = await answer_consent(http, page, "allow")
        assert allowed.status_code == 303
        code = redirect_query(allowed)["code"]
        assert (await client.exchange(http, code, verifier)).status_code == 200


async def test_a_consent_answer_needs_the_pages_csrf_cookie_and_counts_once(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as victim:
        client = await ManualClient.register(stack, victim)
        _, challenge = pkce_pair()
        page = await consent_page_of(victim, client, challenge)
    # another browser (no cookie) posting the victim's form: refused, no code
    async with httpx.AsyncClient() as forger:
        forged = await answer_consent(forger, page, "allow")
    assert forged.status_code == 403 and "location" not in forged.headers
    cookies = [(cookie.name, cookie.value, cookie.path) for cookie in victim.cookies.jar]
    async with httpx.AsyncClient(cookies=victim.cookies) as browser:
        assert "code" in redirect_query(await answer_consent(browser, page, "allow"))
    # the same answer posted again, even with the cookie the Allow cleared: one answer per request
    async with httpx.AsyncClient() as replayer:
        for name, value, path in cookies:
            replayer.cookies.set(name, value, path=path)
        again = await answer_consent(replayer, page, "allow")
    assert again.status_code == 400 and "already answered" in again.text


async def test_consent_is_remembered_and_a_newly_granted_admin_asks_again(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        assert "code" in redirect_query(await client.login(http, pkce_pair()[1], "tag:read admin"))
        # the same user, client, redirect URI and scopes: no page this time
        again = await consent_page_of(http, client, pkce_pair()[1], scope="tag:read admin")
        assert "code" in redirect_query(again)
        stack.idp.user = TestUser(ALICE.subject, ALICE.email, ["finops-admins"])  # now an admin
        try:
            page = await consent_page_of(http, client, pkce_pair()[1], scope="tag:read admin")
        finally:
            stack.idp.user = ALICE
    assert is_consent_page(page) and "<code>admin</code>" in page.text


async def test_consents_are_listed_and_revoking_one_revokes_its_tokens(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        tokens = await client.tokens(http)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        listed = await http.get(f"{stack.issuer}/oauth/consents", headers=bearer)
        assert listed.status_code == 200
        mine = [item for item in listed.json()["consents"] if item["client_id"] == client.client_id]
        assert (
            len(mine) == 1 and mine[0]["redirect_uri"] == REDIRECT_URI and mine[0]["scopes"] == ["tag:read"]
        )
        assert (await http.get(f"{stack.issuer}/oauth/consents")).status_code == 401
        consent = f"{stack.issuer}/oauth/consents/{mine[0]['consent_id']}"
        assert (await http.delete(consent + "0", headers=bearer)).status_code == 404
        assert (await http.delete(consent, headers=bearer)).status_code == 204
        # its tokens are revoked, and the next login asks again
        assert (await http.get(f"{stack.issuer}/oauth/consents", headers=bearer)).status_code == 401
        page = await consent_page_of(http, client, pkce_pair()[1])
    assert is_consent_page(page)


async def test_errors_are_not_redirected_to_an_unapproved_redirect_uri(stack: AuthStack) -> None:
    """The open redirector: an invalid request for the attacker's client used to bounce the
    user to the attacker's site, on the gateway's good name."""
    registration = register(stack, [EVIL_REDIRECT])
    client_id = registration.json()["client_id"]
    link = attacker_link(stack, client_id, EVIL_REDIRECT, scope="no-such-scope")
    async with httpx.AsyncClient() as victim:
        response = await victim.get(link, follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == "invalid_scope"


async def test_errors_reach_a_redirect_uri_the_user_consented_to(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        await client.tokens(http)  # consented to this client and redirect URI
        first = await client.authorize(http, pkce_pair()[1])
        state = parse_qs(urlparse(first.headers["location"]).query)["state"][0]
        refused = await http.get(
            f"{stack.issuer}/oauth/callback", params={"state": state, "error": "access_denied"}
        )
    assert refused.status_code == 403  # the IdP refusal is shown...
    async with httpx.AsyncClient() as http:
        response = await consent_page_of(http, client, pkce_pair()[1], scope="admin")  # ...Alice is no admin
    assert redirect_query(response)["error"] == "access_denied"

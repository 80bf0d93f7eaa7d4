"""Client ID Metadata Documents (issue 13, item 2): a client identified by an https URL.

What is tested, and what is not: the real fetcher's refusals (not https, no path, loopback,
private, link-local and IPv4-mapped addresses) run for real and stop before any connection. Its
success path needs a public https host, which the test machines cannot reach, so the flow test
injects the fetch (``metadata_document_fetch``) and everything after it (parsing, the checks on
the document, consent, the code and its exchange by a public client) runs for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from services.demo.aws import DemoAws
from tag_compliance_mcp.auth.clients import (
    DOCUMENT_MAX_BYTES,
    ClientPolicyError,
    fetch_public_https,
    parse_metadata_document,
)
from tests.auth.conftest import (
    REDIRECT_URI,
    AuthStack,
    follow_login,
    pkce_pair,
    redirect_query,
    running_stack,
)

pytestmark = pytest.mark.anyio

CLIENT_URL = "https://app.example.com/oauth/client.json"


def document(**changes: Any) -> bytes:
    values: dict[str, Any] = {
        "client_id": CLIENT_URL,
        "client_name": "Example App",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    values.update(changes)
    return json.dumps({key: value for key, value in values.items() if value is not None}).encode()


def authorization(gateway: AuthStack, client_id: str, challenge: str) -> dict[str, str]:
    """The query of ``/authorize`` for a public client identified by its metadata document URL."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "tag:read",
        "state": "s",
        "resource": gateway.mcp_url,
    }


class PublishedDocuments:
    """Stands in for the https fetch: the documents the clients' hosts publish."""

    def __init__(self) -> None:
        self.documents = {CLIENT_URL: document()}
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.documents:
            raise ClientPolicyError("invalid_client", "the client metadata document answered 404")
        return self.documents[url]


@pytest.fixture(scope="module")
def published() -> PublishedDocuments:
    return PublishedDocuments()


@pytest.fixture(scope="module")
def cimd_stack(
    demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory, published: PublishedDocuments
) -> Iterator[AuthStack]:
    with running_stack(
        demo_aws, tmp_path_factory.mktemp("cimd-gateway"), metadata_document_fetch=published.fetch
    ) as running:
        yield running


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://app.example.com/client.json", "must be https"),
        ("https://app.example.com/", "needs a path"),
        ("https://app.example.com/a/../client.json", "dot segments"),
        ("https://app.example.com/client.json#x", "no fragment"),
        ("https://127.0.0.1/client.json", "not on a public address"),
        ("https://localhost/client.json", "not on a public address"),
        ("https://10.1.2.3/client.json", "not on a public address"),
        ("https://192.168.0.10/client.json", "not on a public address"),
        ("https://169.254.169.254/latest/meta-data", "not on a public address"),
        ("https://[::1]/client.json", "not on a public address"),
        ("https://[::ffff:127.0.0.1]/client.json", "not on a public address"),
        ("https://[fd00::1]/client.json", "not on a public address"),
    ],
)
async def test_the_fetch_refuses_non_https_and_private_addresses(url: str, reason: str) -> None:
    with pytest.raises(ClientPolicyError, match=reason):
        await fetch_public_https(url)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (document(client_id="https://other.example.com/client.json"), "another client_id"),
        (document(client_secret="s3cr3t"), "must not hold a secret"),
        (document(token_endpoint_auth_method="client_secret_basic"), "only public clients"),
        (document(redirect_uris=["javascript:alert(1)//"]), "javascript: scheme"),
        (document(redirect_uris=["http://evil.example.com/cb"]), "loopback address only"),
        (document(client_name="x" * 101), "client_name is longer"),
        (b"{" + b" " * DOCUMENT_MAX_BYTES + b"}", "larger than"),
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
    ],
)
def test_a_bad_metadata_document_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ClientPolicyError, match=reason):
        parse_metadata_document(CLIENT_URL, body)


async def test_a_metadata_document_client_logs_in_with_consent(
    cimd_stack: AuthStack, published: PublishedDocuments
) -> None:
    stack = cimd_stack
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
        assert metadata["client_id_metadata_document_supported"] is True
        verifier, challenge = pkce_pair()
        authorize = await http.get(
            f"{stack.issuer}/authorize", params=authorization(stack, CLIENT_URL, challenge)
        )
        assert authorize.status_code == 302, authorize.text
        first = await http.get(authorize.headers["location"], follow_redirects=False)
        page = await http.get(first.headers["location"], follow_redirects=False)  # IdP -> callback
        assert "published by <strong>app.example.com</strong>" in page.text  # shown on the consent page
        code = redirect_query(await follow_login(http, authorize.headers["location"], []))["code"]
        token = await http.post(
            f"{stack.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_URL,
                "resource": stack.mcp_url,
            },
        )
    assert token.status_code == 200, token.text
    assert set(published.fetched) == {CLIENT_URL}  # fetched once, then from the cache


async def test_an_unpublished_or_invalid_document_is_an_unknown_client(
    cimd_stack: AuthStack, published: PublishedDocuments
) -> None:
    published.documents["https://app.example.com/bad.json"] = document(
        client_id="https://app.example.com/x.json"
    )
    async with httpx.AsyncClient() as http:
        for client_id in ("https://app.example.com/missing.json", "https://app.example.com/bad.json"):
            response = await http.get(
                f"{cimd_stack.issuer}/authorize", params=authorization(cimd_stack, client_id, pkce_pair()[1])
            )
            assert response.status_code == 400 and "location" not in response.headers
            assert "not found" in response.json()["error_description"]

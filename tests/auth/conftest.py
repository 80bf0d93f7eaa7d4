"""Fixtures for the OAuth tests: the test OIDC IdP (standing in for the company IdP) and the gateway
(the MCP server and its OAuth authorization server) as real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import html
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from bench.common import free_port
from services.demo.aws import DemoAws
from services.demo.testidp import TestOidcProvider, TestUser
from tag_compliance_mcp.auth.authserver import GatewayAuthorizationServer, token_hash
from tag_compliance_mcp.auth.config import GatewayAuth, build_auth
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tag_compliance_mcp.sessions import http_app
from tagcompliance.store.oauth import OAuthSessionRecord
from tests.conftest import fresh_postgres_database
from tests.e2e.helpers import gateway_settings

REDIRECT_URI = "http://127.0.0.1:1/callback"  # never contacted: the test reads the redirect itself
ALICE = TestUser("00u-alice", "alice@example.com", ["finops-readers"])
ADMIN = TestUser("00u-root", "root@example.com", ["finops-admins"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ServerThread:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int, *, access_log: bool = False) -> None:
        config = (
            # log_config=None: uvicorn's records (access log included) reach the root logger and caplog
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", log_config=None)
            if access_log
            else uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class AuthStack:
    idp: TestOidcProvider
    issuer: str  # the gateway: its own OAuth authorization server
    mcp_url: str
    runtime: Runtime
    auth: GatewayAuth
    backend: str
    database_url: str | None = None

    @property
    def server(self) -> GatewayAuthorizationServer:
        assert self.auth.authorization_server is not None
        return self.auth.authorization_server

    @property
    def key(self) -> RSAKey:
        return self.server.key

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """An access token signed with the gateway's key and given a live ``oauth_sessions`` row, so a
        refusal can only come from the claim or header under test."""
        token = jwt.encode({"alg": "RS256", "kid": self.key.kid, **(header or {})}, claims, self.key)
        now = datetime.now(UTC)
        self.runtime.store.create_oauth_session(
            OAuthSessionRecord(
                grant_id=uuid.uuid4().hex,
                client_id=str(claims.get("client_id", "matrix")),
                user_id=str(claims.get("sub", "nobody")),
                access_token_hash=token_hash(token),
                refresh_token_hash=None,
                scopes=str(claims.get("scope", "")).split(),
                expires_at=now + timedelta(hours=1),
                refresh_expires_at=None,
                resource=self.mcp_url,
                created_at=now,
            )
        )
        return token


@contextmanager
def running_stack(
    demo_aws: DemoAws,
    data_dir: Path,
    database_url: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
    metadata_document_fetch: Callable[[str], Awaitable[bytes]] | None = None,
) -> Iterator[AuthStack]:
    idp_port, gateway_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    idp = TestOidcProvider(
        issuer=f"http://127.0.0.1:{idp_port}", redirect_uris=[f"{gateway}/oauth/callback"], user=ALICE
    )
    overrides: dict[str, Any] = {
        "AUTH_IDP_ISSUER_URL": idp.issuer,
        "AUTH_IDP_CLIENT_ID": idp.client_id,
        "AUTH_IDP_CLIENT_SECRET": idp.client_secret,
        "AUTH_ADMIN_GROUPS": "finops-admins",
        "AUTH_WRITE_GROUPS": "finops-writers",
    }
    if database_url:
        overrides["DATABASE_URL"] = database_url
    overrides.update(settings_overrides or {})
    environment = pytest.MonkeyPatch()  # AWS credentials for the demo estate, as a user's shell has them
    for name, value in demo_aws.environment.items():
        environment.setenv(name, value)
    settings = gateway_settings(demo_aws, data_dir, **overrides)
    runtime = build_runtime(settings, "memory")
    auth = build_auth(
        settings, "127.0.0.1", gateway_port, runtime.store, runtime.cache, metadata_document_fetch
    )
    assert auth is not None and auth.authorization_server is not None
    runtime.auth_mode = auth.describe()
    app = http_app(build_server(runtime, auth), settings, "127.0.0.1", auth, runtime.cache)
    try:
        with ServerThread(idp.app(), idp_port), ServerThread(app, gateway_port, access_log=True):
            yield AuthStack(
                idp,
                gateway,
                f"{gateway}/mcp",
                runtime,
                auth,
                "postgresql" if database_url else "sqlite",
                database_url,
            )
    finally:
        runtime.close()
        environment.undo()


@pytest.fixture(scope="module")
def stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    with running_stack(demo_aws, tmp_path_factory.mktemp("auth-gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def pg_stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """The same stack on a new PostgreSQL database (dropped afterwards)."""
    with (
        fresh_postgres_database() as url,
        running_stack(demo_aws, tmp_path_factory.mktemp("auth-gateway-pg"), url) as running,
    ):
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def any_stack(request: pytest.FixtureRequest) -> AuthStack:
    return request.getfixturevalue("stack" if request.param == "sqlite" else "pg_stack")


class MemoryTokenStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


CONSENT_FIELD = re.compile(r'<input type="hidden" name="(request|csrf)" value="([^"]*)">')


def is_consent_page(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'name="decision"' in response.text


async def answer_consent(
    http: httpx.AsyncClient, page: httpx.Response, decision: str = "allow"
) -> httpx.Response:
    """What the user's click on Allow or Deny sends (the browser test in tests/security clicks it for
    real): the page's hidden fields, with the CSRF cookie the page set, kept in ``http``'s jar."""
    fields = {name: html.unescape(value) for name, value in CONSENT_FIELD.findall(page.text)}
    assert set(fields) == {"request", "csrf"}, page.text[:300]
    origin = f"{page.url.scheme}://{page.url.netloc.decode()}"
    return await http.post(
        f"{origin}/oauth/consent", data={**fields, "decision": decision}, follow_redirects=False
    )


async def follow_login(
    http: httpx.AsyncClient, url: str, hops: list[str], decision: str = "allow"
) -> httpx.Response:
    """Follows redirects like a browser (gateway /authorize -> IdP login -> gateway callback -> consent
    page, answered with ``decision``) until the one back to the MCP client's redirect URI, which is
    returned unfollowed; or the page shown instead."""
    response = await http.get(url, follow_redirects=False)
    for _ in range(6):
        hops.append(url)
        if is_consent_page(response):
            response = await answer_consent(http, response, decision)
            continue
        if response.status_code not in (302, 303):
            return response
        url = response.headers["location"]
        if url.startswith(REDIRECT_URI):
            return response
        response = await http.get(url, follow_redirects=False)
    raise AssertionError(f"too many redirects: {hops}")


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI), location
    query = {key: values[0] for key, values in parse_qs(urlparse(location).query).items()}
    assert "code" in query or "error" in query, location
    return query


def shown_error(response: httpx.Response, status_code: int) -> str:
    """An error shown to the user, not redirected: registration is open, so only a redirect URI the
    user consented to receives errors (see authserver). Its text."""
    assert response.status_code == status_code, response.text
    assert "location" not in response.headers
    return response.text


class BrowserStandIn:
    """Follows the authorization URL like a browser would and captures the redirect back."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None
        self.authorize_urls: list[str] = []
        self.hops: list[str] = []
        self.codes: list[str] = []  # every code seen (the IdP's and the gateway's): secrets to look for

    async def redirect(self, url: str) -> None:
        self.authorize_urls.append(url)
        async with httpx.AsyncClient(timeout=30) as http:  # the login's hops on a busy machine
            query = redirect_query(await follow_login(http, url, self.hops))
        assert "code" in query, query
        self.codes += [value for hop in self.hops for value in parse_qs(urlparse(hop).query).get("code", [])]
        self.codes.append(query["code"])
        self.result = AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


@dataclass
class OAuthClient:
    storage: MemoryTokenStorage
    browser: BrowserStandIn
    provider: OAuthClientProvider


def oauth_client(stack: AuthStack, scope: str) -> OAuthClient:
    return oauth_client_for(stack.mcp_url, scope)


def oauth_client_for(mcp_url: str, scope: str) -> OAuthClient:
    storage, browser = MemoryTokenStorage(), BrowserStandIn()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="auth-tests",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope=scope,
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    return OAuthClient(storage, browser, provider)


def connect(url: str, *, auth: httpx.Auth | None = None, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(streamable_http_client(url, http_client=httpx.AsyncClient(auth=auth, headers=headers)))


@pytest.fixture
async def admin_client(stack: AuthStack) -> AsyncIterator[OAuthClient]:
    yield oauth_client(stack, "tag:read admin")


def audit_entries(runtime: Runtime, limit: int = 5) -> list[Any]:
    return runtime.store.list_calls(limit=limit)


def pkce_pair(verifier: str | None = None) -> tuple[str, str]:
    import base64
    import hashlib
    import secrets

    verifier = verifier or secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class ManualClient:
    """A client driving the endpoints by hand, for the cases the SDK client would never produce."""

    issuer: str
    resource: str
    client_id: str
    client_secret: str

    @classmethod
    async def register(cls, stack: AuthStack, http: httpx.AsyncClient) -> ManualClient:
        response = await http.post(
            f"{stack.issuer}/register",
            json={
                "client_name": "manual",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "tag:read admin",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return cls(stack.issuer, stack.mcp_url, body["client_id"], body["client_secret"])

    async def authorize(
        self,
        http: httpx.AsyncClient,
        challenge: str,
        *,
        scope: str = "tag:read",
        method: str = "S256",
        redirect_uri: str = REDIRECT_URI,
    ) -> httpx.Response:
        return await http.get(
            f"{self.issuer}/authorize",
            params={
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": method,
                "scope": scope,
                "state": "xyz",
                "resource": self.resource,
            },
            follow_redirects=False,
        )

    async def login(self, http: httpx.AsyncClient, challenge: str, scope: str = "tag:read") -> httpx.Response:
        """/authorize, through the IdP's login, up to the redirect back to the client."""
        first = await self.authorize(http, challenge, scope=scope)
        assert first.status_code == 302, first.text
        return await follow_login(http, first.headers["location"], [])

    async def code(self, http: httpx.AsyncClient, challenge: str, scope: str = "tag:read") -> str:
        return redirect_query(await self.login(http, challenge, scope))["code"]

    async def exchange(self, http: httpx.AsyncClient, code: str, verifier: str) -> httpx.Response:
        return await http.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "resource": self.resource,
            },
        )

    async def tokens(self, http: httpx.AsyncClient, scope: str = "tag:read") -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        response = await self.exchange(http, await self.code(http, challenge, scope), verifier)
        assert response.status_code == 200, response.text
        return response.json()

"""Fixtures for the OAuth tests: the built-in IdP and the gateway as real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
import pytest
import uvicorn
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from services.demo.aws import DemoAws
from services.mcp_gateway.auth.config import build_auth
from services.mcp_gateway.auth.testidp import DemoIdentityProvider
from services.mcp_gateway.runtime import Runtime, build_runtime
from services.mcp_gateway.server import build_server
from tests.e2e.helpers import gateway_settings

REDIRECT_URI = "http://127.0.0.1:1/callback"  # never contacted: the test reads the redirect itself


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerThread:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
    idp: DemoIdentityProvider
    issuer: str
    mcp_url: str
    runtime: Runtime


@pytest.fixture(scope="module")
def stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    idp_port, gateway_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    mcp_url = f"http://127.0.0.1:{gateway_port}/mcp"
    idp = DemoIdentityProvider(issuer=issuer, default_resource=mcp_url, subject="alice@example.com")
    settings = gateway_settings(
        demo_aws,
        tmp_path_factory.mktemp("auth-gateway"),
        AUTH_ISSUER_URL=issuer,
        AUTH_JWKS_MIN_REFRESH_SECONDS=0,
    )
    auth = build_auth(settings, "127.0.0.1", gateway_port)
    assert auth is not None
    runtime = build_runtime(settings, "memory")
    runtime.auth_mode = auth.describe()
    app = build_server(runtime, auth).streamable_http_app(host="127.0.0.1")
    with ServerThread(idp.app(), idp_port), ServerThread(app, gateway_port):
        yield AuthStack(idp, issuer, mcp_url, runtime)
    runtime.close()


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


class BrowserStandIn:
    """Follows the authorization URL like a browser would and captures the redirect back."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None
        self.authorize_urls: list[str] = []

    async def redirect(self, url: str) -> None:
        self.authorize_urls.append(url)
        async with httpx.AsyncClient() as http:
            response = await http.get(url, follow_redirects=False)
        assert response.status_code == 302, response.text
        query = parse_qs(urlparse(response.headers["location"]).query)
        self.result = AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
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
    storage, browser = MemoryTokenStorage(), BrowserStandIn()
    provider = OAuthClientProvider(
        server_url=stack.mcp_url,
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
    return runtime.store.list_audit_logs(limit=limit)


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

    async def code(self, http: httpx.AsyncClient, challenge: str, scope: str = "tag:read") -> str:
        response = await self.authorize(http, challenge, scope=scope)
        assert response.status_code == 302, response.text
        return parse_qs(urlparse(response.headers["location"]).query)["code"][0]

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

"""The consent page in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``.ci/services.sh``) driven headless by Playwright, against the gateway and the test IdP on
127.0.0.1. Allow sends the code to the client, Deny sends ``access_denied``, and the page loaded
in another site's frame (clickjacking) renders nothing and issues nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from tests.auth.conftest import AuthStack, ServerThread, free_port

from .oauth_helpers import register

CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Receiver:
    """The MCP client's redirect URI on loopback, recording what arrives, and an attacker's page
    framing the authorization URL (another origin: its own port)."""

    port: int
    framed_url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def app(self) -> Starlette:
        async def callback(request: Request) -> PlainTextResponse:
            self.received.append(dict(request.query_params))
            return PlainTextResponse("received")

        async def attacker(request: Request) -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><h1>Win a prize: click the button!</h1>"
                f'<iframe id="bait" src="{self.framed_url}" width="900" height="700"></iframe>'
            )

        return Starlette(
            routes=[
                Route("/callback", callback, methods=["GET"]),
                Route("/attacker", attacker, methods=["GET"]),
            ]
        )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver(free_port())
    with ServerThread(running.app(), running.port):
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: run .ci/services.sh"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def authorization(stack: AuthStack, receiver: Receiver) -> tuple[str, str, str, str]:
    """A new client's authorization URL: (url, client_id, client_secret, PKCE verifier)."""
    registration = register(stack, [receiver.redirect_uri], client_name="Browser Test Client")
    assert registration.status_code == 201, registration.text
    body = registration.json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": body["client_id"],
            "redirect_uri": receiver.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "tag:read admin",
            "state": "browser",
            "resource": stack.mcp_url,
        }
    )
    return f"{stack.issuer}/authorize?{query}", body["client_id"], body["client_secret"], verifier


def test_allow_in_the_browser_sends_a_working_code(
    stack: AuthStack, receiver: Receiver, browser: Browser
) -> None:
    url, client_id, client_secret, verifier = authorization(stack, receiver)
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("#allow")
        assert "self-asserted" in page.inner_text("body")
        assert page.inner_text("#redirect-host") == f"http://127.0.0.1:{receiver.port}"
        page.click("#allow")
        page.wait_for_url(re.compile(re.escape(receiver.redirect_uri) + r"\?"))
        query = {key: values[0] for key, values in parse_qs(urlparse(page.url).query).items()}
    finally:
        page.close()
    assert query["state"] == "browser" and "code" in query
    token = httpx.post(
        f"{stack.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "code_verifier": verifier,
            "redirect_uri": receiver.redirect_uri,
            "client_id": client_id,
            "client_secret": client_secret,
            "resource": stack.mcp_url,
        },
    )
    assert token.status_code == 200 and token.json()["scope"] == "tag:read"


def test_deny_in_the_browser_sends_access_denied(
    stack: AuthStack, receiver: Receiver, browser: Browser
) -> None:
    url, *_ = authorization(stack, receiver)
    page = browser.new_page()
    try:
        page.goto(url)
        page.click("#deny")
        page.wait_for_url(re.compile(re.escape(receiver.redirect_uri) + r"\?"))
        query = {key: values[0] for key, values in parse_qs(urlparse(page.url).query).items()}
    finally:
        page.close()
    assert query["error"] == "access_denied" and "code" not in query


def test_the_consent_page_in_a_frame_renders_nothing_and_issues_nothing(
    stack: AuthStack, receiver: Receiver, browser: Browser
) -> None:
    receiver.framed_url, *_ = authorization(stack, receiver)
    logins_before, received_before = len(stack.idp.logins), len(receiver.received)
    page = browser.new_page()
    try:
        with page.expect_response(lambda response: "/oauth/callback" in response.url) as framed:
            page.goto(f"http://127.0.0.1:{receiver.port}/attacker")
        assert framed.value.status == 200  # the consent page was served to the frame...
        page.wait_for_timeout(500)
        child = next(frame for frame in page.frames if frame != page.main_frame)
        assert child.query_selector("#allow") is None  # ...and the browser refused to render it
        box = page.locator("#bait").bounding_box()
        assert box is not None
        for x, y in ((0.2, 0.8), (0.5, 0.5), (0.3, 0.9)):  # the victim clicks where a button might be
            page.mouse.click(box["x"] + box["width"] * x, box["y"] + box["height"] * y)
        page.wait_for_timeout(500)
    finally:
        page.close()
    assert len(stack.idp.logins) == logins_before + 1  # the login really happened inside the frame
    assert len(receiver.received) == received_before  # nothing reached the client

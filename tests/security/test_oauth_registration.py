"""Attack 2 of issue 13: registration abuse, and the rate limits on the open endpoints.

Before the fix, ``/register`` accepted ``javascript:``, ``data:``, ``file:``, ``vbscript:`` and
fragment redirect URIs and any http host, 300 registrations with a 500 KB ``client_name``, 20,000
redirect URIs, 100,000 contacts, and a newline in ``client_name`` that forged a log line; nothing
limited the request rate and registered clients stayed forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest

from services.demo.aws import DemoAws
from tagcompliance.store.oauth import OAuthClientRecord
from tests.auth.conftest import REDIRECT_URI, AuthStack, pkce_pair, running_stack

from .oauth_helpers import register


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(document.domain)//",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "https://app.example.com/cb#fragment",
        "http://evil.example.com/cb",
        "http://10.0.0.5/cb",
        "https://user:password@app.example.com/cb",
        "https://app.example.com/cb\r\nX-Injected: 1",
        "myapp:callback",
    ],
)
def test_dangerous_redirect_uris_are_refused(stack: AuthStack, uri: str) -> None:
    response = register(stack, [uri])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/oauth/callback",
        "http://127.0.0.1:33418/callback",
        "http://[::1]:33418/callback",
        "http://localhost:6274/oauth/callback",
        "com.example.app:/oauth2redirect",  # RFC 8252 private-use scheme
        "cursor://anysphere.cursor-retrieval/oauth/callback",
    ],
)
def test_https_loopback_and_private_use_redirect_uris_are_accepted(stack: AuthStack, uri: str) -> None:
    assert register(stack, [uri]).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_name", "x" * 500_000),  # the 500 KB name of the report
        ("client_name", "x" * 101),
        ("client_name", "evil\nINFO user root authorized client evil for tag:read admin"),
        ("contacts", [f"c{number}@example.com" for number in range(100_000)]),
        ("contacts", [f"c{number}@example.com" for number in range(11)]),
        ("client_uri", "https://example.com/" + "a" * 3000),
        ("jwks", {"keys": [{"kty": "RSA", "n": "x" * 2000}]}),
    ],
    ids=["500KB-name", "long-name", "newline-name", "100000-contacts", "11-contacts", "long-uri", "jwks"],
)
def test_oversized_or_forged_metadata_is_refused(stack: AuthStack, field: str, value: object) -> None:
    response = register(stack, [REDIRECT_URI], **{field: value})
    assert response.status_code in (400, 413), response.text[:200]
    if response.status_code == 400:
        assert response.json()["error"] == "invalid_client_metadata"


def test_twenty_thousand_redirect_uris_are_refused(stack: AuthStack) -> None:
    uris = [f"http://127.0.0.1:{1024 + number % 60000}/cb{number}" for number in range(20_000)]
    response = register(stack, uris)
    assert response.status_code in (400, 413)


def test_a_refused_name_never_reaches_the_log(stack: AuthStack, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        register(stack, [REDIRECT_URI], client_name="evil\nINFO forged line")
    assert "forged line" not in caplog.text


def test_ipv6_clients_are_counted_per_64() -> None:
    from tag_compliance_mcp.auth.ratelimit import client_address_key  # here: the module collects on main

    assert client_address_key("2001:db8:1:2:aaaa::1") == client_address_key("2001:db8:1:2:ffff::9")
    assert client_address_key("2001:db8:1:2::1") != client_address_key("2001:db8:1:3::1")
    assert client_address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_address_key("192.0.2.7") != client_address_key("192.0.2.8")


@pytest.fixture(scope="module", params=["memory", "redis"])
def limited(
    request: pytest.FixtureRequest, demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthStack]:
    """A gateway allowing 5 requests a minute per endpoint and address, counted in its memory or
    in Redis."""
    overrides: dict[str, object] = {"AUTH_RATE_LIMIT_PER_MINUTE": 5}
    if request.param == "redis":
        overrides["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    with running_stack(
        demo_aws, tmp_path_factory.mktemp(f"limited-{request.param}"), settings_overrides=overrides
    ) as running:
        assert running.runtime.cache.backend == request.param
        yield running


@pytest.mark.parametrize("endpoint", ["/register", "/authorize", "/token"])
def test_each_open_endpoint_is_rate_limited_per_address(limited: AuthStack, endpoint: str) -> None:
    """12 requests at 5 a minute: even split over two minute windows, some are refused."""
    statuses: list[int] = []
    with httpx.Client(base_url=limited.issuer, timeout=30) as http:
        for _ in range(12):
            if endpoint == "/register":
                response = http.post(endpoint, json={"redirect_uris": [REDIRECT_URI]})
            elif endpoint == "/authorize":
                response = http.get(
                    endpoint, params={"client_id": "nobody", "code_challenge": pkce_pair()[1]}
                )
            else:
                response = http.post(
                    endpoint, data={"grant_type": "authorization_code", "client_id": "nobody"}
                )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert 1 <= int(response.headers["retry-after"]) <= 60
                assert response.json()["error"] == "temporarily_unavailable"
    assert 429 in statuses and len([status for status in statuses if status != 429]) <= 10, statuses


def test_clients_never_used_are_removed(stack: AuthStack) -> None:
    store = stack.runtime.store
    long_ago = datetime.now(UTC) - timedelta(hours=25)  # AUTH_UNUSED_CLIENT_HOURS is 24
    stale = OAuthClientRecord(f"stale-{time.time_ns()}", None, {"redirect_uris": [REDIRECT_URI]}, long_ago)
    used = OAuthClientRecord(f"used-{time.time_ns()}", None, {"redirect_uris": [REDIRECT_URI]}, long_ago)
    store.save_oauth_client(stale)
    store.save_oauth_client(used)
    store.mark_oauth_client_used(used.client_id, long_ago + timedelta(minutes=5))
    stack.server._last_cleanup = 0.0  # the hourly sweep is due; the next registration runs it
    assert register(stack, [REDIRECT_URI]).status_code == 201
    assert store.get_oauth_client(stale.client_id) is None
    assert store.get_oauth_client(used.client_id) is not None

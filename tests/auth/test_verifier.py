"""The JWT verifier against an external issuer (a locally generated ES256/RS256 key set served on
loopback, standing in for the company IdP), and the transport rules."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tag_compliance_mcp.auth.config import build_auth, check_http_exposure, transport_security
from tag_compliance_mcp.auth.scopes import required_scope
from tag_compliance_mcp.auth.verifier import JwtTokenVerifier
from tag_compliance_mcp.settings import GatewaySettings
from tagcompliance.errors import TagComplianceError

from .conftest import ServerThread, free_port

pytestmark = pytest.mark.anyio
AUDIENCE = "https://tag-compliance.example.com/mcp"


class ExternalIssuer:
    """An OIDC issuer: discovery document and JWKS, with keys that can rotate."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.keys: list[Any] = [ECKey.generate_key("P-256", parameters={"kid": "ec-1"})]
        self.jwks_requests = 0

        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: Request) -> JSONResponse:
            self.jwks_requests += 1
            return JSONResponse({"keys": [key.as_dict(private=False) for key in self.keys]})

        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/keys", keys),
            ]
        )

    def token(self, key: Any | None = None, alg: str = "ES256", **overrides: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "00u1abcd",
            "aud": AUDIENCE,
            "cid": "okta-client",
            "scp": ["tag:read"],
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)


@pytest.fixture(scope="module")
def issuer() -> Iterator[ExternalIssuer]:
    port = free_port()
    external = ExternalIssuer(port)
    with ServerThread(external.app, port):
        yield external


async def test_external_issuer_token_is_verified(issuer: ExternalIssuer) -> None:
    verifier = JwtTokenVerifier(issuer.url, [AUDIENCE])
    access = await verifier.verify_token(issuer.token())
    assert access is not None
    assert (access.subject, access.client_id, access.scopes, access.resource) == (
        "00u1abcd",
        "okta-client",
        ["tag:read"],
        AUDIENCE,
    )
    # leeway: a token that expired a few seconds ago is still accepted, a minute ago it is not
    assert await verifier.verify_token(issuer.token(exp=int(time.time()) - 5)) is not None
    assert await verifier.verify_token(issuer.token(exp=int(time.time()) - 60)) is None
    # audience lists: accepted when one entry is ours
    assert await verifier.verify_token(issuer.token(aud=["other", AUDIENCE])) is not None
    assert await verifier.verify_token(issuer.token(aud=["other"])) is None


async def test_key_rotation_refreshes_on_unknown_kid_with_a_bounded_rate(issuer: ExternalIssuer) -> None:
    verifier = JwtTokenVerifier(issuer.url, [AUDIENCE], min_refresh_seconds=3600)
    assert await verifier.verify_token(issuer.token()) is not None
    fetched = issuer.jwks_requests
    # unknown kids within the refresh interval never reach the issuer
    for _ in range(5):
        stranger = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
        assert await verifier.verify_token(issuer.token(stranger, alg="RS256")) is None
    assert issuer.jwks_requests == fetched

    rotating = JwtTokenVerifier(issuer.url, [AUDIENCE], min_refresh_seconds=0)
    assert await rotating.verify_token(issuer.token()) is not None
    new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    issuer.keys.append(new_key)
    try:
        before = issuer.jwks_requests
        assert await rotating.verify_token(issuer.token(new_key, alg="RS256")) is not None
        assert issuer.jwks_requests == before + 1
        # a known kid is served from the cache
        assert await rotating.verify_token(issuer.token(new_key, alg="RS256")) is not None
        assert issuer.jwks_requests == before + 1
    finally:
        issuer.keys.remove(new_key)


async def test_issuer_metadata_must_name_the_issuer(issuer: ExternalIssuer) -> None:
    # configured as ".../" while the metadata says "...": exact comparison, refused
    verifier = JwtTokenVerifier(issuer.url + "/", [AUDIENCE])
    assert await verifier.verify_token(issuer.token(iss=issuer.url + "/")) is None


async def test_unreachable_issuer_refuses_tokens() -> None:
    verifier = JwtTokenVerifier(f"http://127.0.0.1:{free_port()}", [AUDIENCE], http_timeout_seconds=1)
    assert await verifier.verify_token("eyJhbGciOiJFUzI1NiIsImtpZCI6ImEifQ.e30.sig") is None


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "HS512"], []])
def test_symmetric_or_no_algorithms_cannot_be_configured(algorithms: list[str]) -> None:
    with pytest.raises(ValueError):
        JwtTokenVerifier("https://idp.example.com", [AUDIENCE], algorithms=algorithms)


def test_settings_build_the_resource_server() -> None:
    settings = GatewaySettings(
        AUTH_ISSUER_URL="https://example.okta.com/oauth2/default",
        AUTH_RESOURCE_URL=AUDIENCE,
        AUTH_AUDIENCES="api://tag-compliance",
        AUTH_ALGORITHMS="RS256",
    )
    auth = build_auth(settings, "0.0.0.0", 8080)
    assert auth is not None
    assert auth.verifier.audiences == [AUDIENCE, "api://tag-compliance"]
    assert auth.verifier.algorithms == ["RS256"]
    assert str(auth.settings.resource_server_url) == AUDIENCE
    assert auth.settings.required_scopes == ["tag:read"]
    assert check_http_exposure(settings, "0.0.0.0", auth, False).startswith("oauth")
    assert build_auth(GatewaySettings(), "127.0.0.1", 8080) is None
    default_resource = build_auth(GatewaySettings(AUTH_ISSUER_URL="http://127.0.0.1:9000"), "127.0.0.1", 8123)
    assert default_resource is not None and str(default_resource.settings.resource_server_url) == (
        "http://127.0.0.1:8123/mcp"
    )


def test_transport_rules() -> None:
    plain = GatewaySettings()
    with pytest.raises(TagComplianceError, match=r"refusing to serve HTTP on 0\.0\.0\.0"):
        check_http_exposure(plain, "0.0.0.0", None, True)
    with pytest.raises(TagComplianceError, match="--allow-unauthenticated-loopback"):
        check_http_exposure(plain, "127.0.0.1", None, False)
    assert "loopback" in check_http_exposure(plain, "127.0.0.1", None, True)
    assert "loopback" in check_http_exposure(
        GatewaySettings(AUTH_ALLOW_UNAUTHENTICATED_LOOPBACK="true"), "::1", None, False
    )
    assert transport_security(plain) is None
    behind_lb = transport_security(
        GatewaySettings(MCP_ALLOWED_HOSTS="mcp.example.com", MCP_ALLOWED_ORIGINS="https://claude.ai")
    )
    assert behind_lb is not None and behind_lb.enable_dns_rebinding_protection
    assert behind_lb.allowed_hosts == ["mcp.example.com"] and behind_lb.allowed_origins == [
        "https://claude.ai"
    ]


@pytest.mark.parametrize(
    ("tool", "arguments", "scope"),
    [
        ("check_tag_compliance", {}, "tag:read"),
        ("import_aws_tag_policy", {"policy_id": "p-1"}, "tag:read"),
        ("import_aws_tag_policy", {"save_to_file": False}, "tag:read"),
        ("import_aws_tag_policy", {"save_to_file": True}, "admin"),
        ("import_aws_tag_policy", {"save_to_file": "yes"}, "admin"),
        ("schedule_compliance_audit", {}, "admin"),
        ("schedule_compliance_audit", {"action": "list"}, "tag:read"),
        ("schedule_compliance_audit", {"action": "get"}, "tag:read"),
        ("schedule_compliance_audit", {"action": "pause"}, "admin"),
        ("schedule_compliance_audit", {"action": "bogus"}, "admin"),
        ("apply_tag_remediation", {"changes": []}, "tag:write"),
        ("apply_tag_remediation", {"dry_run": True}, "tag:write"),
        ("undo_tag_remediation", {"remediation_id": "rem_1"}, "tag:write"),
    ],
)
def test_tool_scopes(tool: str, arguments: dict[str, Any], scope: str) -> None:
    assert required_scope(tool, arguments) == scope


def test_tag_write_is_granted_only_to_the_configured_writers() -> None:
    from tag_compliance_mcp.auth.authserver import ScopePolicy
    from tag_compliance_mcp.auth.upstream import UserIdentity

    policy = ScopePolicy(
        frozenset({"root@example.com"}), frozenset(), frozenset({"ana@example.com"}), frozenset({"finops"})
    )

    def user(name: str, *groups: str) -> UserIdentity:
        return UserIdentity(user_id=name, subject=f"sub-{name}", email=name, groups=list(groups))

    assert policy.grantable(user("ana@example.com")) == {"tag:read", "tag:write"}
    assert policy.grantable(user("bo@example.com", "finops")) == {"tag:read", "tag:write"}
    assert policy.grantable(user("root@example.com")) == {"tag:read", "admin"}
    assert policy.grantable(user("eve@example.com", "admins")) == {"tag:read"}

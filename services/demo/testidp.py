"""A minimal OpenID Connect identity provider for TESTS AND THE DEMO ONLY.

It stands in for the company IdP (Okta, Entra ID, Cognito) the gateway delegates user login to, and
logs in every authorization request as one configured user with no login page and no password, so
it must never face real users: no production setting can start it (only the demo and the tests
build it, in-process, on a loopback port), and it lives in the demo package, which neither the
gateway image nor the built distribution holds. It speaks just enough OIDC for the gateway:

* discovery at ``/.well-known/openid-configuration`` and the signing keys at ``/jwks``;
* ``/authorize`` (authorization code, PKCE S256 required, ``nonce`` echoed into the ID token),
  redirect URIs checked exactly against the one registered client;
* ``/token`` (client_secret_basic or client_secret_post), codes single-use and kept hashed,
  answering with an RS256 ID token (``iss``, ``sub``, ``aud``, ``azp``, ``exp``, ``iat``, ``nonce``,
  ``email``, ``groups``).

``id_token_fault`` makes it misbehave on purpose (tests of the gateway's ID-token checks).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

IdTokenFault = Literal["signature", "nonce", "audience", "issuer", "expired"]
CODE_SECONDS = 120


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class TestUser:
    __test__ = False
    subject: str
    email: str
    groups: list[str] = field(default_factory=list)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    user: TestUser
    expires_at: float


@dataclass
class TestOidcProvider:
    """The test/demo IdP. ``user`` is who every login becomes; change it between logins if needed."""

    __test__ = False

    issuer: str
    redirect_uris: list[str]
    client_id: str = "tag-compliance-gateway"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: TestUser = field(default_factory=lambda: TestUser("demo-user-0001", "demo-user@example.com"))
    id_token_fault: IdTokenFault | None = None
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "test-idp-" + uuid.uuid4().hex[:8]}
        )
    )
    codes: dict[str, _Code] = field(default_factory=dict)  # sha256(code) -> code
    logins: list[str] = field(default_factory=list)  # subjects logged in, in order

    def __repr__(self) -> str:  # never shows the client secret
        return f"TestOidcProvider(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": "RS256"}]}

    # -- /authorize: the "login" ---------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != self.client_id:
            return _error(400, "invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri") or ""
        if redirect_uri not in self.redirect_uris:
            return _error(400, "invalid_request", "redirect_uri is not registered")

        def back(**params: str | None) -> Response:
            values = {key: value for key, value in params.items() if value is not None}
            values["state"] = query.get("state")
            sep = "&" if "?" in redirect_uri else "?"
            clean = {key: value for key, value in values.items() if value is not None}
            return RedirectResponse(f"{redirect_uri}{sep}{urlencode(clean)}", status_code=302)

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if "openid" not in (query.get("scope") or "").split():
            return back(error="invalid_scope", error_description="openid is required")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        code = secrets.token_urlsafe(24)
        self.codes[_hash(code)] = _Code(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            code_challenge=str(query.get("code_challenge")),
            nonce=query.get("nonce"),
            scope=str(query.get("scope")),
            user=self.user,
            expires_at=time.time() + CODE_SECONDS,
        )
        self.logins.append(self.user.subject)
        return back(code=code)

    # -- /token --------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        form = await request.form()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                basic_id, basic_secret = base64.b64decode(header[6:]).decode().split(":", 1)
            except (ValueError, UnicodeDecodeError):
                return _error(401, "invalid_client", "malformed Basic credentials")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        if client_id != self.client_id or not isinstance(secret, str):
            return _error(401, "invalid_client", "unknown client")
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            return _error(401, "invalid_client", "wrong client secret")
        if form.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "only authorization_code")
        code = self.codes.pop(_hash(str(form.get("code") or "")), None)
        if code is None or code.expires_at < time.time():
            return _error(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization request")
        verifier = str(form.get("code_verifier") or "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(challenge, code.code_challenge):
            return _error(400, "invalid_grant", "code_verifier does not match")
        body = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": code.scope,
            "id_token": self.id_token(code.user, code.nonce),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def id_token(self, user: TestUser, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject,
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "exp": now + 300,
            "email": user.email,
            "email_verified": True,
            "groups": user.groups,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        key = self.key
        match self.id_token_fault:
            case "signature":  # same kid, another key: only the signature is wrong
                key = RSAKey.generate_key(2048, parameters={"kid": self.key.kid})
            case "nonce":
                claims["nonce"] = "not-the-nonce-of-this-login"
            case "audience":
                claims["aud"] = claims["azp"] = "another-client"
            case "issuer":
                claims["iss"] = "https://evil.example.com"
            case "expired":
                claims["iat"], claims["exp"] = now - 900, now - 600
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, key)

    # -- the ASGI app --------------------------------------------------------------------------
    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse(self.metadata())

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
                Route("/jwks", jwks, methods=["GET"]),
                Route("/authorize", self.authorize, methods=["GET"]),
                Route("/token", self.token, methods=["POST"]),
            ]
        )


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)

"""A built-in OAuth 2.0 authorization server + identity provider for TESTS AND THE DEMO ONLY.

It auto-approves every authorization request as one configured user (no login page, no password),
so it must never face real users: nothing in the production settings can enable it. It implements
the parts of the flow the gateway relies on, with the SDK's handlers doing the protocol checks:

* dynamic client registration (RFC 7591), authorization code + PKCE (S256 only: the SDK refuses
  ``plain``), redirect URIs checked against the registration;
* 1-hour JWT access tokens (RS256, key generated at start, served at ``/jwks`` and announced as
  ``jwks_uri`` in ``/.well-known/openid-configuration``), audience = the RFC 8707 resource;
* rotating refresh tokens (a rotated-out token presented again revokes the whole grant);
* revocation (RFC 7009) of a grant through its access or refresh token;
* codes and refresh tokens kept only as SHA-256 hashes, in memory (not in ``oauth_sessions``).

Access tokens are self-contained JWTs: after revocation the resource server keeps accepting an
already-issued access token until it expires (at most 1 hour); refreshing stops at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_metadata, create_auth_routes
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .scopes import ALL_SCOPES, READ_SCOPE

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 86400
CODE_SECONDS = 300


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class IdpCode(AuthorizationCode):
    grant_id: str


class IdpRefreshToken(RefreshToken):
    grant_id: str


class IdpAccessToken(AccessToken):
    grant_id: str | None = None


@dataclass
class _Grant:
    client_id: str
    subject: str
    scopes: list[str]
    resource: str | None
    revoked: bool = False


@dataclass
class DemoIdentityProvider:
    __test__ = False
    """``OAuthAuthorizationServerProvider`` issuing JWTs; ``subject`` is the auto-approved user and
    ``grantable_scopes`` caps what that user may be granted."""

    issuer: str
    default_resource: str
    subject: str = "demo-user@example.com"
    grantable_scopes: list[str] = field(default_factory=lambda: list(ALL_SCOPES))
    access_token_seconds: int = ACCESS_TOKEN_SECONDS
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
    )
    clients: dict[str, OAuthClientInformationFull] = field(default_factory=dict)
    codes: dict[str, IdpCode] = field(default_factory=dict)  # sha256(code) -> code
    refresh_tokens: dict[str, IdpRefreshToken] = field(default_factory=dict)  # sha256(token) -> token
    used_refresh_tokens: dict[str, str] = field(default_factory=dict)  # sha256(token) -> grant id
    grants: dict[str, _Grant] = field(default_factory=dict)

    # -- registration -------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info

    # -- authorization code -------------------------------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        requested = params.scopes or [READ_SCOPE]
        scopes = [scope for scope in requested if scope in self.grantable_scopes]
        grant_id = uuid.uuid4().hex
        self.grants[grant_id] = _Grant(
            client.client_id or "", self.subject, scopes, params.resource or self.default_resource
        )
        code = secrets.token_urlsafe(32)
        self.codes[_hash(code)] = IdpCode(
            code=_hash(code),
            scopes=scopes,
            expires_at=time.time() + CODE_SECONDS,
            client_id=client.client_id or "",
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=self.subject,
            grant_id=grant_id,
        )
        return construct_redirect_uri(
            str(params.redirect_uri), code=code, state=params.state, iss=self.issuer
        )

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> IdpCode | None:
        code = self.codes.get(_hash(authorization_code))
        if code is None or code.client_id != client.client_id:
            return None
        return code

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: IdpCode
    ) -> OAuthToken:
        # One use only: a replayed code finds nothing (and the grant it produced is revoked).
        if self.codes.pop(authorization_code.code, None) is None:
            self._revoke_grant(authorization_code.grant_id)
            raise TokenError("invalid_grant", "authorization code already used")
        return self._issue(self.grants[authorization_code.grant_id], authorization_code.grant_id)

    # -- refresh ------------------------------------------------------------------------------
    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> IdpRefreshToken | None:
        digest = _hash(refresh_token)
        if digest in self.used_refresh_tokens:  # reuse of a rotated-out token: assume theft
            self._revoke_grant(self.used_refresh_tokens[digest])
            return None
        token = self.refresh_tokens.get(digest)
        if token is None or token.client_id != client.client_id:
            return None
        if token.expires_at is not None and token.expires_at < time.time():
            return None
        return token

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: IdpRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        grant = self.grants.get(refresh_token.grant_id)
        if grant is None or grant.revoked or self.refresh_tokens.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token revoked")
        self.used_refresh_tokens[refresh_token.token] = refresh_token.grant_id
        if scopes:
            if not set(scopes) <= set(grant.scopes):
                raise TokenError("invalid_scope", "cannot widen the granted scopes")
            grant = _Grant(grant.client_id, grant.subject, scopes, grant.resource)
            self.grants[refresh_token.grant_id].scopes = scopes
        return self._issue(grant, refresh_token.grant_id)

    # -- access tokens and revocation ---------------------------------------------------------
    async def load_access_token(self, token: str) -> IdpAccessToken | None:
        try:
            claims = jwt.decode(token, self.key, algorithms=["RS256"]).claims
        except Exception:  # any malformed or foreign token is simply unknown here
            return None
        grant = self.grants.get(str(claims.get("grant_id")))
        if grant is None or grant.revoked or int(claims.get("exp", 0)) < time.time():
            return None
        return IdpAccessToken(
            token=token,
            client_id=str(claims["client_id"]),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            subject=str(claims["sub"]),
            grant_id=str(claims["grant_id"]),
        )

    async def revoke_token(self, token: Any) -> None:
        grant_id = getattr(token, "grant_id", None)
        if grant_id:
            self._revoke_grant(grant_id)

    def _revoke_grant(self, grant_id: str) -> None:
        grant = self.grants.get(grant_id)
        if grant is not None:
            grant.revoked = True
        for digest in [d for d, t in self.refresh_tokens.items() if t.grant_id == grant_id]:
            del self.refresh_tokens[digest]

    def _issue(self, grant: _Grant, grant_id: str) -> OAuthToken:
        if grant.revoked:
            raise TokenError("invalid_grant", "grant revoked")
        now = int(time.time())
        access = self.sign(
            {
                "iss": self.issuer,
                "sub": grant.subject,
                "aud": grant.resource or self.default_resource,
                "client_id": grant.client_id,
                "scope": " ".join(grant.scopes),
                "iat": now,
                "nbf": now,
                "exp": now + self.access_token_seconds,
                "jti": uuid.uuid4().hex,
                "grant_id": grant_id,
            }
        )
        refresh = secrets.token_urlsafe(32)
        self.refresh_tokens[_hash(refresh)] = IdpRefreshToken(
            token=_hash(refresh),
            client_id=grant.client_id,
            scopes=grant.scopes,
            expires_at=now + REFRESH_TOKEN_SECONDS,
            resource=grant.resource,
            subject=grant.subject,
            grant_id=grant_id,
        )
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.access_token_seconds,
            scope=" ".join(grant.scopes),
            refresh_token=refresh,
        )

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, **(header or {})}, claims, self.key)

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "use": "sig", "alg": "RS256"}]}

    # -- the ASGI app -------------------------------------------------------------------------
    def app(self) -> Starlette:
        registration = ClientRegistrationOptions(
            enabled=True, valid_scopes=ALL_SCOPES, default_scopes=[READ_SCOPE]
        )
        revocation = RevocationOptions(enabled=True)
        # parsed the way AuthSettings does, keeping an empty path empty (issuers compare as strings)
        issuer = AuthSettings(issuer_url=self.issuer, resource_server_url=None).issuer_url
        routes = create_auth_routes(
            provider=self,
            issuer_url=issuer,
            client_registration_options=registration,
            revocation_options=revocation,
        )
        metadata = build_metadata(issuer, None, registration, revocation).model_dump(
            mode="json", exclude_none=True
        )
        metadata.update(
            jwks_uri=self.issuer.rstrip("/") + "/jwks",
            id_token_signing_alg_values_supported=["RS256"],
            subject_types_supported=["public"],
            response_types_supported=["code"],
        )
        metadata["issuer"] = self.issuer

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        async def openid_configuration(request: Request) -> JSONResponse:
            return JSONResponse(metadata)

        routes.append(Route("/jwks", jwks, methods=["GET"]))
        routes.append(Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]))
        return Starlette(routes=routes)

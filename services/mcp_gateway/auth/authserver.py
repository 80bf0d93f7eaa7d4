"""The gateway as the OAuth 2.1 authorization server of the MCP flow, login delegated to the company IdP.

The SDK's handlers speak the protocol (``/authorize``, ``/token``, ``/register``, ``/revoke`` and
``/.well-known/oauth-authorization-server``; PKCE S256 only, ``plain`` refused; redirect URIs checked
against the registration); this provider decides and remembers:

* ``/authorize`` sends the browser to the IdP (OIDC, PKCE S256 and a nonce). The request the MCP
  client made travels in ``state`` as a short-lived JWT signed with the gateway's key, so any gateway
  task can finish the login; the IdP-side PKCE verifier is derived from that state's id.
* ``/oauth/callback`` exchanges the IdP's code, verifies its ID token (``upstream.py``), maps the
  user (``AUTH_USER_CLAIM``, admin from ``AUTH_ADMIN_USERS`` / ``AUTH_ADMIN_GROUPS``) and returns an
  MCP authorization code to the client. The gateway never sees a password. Clients ask for every
  scope the resource advertises (``tag:read admin``); a user is granted the subset ``ScopePolicy``
  allows, and ``/token`` names it in ``scope`` (RFC 6749 §3.3, §5.1).
* Access tokens are RS256 JWTs (1 hour) signed with the gateway's key and checked by the resource
  server's ``JwtTokenVerifier``, which also requires the token's ``oauth_sessions`` row to be live:
  revocation takes effect at once, not at expiry. Refresh tokens are opaque and rotate on every
  use; presenting a rotated-out one (a stolen copy) revokes the whole grant, as does replaying a code.
* Everything secret is stored as a SHA-256 digest only: access and refresh tokens
  (``oauth_sessions``), codes (``oauth_authorization_codes``), client secrets (``oauth_clients``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import REVOCATION_PATH, TOKEN_PATH, create_auth_routes
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import AnyUrl
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from tagcompliance.store.base import OAuthClientRecord, OAuthCodeRecord, OAuthSessionRecord, Store

from .keys import derived_secret
from .scopes import ADMIN_SCOPE, ALL_SCOPES, READ_SCOPE
from .upstream import OidcUpstream, UpstreamLoginError, UserIdentity

logger = logging.getLogger("tagcompliance.gateway.auth")

CALLBACK_PATH = "/oauth/callback"
JWKS_PATH = "/oauth/jwks"
CODE_SECONDS = 300
LOGIN_SECONDS = 600
STATE_TYPE = "oauth-login+jwt"
CLEANUP_SECONDS = 3600


def token_hash(value: str) -> str:
    """How every token, code and client secret is stored: its SHA-256 hex digest."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class StoredCode(AuthorizationCode):
    grant_id: str


class StoredRefreshToken(RefreshToken):
    grant_id: str
    user_id: str


class StoredAccessToken(AccessToken):
    grant_id: str


@dataclass(frozen=True, slots=True)
class ScopePolicy:
    """Which scopes a user may be granted: ``tag:read`` for everyone the IdP lets in, ``admin`` only
    for the configured users or members of the configured groups."""

    admin_users: frozenset[str]
    admin_groups: frozenset[str]

    def grantable(self, identity: UserIdentity) -> set[str]:
        names = {identity.user_id, identity.subject, identity.email or ""}
        admin = bool(names & self.admin_users) or bool(set(identity.groups) & self.admin_groups)
        return {READ_SCOPE, ADMIN_SCOPE} if admin else {READ_SCOPE}


class GatewayAuthorizationServer:
    """``mcp.server.auth.provider.OAuthAuthorizationServerProvider`` backed by the ``Store``."""

    def __init__(
        self,
        *,
        store: Store,
        issuer: str,
        resource: str,
        key: RSAKey,
        upstream: OidcUpstream,
        scope_policy: ScopePolicy,
        access_token_seconds: int = 3600,
        refresh_token_seconds: int = 30 * 86400,
    ) -> None:
        self.store = store
        self.issuer = issuer.rstrip("/")
        self.resource = resource
        self.key = key
        self.upstream = upstream
        self.scope_policy = scope_policy
        self.access_token_seconds = access_token_seconds
        self.refresh_token_seconds = refresh_token_seconds
        self.callback_url = self.issuer + CALLBACK_PATH
        self._pkce_secret = derived_secret(key, "upstream-pkce")
        self._last_cleanup = 0.0

    def __repr__(self) -> str:
        return f"GatewayAuthorizationServer(issuer={self.issuer!r}, upstream={self.upstream!r})"

    def public_keys(self) -> KeySet:
        return KeySet([RSAKey.import_key(self.key.as_dict(private=False))])

    # -- registration (RFC 7591) ----------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        """The client, with ``client_secret`` holding the secret's digest (``HashedSecretAuthenticator``
        compares digests; the raw secret exists only in the registration response).

        Its ``scope`` is widened to every scope this server supports, so the SDK's ``/authorize``
        check against the registration accepts ``tag:read admin`` from a client registered with
        ``tag:read`` (before ``admin`` was advertised, or with a narrower configuration). Registration
        is open, so the registered scope carries no authority: what a login gets is decided by
        ``ScopePolicy`` for the user."""
        record = await anyio.to_thread.run_sync(self.store.get_oauth_client, client_id)
        if record is None:
            return None
        registered = str(record.metadata.get("scope") or "").split()
        return OAuthClientInformationFull.model_validate(
            {
                **record.metadata,
                "client_id": record.client_id,
                "client_secret": record.client_secret_hash,
                "scope": " ".join(dict.fromkeys([*registered, *ALL_SCOPES])),
            }
        )

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if client_info.client_id is None:
            raise ValueError("the SDK always assigns a client_id before registering")
        metadata = client_info.model_dump(
            mode="json", exclude_none=True, exclude={"client_id", "client_secret"}
        )
        secret_hash = token_hash(client_info.client_secret) if client_info.client_secret else None
        record = OAuthClientRecord(client_info.client_id, secret_hash, metadata, datetime.now(UTC))
        await anyio.to_thread.run_sync(self.store.save_oauth_client, record)
        logger.info("registered OAuth client %s (%s)", client_info.client_id, client_info.client_name or "")

    # -- authorization: off to the IdP, and back ----------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.resource.rstrip("/"):
            raise AuthorizeError("invalid_target", f"this server issues tokens for {self.resource} only")
        now = int(time.time())
        login_id = uuid.uuid4().hex
        nonce = secrets.token_urlsafe(24)
        state = jwt.encode(
            {"alg": "RS256", "kid": self.key.kid, "typ": STATE_TYPE},
            {
                "iss": self.issuer,
                "aud": self.callback_url,
                "iat": now,
                "exp": now + LOGIN_SECONDS,
                "jti": login_id,
                "nonce": nonce,
                "client_id": client.client_id,
                "redirect_uri": str(params.redirect_uri),
                "redirect_uri_explicit": params.redirect_uri_provided_explicitly,
                "code_challenge": params.code_challenge,
                "scopes": params.scopes or [READ_SCOPE],
                "state": params.state,
                "resource": params.resource,
            },
            self.key,
        )
        challenge = _b64(hashlib.sha256(self._upstream_verifier(login_id).encode()).digest())
        try:
            return await self.upstream.authorization_url(self.callback_url, state, nonce, challenge)
        except UpstreamLoginError as error:
            logger.warning("cannot start the IdP login: %s", error)
            raise AuthorizeError(
                "temporarily_unavailable", "the identity provider cannot be reached"
            ) from None

    def _upstream_verifier(self, login_id: str) -> str:
        return _b64(hmac.new(self._pkce_secret, login_id.encode(), hashlib.sha256).digest())

    async def callback(self, request: Request) -> Response:
        """``GET /oauth/callback``: the IdP's answer; ends with a redirect to the MCP client."""
        login = self._read_state(request.query_params.get("state"))
        if login is None:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "the login state is missing, expired or not issued by this server",
                },
                status_code=400,
                headers={"Cache-Control": "no-store"},
            )

        def back_to_client(**params: str | None) -> Response:
            location = construct_redirect_uri(
                str(login["redirect_uri"]), **params, state=login.get("state"), iss=self.issuer
            )
            return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})

        if upstream_error := request.query_params.get("error"):
            logger.info("the IdP refused the login: %s", upstream_error[:100])
            return back_to_client(
                error="access_denied", error_description="the identity provider refused the login"
            )
        upstream_code = request.query_params.get("code")
        if not upstream_code:
            return back_to_client(
                error="invalid_request", error_description="the identity provider sent no code"
            )
        try:
            identity = await self.upstream.complete_login(
                upstream_code,
                self.callback_url,
                self._upstream_verifier(str(login["jti"])),
                str(login["nonce"]),
            )
        except UpstreamLoginError as error:
            logger.warning("IdP login refused: %s", error)
            return back_to_client(error="access_denied", error_description=str(error))
        grantable = self.scope_policy.grantable(identity)
        scopes = [scope for scope in login["scopes"] if scope in grantable]
        if not scopes:
            return back_to_client(
                error="access_denied",
                error_description=f"{identity.user_id} may not be granted {' '.join(login['scopes'])}",
            )
        code = secrets.token_urlsafe(32)
        now = time.time()
        record = OAuthCodeRecord(
            code_hash=token_hash(code),
            grant_id=uuid.uuid4().hex,
            client_id=str(login["client_id"]),
            user_id=identity.user_id,
            scopes=scopes,
            code_challenge=str(login["code_challenge"]),
            redirect_uri=str(login["redirect_uri"]),
            redirect_uri_provided_explicitly=bool(login["redirect_uri_explicit"]),
            resource=login.get("resource"),
            expires_at=_utc(now + CODE_SECONDS),
            created_at=_utc(now),
        )
        await anyio.to_thread.run_sync(self.store.save_oauth_code, record)
        if now - self._last_cleanup > CLEANUP_SECONDS:  # dead codes and token pairs, at most hourly
            self._last_cleanup = now
            removed = await anyio.to_thread.run_sync(self.store.delete_expired_oauth, _utc(now))
            logger.info("removed %d expired OAuth codes and token pairs", removed)
        logger.info(
            "user %s authorized client %s for %s", identity.user_id, record.client_id, " ".join(scopes)
        )
        return back_to_client(code=code)

    def _read_state(self, state: str | None) -> dict[str, Any] | None:
        if not state or len(state) > 8192:
            return None
        try:
            decoded = jwt.decode(state, self.key, algorithms=["RS256"])
            if decoded.header.get("typ") != STATE_TYPE:
                return None
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.callback_url},
                exp={"essential": True},
                jti={"essential": True},
                nonce={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None
        return decoded.claims

    # -- authorization code --------------------------------------------------------------------
    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> StoredCode | None:
        record = await anyio.to_thread.run_sync(self.store.get_oauth_code, token_hash(authorization_code))
        if record is None or record.client_id != client.client_id:
            return None
        # A used code is returned too: the exchange then sees the replay and revokes the grant.
        return StoredCode(
            code=record.code_hash,
            scopes=record.scopes,
            expires_at=record.expires_at.timestamp(),
            client_id=record.client_id,
            code_challenge=record.code_challenge,
            redirect_uri=AnyUrl(record.redirect_uri),
            redirect_uri_provided_explicitly=record.redirect_uri_provided_explicitly,
            resource=record.resource,
            subject=record.user_id,
            grant_id=record.grant_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: StoredCode
    ) -> OAuthToken:
        now = datetime.now(UTC)
        if not await anyio.to_thread.run_sync(self.store.consume_oauth_code, authorization_code.code, now):
            revoked = await anyio.to_thread.run_sync(
                self.store.revoke_oauth_grant, authorization_code.grant_id, now
            )
            logger.warning(
                "authorization code of client %s presented again: grant %s revoked (%d token pairs)",
                client.client_id,
                authorization_code.grant_id,
                revoked,
            )
            raise TokenError("invalid_grant", "authorization code already used")
        token, session = self._new_pair(
            authorization_code.grant_id,
            str(client.client_id),
            authorization_code.subject or "unknown",
            authorization_code.scopes,
        )
        await anyio.to_thread.run_sync(self.store.create_oauth_session, session)
        return token

    # -- refresh (rotating) --------------------------------------------------------------------
    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> StoredRefreshToken | None:
        digest = token_hash(refresh_token)
        record = await anyio.to_thread.run_sync(
            lambda: self.store.find_oauth_session(refresh_token_hash=digest)
        )
        if record is None or record.client_id != client.client_id:
            return None
        if record.rotated_at is not None:  # a rotated-out token came back: assume it was stolen
            now = datetime.now(UTC)
            await anyio.to_thread.run_sync(self.store.revoke_oauth_grant, record.grant_id, now)
            logger.warning(
                "rotated-out refresh token reused: grant %s of %s revoked", record.grant_id, client.client_id
            )
            return None
        if record.revoked_at is not None:
            return None
        expires = record.refresh_expires_at
        if expires is not None and expires <= datetime.now(UTC):
            return None
        return StoredRefreshToken(
            token=digest,
            client_id=record.client_id,
            scopes=record.scopes,
            expires_at=int(expires.timestamp()) if expires else None,
            resource=record.resource,
            subject=record.user_id,
            grant_id=record.grant_id,
            user_id=record.user_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: StoredRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        if scopes and not set(scopes) <= set(refresh_token.scopes):
            raise TokenError("invalid_scope", "a refresh cannot widen the granted scopes")
        token, successor = self._new_pair(
            refresh_token.grant_id,
            str(client.client_id),
            refresh_token.user_id,
            scopes or refresh_token.scopes,
        )
        rotated = await anyio.to_thread.run_sync(
            self.store.rotate_oauth_session, refresh_token.token, successor, datetime.now(UTC)
        )
        if not rotated:
            raise TokenError("invalid_grant", "refresh token already used or revoked")
        return token

    # -- access tokens and revocation (RFC 7009) ----------------------------------------------
    async def load_access_token(self, token: str) -> StoredAccessToken | None:
        record = await self._live_session(token)
        if record is None:
            return None
        return StoredAccessToken(
            token=token,
            client_id=record.client_id,
            scopes=record.scopes,
            expires_at=int(record.expires_at.timestamp()),
            resource=record.resource,
            subject=record.user_id,
            grant_id=record.grant_id,
        )

    async def access_token_active(self, token: str) -> bool:
        """For the resource server: the token's session exists, is not revoked and has not expired."""
        return await self._live_session(token) is not None

    async def _live_session(self, token: str) -> OAuthSessionRecord | None:
        digest = token_hash(token)
        record = await anyio.to_thread.run_sync(
            lambda: self.store.find_oauth_session(access_token_hash=digest)
        )
        if record is None or record.revoked_at is not None or record.expires_at <= datetime.now(UTC):
            return None
        return record

    async def revoke_token(self, token: StoredAccessToken | StoredRefreshToken) -> None:
        count = await anyio.to_thread.run_sync(
            self.store.revoke_oauth_grant, token.grant_id, datetime.now(UTC)
        )
        logger.info("grant %s of client %s revoked (%d token pairs)", token.grant_id, token.client_id, count)

    def _new_pair(
        self, grant_id: str, client_id: str, user_id: str, scopes: list[str]
    ) -> tuple[OAuthToken, OAuthSessionRecord]:
        now = int(time.time())
        access = jwt.encode(
            {"alg": "RS256", "kid": self.key.kid, "typ": "at+jwt"},
            {
                "iss": self.issuer,
                "sub": user_id,
                "aud": self.resource,
                "client_id": client_id,
                "scope": " ".join(scopes),
                "iat": now,
                "nbf": now,
                "exp": now + self.access_token_seconds,
                "jti": uuid.uuid4().hex,
                "sid": grant_id,
            },
            self.key,
        )
        refresh = secrets.token_urlsafe(32)
        session = OAuthSessionRecord(
            grant_id=grant_id,
            client_id=client_id,
            user_id=user_id,
            access_token_hash=token_hash(access),
            refresh_token_hash=token_hash(refresh),
            scopes=list(scopes),
            expires_at=_utc(now + self.access_token_seconds),
            refresh_expires_at=_utc(now + self.refresh_token_seconds),
            resource=self.resource,
            created_at=_utc(now),
        )
        token = OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.access_token_seconds,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )
        return token, session

    # -- routes ---------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        registration = ClientRegistrationOptions(
            enabled=True, valid_scopes=list(ALL_SCOPES), default_scopes=[READ_SCOPE]
        )
        revocation = RevocationOptions(enabled=True)
        issuer_url = AuthSettings(issuer_url=self.issuer, resource_server_url=None).issuer_url
        routes = create_auth_routes(
            provider=self,
            issuer_url=issuer_url,
            client_registration_options=registration,
            revocation_options=revocation,
        )
        # /token and /revoke authenticate clients against the stored secret digests.
        authenticator = HashedSecretAuthenticator(self)
        replacements = {
            TOKEN_PATH: TokenHandler(self, authenticator).handle,
            REVOCATION_PATH: RevocationHandler(self, authenticator).handle,
        }
        routes = [
            Route(route.path, _client_endpoint(replacements[route.path]), methods=["POST", "OPTIONS"])
            if route.path in replacements
            else route
            for route in routes
        ]
        keys = {
            "keys": [{**key, "use": "sig", "alg": "RS256"} for key in self.public_keys().as_dict()["keys"]]
        }

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(keys)

        routes.append(Route(CALLBACK_PATH, self.callback, methods=["GET"]))
        routes.append(Route(JWKS_PATH, jwks, methods=["GET"]))
        return routes


def _client_endpoint(handler: Any) -> ASGIApp:
    """Wrapped as the SDK wraps its own client endpoints: body size limit, then CORS."""
    limited = RequestBodyLimitMiddleware(request_response(handler), DEFAULT_MAX_REQUEST_BODY_SIZE)
    return CORSMiddleware(
        limited,
        allow_origins="*",
        allow_methods=["POST", "OPTIONS"],
        allow_headers=[MCP_PROTOCOL_VERSION_HEADER],
    )


class HashedSecretAuthenticator(ClientAuthenticator):
    """The SDK's client authentication, comparing SHA-256 digests of client secrets."""

    def __init__(self, server: GatewayAuthorizationServer) -> None:
        super().__init__(server)  # type: ignore[arg-type]
        self.server = server

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        candidates = [value for value in (form.get("client_secret"),) if isinstance(value, str)]
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode("utf-8")
                candidates.append(_unquote(decoded.split(":", 1)[1]))
            except (ValueError, UnicodeDecodeError, IndexError):
                pass  # the SDK reports the malformed header
        return await ClientAuthenticator(_PresentedSecret(self.server, candidates)).authenticate_request(
            request
        )  # type: ignore[arg-type]


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


class _PresentedSecret:
    """Looks clients up for one request: the stored digest is swapped for the presented secret when
    they match (and for a random value when not), so the SDK's constant-time comparison decides."""

    def __init__(self, server: GatewayAuthorizationServer, candidates: list[str]) -> None:
        self.server = server
        self.candidates = candidates

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        client = await self.server.get_client(client_id)
        if client is None or not client.client_secret:
            return client
        stored = client.client_secret
        match = next(
            (value for value in self.candidates if hmac.compare_digest(token_hash(value), stored)),
            secrets.token_hex(32),
        )
        return client.model_copy(update={"client_secret": match})

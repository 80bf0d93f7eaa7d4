"""The gateway as the OAuth 2.1 authorization server of the MCP flow, login delegated to the company IdP.

The SDK's handlers speak the protocol (``/authorize``, ``/token``, ``/register``, ``/revoke`` and
``/.well-known/oauth-authorization-server``; PKCE S256 only, ``plain`` refused; redirect URIs checked
against the registration); this provider decides and remembers:

* ``/authorize`` sends the browser to the IdP (OIDC, PKCE S256 and a nonce). The request the MCP
  client made travels in ``state`` as a short-lived JWT signed with the gateway's key, so any gateway
  task can finish the login; the IdP-side PKCE verifier is derived from that state's id.
* ``/oauth/callback`` exchanges the IdP's code, verifies its ID token (``upstream.py``), maps the
  user (``AUTH_USER_CLAIM``, admin from ``AUTH_ADMIN_USERS`` / ``AUTH_ADMIN_GROUPS``) and shows the
  consent page (``consent.py``); only the user's Allow issues an MCP authorization code to the
  client. An Allow is remembered per (user, client, redirect URI, exact scopes) for
  ``AUTH_CONSENT_DAYS`` (listed and revoked at ``/oauth/consents``), so a newly asked ``admin``
  asks again. The gateway never sees a password.
* Errors are redirected to a client only when the user has consented to that client and redirect
  URI (or clicked Deny on a page naming it): registration is open, so an unknown client's redirect
  URI would turn the gateway into an open redirector. Other errors are shown as a page.
* Abuse: registrations are bounded and redirect URIs checked (``clients.py``), ``/register``,
  ``/authorize`` and ``/token`` are rate-limited per client address (``ratelimit.py``), clients
  never used within ``AUTH_UNUSED_CLIENT_HOURS`` are removed, a code dies with a wrong PKCE
  verifier, and ``/token`` refuses another ``resource`` (``invalid_target``, RFC 8707). Clients ask for every
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
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
from mcp.server.auth.routes import (
    AUTHORIZATION_PATH,
    REGISTRATION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    build_metadata,
)
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

from tagcompliance.cache import Cache
from tagcompliance.store.oauth import (
    OAuthClientRecord,
    OAuthCodeRecord,
    OAuthConsentRecord,
    OAuthSessionRecord,
    OAuthStore,
)

from .clients import ClientPolicyError, MetadataDocumentClients, check_registration, is_metadata_document_id
from .consent import CONSENT_PATH, CSRF_COOKIE_PREFIX, consent_page, message_page
from .keys import derived_secret
from .ratelimit import RateLimiter
from .scopes import ADMIN_SCOPE, ALL_SCOPES, READ_SCOPE
from .upstream import OidcUpstream, UpstreamLoginError, UserIdentity

logger = logging.getLogger("tagcompliance.gateway.auth")

CALLBACK_PATH = "/oauth/callback"
JWKS_PATH = "/oauth/jwks"
CONSENTS_PATH = "/oauth/consents"
METADATA_PATH = "/.well-known/oauth-authorization-server"
CODE_SECONDS = 300
LOGIN_SECONDS = 600
STATE_TYPE = "oauth-login+jwt"
CONSENT_TYPE = "oauth-consent+jwt"
CLEANUP_SECONDS = 3600
NO_STORE = {"Cache-Control": "no-store"}


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
    """``mcp.server.auth.provider.OAuthAuthorizationServerProvider`` backed by an ``OAuthStore``."""

    def __init__(
        self,
        *,
        store: OAuthStore,
        issuer: str,
        resource: str,
        key: RSAKey,
        upstream: OidcUpstream,
        scope_policy: ScopePolicy,
        cache: Cache,
        access_token_seconds: int = 3600,
        refresh_token_seconds: int = 30 * 86400,
        consent_days: int = 30,
        rate_limit_per_minute: int = 60,
        unused_client_hours: int = 24,
        leeway_seconds: int = 30,
        metadata_document_fetch: Callable[[str], Awaitable[bytes]] | None = None,
    ) -> None:
        """``metadata_document_fetch`` replaces the https fetch of Client ID Metadata Documents
        (tests serve documents without a public https host)."""
        self.store = store
        self.issuer = issuer.rstrip("/")
        self.resource = resource
        self.key = key
        self.upstream = upstream
        self.scope_policy = scope_policy
        self.access_token_seconds = access_token_seconds
        self.refresh_token_seconds = refresh_token_seconds
        self.cache = cache
        self.consent_days = consent_days
        self.unused_client_hours = unused_client_hours
        self.leeway_seconds = leeway_seconds
        self.limiter = RateLimiter(cache, rate_limit_per_minute)
        self.metadata_clients = MetadataDocumentClients(cache, metadata_document_fetch)
        self.callback_url = self.issuer + CALLBACK_PATH
        self.consent_url = self.issuer + CONSENT_PATH
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
        ``ScopePolicy`` for the user.

        A ``client_id`` that is an https URL names a Client ID Metadata Document (``clients.py``)."""
        if is_metadata_document_id(client_id):
            return await self.metadata_clients.get(client_id)
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
        logger.info(
            "registered OAuth client %s (%r)", client_info.client_id, (client_info.client_name or "")[:100]
        )
        await self._cleanup_if_due()

    async def _cleanup_if_due(self) -> None:
        """Dead codes, token pairs and consents, and clients never used: at most hourly."""
        now = time.time()
        if now - self._last_cleanup <= CLEANUP_SECONDS:
            return
        self._last_cleanup = now
        removed = await anyio.to_thread.run_sync(self.store.delete_expired_oauth, _utc(now))
        unused = await anyio.to_thread.run_sync(
            self.store.delete_unused_oauth_clients, _utc(now - self.unused_client_hours * 3600)
        )
        logger.info(
            "removed %d expired OAuth codes, token pairs and consents, %d unused clients", removed, unused
        )

    # -- authorization: off to the IdP, and back ----------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.resource.rstrip("/"):
            raise AuthorizeError("invalid_target", f"this server issues tokens for {self.resource} only")
        login_id = uuid.uuid4().hex
        nonce = secrets.token_urlsafe(24)
        state = self._sign_request(
            STATE_TYPE,
            self.callback_url,
            login_id,
            {
                "nonce": nonce,
                "client_id": client.client_id,
                "redirect_uri": str(params.redirect_uri),
                "redirect_uri_explicit": params.redirect_uri_provided_explicitly,
                "code_challenge": params.code_challenge,
                "scopes": params.scopes or [READ_SCOPE],
                "state": params.state,
                "resource": params.resource,
            },
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
        """``GET /oauth/callback``: the IdP's answer. Ends with the consent page, or with the code when
        the user's consent for this client, redirect URI and scopes is remembered."""
        login = self._read_signed(request.query_params.get("state"), STATE_TYPE, self.callback_url, "nonce")
        if login is None:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "the login state is missing, expired or not issued by this server",
                },
                status_code=400,
                headers=NO_STORE,
            )
        if upstream_error := request.query_params.get("error"):
            logger.info("the IdP refused the login: %r", upstream_error[:100])
            return message_page("Sign-in refused", "The identity provider refused the sign-in.", 403)
        upstream_code = request.query_params.get("code")
        if not upstream_code:
            return message_page("Sign-in failed", "The identity provider sent no code.", 400)
        try:
            identity = await self.upstream.complete_login(
                upstream_code,
                self.callback_url,
                self._upstream_verifier(str(login["jti"])),
                str(login["nonce"]),
            )
        except UpstreamLoginError as error:
            logger.warning("IdP login refused: %s", error)
            return message_page("Sign-in failed", f"The sign-in could not be completed: {error}", 403)
        grantable = self.scope_policy.grantable(identity)
        scopes = [scope for scope in login["scopes"] if scope in grantable]
        if not scopes:
            description = f"{identity.user_id} may not be granted {' '.join(login['scopes'])}"
            if await self._consented_redirect(identity.user_id, login):
                return self._back_to_client(login, error="access_denied", error_description=description)
            return message_page("Access refused", description, 403)
        if self.consent_days > 0:
            remembered = await anyio.to_thread.run_sync(
                self.store.find_oauth_consent,
                identity.user_id,
                str(login["client_id"]),
                str(login["redirect_uri"]),
                scopes,
                datetime.now(UTC),
            )
            if remembered is not None:
                return await self._issue_code(login, identity.user_id, scopes, "remembered consent")
        return await self._consent_page(login, identity.user_id, scopes)

    async def _consent_page(self, login: dict[str, Any], user_id: str, scopes: list[str]) -> Response:
        client = await self.get_client(str(login["client_id"]))
        if client is None:  # removed (or its metadata document gone) since /authorize
            return message_page("Unknown application", "The application is no longer registered.", 400)
        csrf = secrets.token_urlsafe(32)
        request_id = uuid.uuid4().hex
        carried = (
            "client_id",
            "redirect_uri",
            "redirect_uri_explicit",
            "code_challenge",
            "state",
            "resource",
        )
        request_token = self._sign_request(
            CONSENT_TYPE,
            self.consent_url,
            request_id,
            {
                "csrf": token_hash(csrf),
                "user_id": user_id,
                "scopes": scopes,
                **{name: login.get(name) for name in carried},
            },
        )
        response = consent_page(
            client_id=str(client.client_id),
            client_name=client.client_name,
            redirect_uri=str(login["redirect_uri"]),
            user_id=user_id,
            scopes=scopes,
            request_token=request_token,
            csrf_token=csrf,
        )
        response.set_cookie(
            CSRF_COOKIE_PREFIX + request_id,
            csrf,
            max_age=LOGIN_SECONDS,
            path=CONSENT_PATH,
            secure=self.issuer.startswith("https://"),
            httponly=True,
            samesite="strict",
        )
        return response

    async def consent(self, request: Request) -> Response:
        """``POST /oauth/consent``: the user's Allow or Deny."""
        form = await request.form()
        decision, csrf = form.get("decision"), form.get("csrf")
        token = form.get("request")
        claims = self._read_signed(
            token if isinstance(token, str) else None, CONSENT_TYPE, self.consent_url, "csrf"
        )
        if claims is None or decision not in ("allow", "deny") or not isinstance(csrf, str):
            return message_page(
                "Consent request invalid",
                "This consent request is missing, expired or not from this server.",
                400,
            )
        cookie_name = CSRF_COOKIE_PREFIX + str(claims["jti"])
        cookie = request.cookies.get(cookie_name, "")
        if not (
            cookie
            and hmac.compare_digest(cookie.encode(), csrf.encode())
            and hmac.compare_digest(token_hash(csrf), str(claims["csrf"]))
        ):
            logger.warning("consent answer without its CSRF cookie for client %s", claims.get("client_id"))
            return message_page("Consent refused", "This answer did not come from the consent page.", 403)
        answers = await anyio.to_thread.run_sync(
            self.cache.increment, f"oauth:consent:{claims['jti']}", LOGIN_SECONDS
        )
        if answers is not None and answers > 1:  # None: the cache is down; the request still expires
            return message_page("Already answered", "This consent request was already answered.", 400)
        user_id, scopes = str(claims["user_id"]), [str(scope) for scope in claims["scopes"]]
        if decision == "deny":
            logger.info("user %s denied client %s", user_id, claims["client_id"])
            response = self._back_to_client(
                claims, error="access_denied", error_description="the user denied access", status_code=303
            )
        else:
            if self.consent_days > 0:
                now = datetime.now(UTC)
                record = OAuthConsentRecord(
                    consent_id=uuid.uuid4().hex,
                    user_id=user_id,
                    client_id=str(claims["client_id"]),
                    redirect_uri=str(claims["redirect_uri"]),
                    scopes=scopes,
                    created_at=now,
                    expires_at=_utc(now.timestamp() + self.consent_days * 86400),
                )
                await anyio.to_thread.run_sync(self.store.save_oauth_consent, record)
            response = await self._issue_code(claims, user_id, scopes, "consent", status_code=303)
        response.delete_cookie(cookie_name, path=CONSENT_PATH)
        return response

    async def _consented_redirect(self, user_id: str, login: dict[str, Any]) -> bool:
        """Whether the user consented to this client and redirect URI (for any scopes): only then is
        an error sent there rather than shown."""
        consents = await anyio.to_thread.run_sync(self.store.list_oauth_consents, user_id, datetime.now(UTC))
        return any(
            consent.client_id == login["client_id"] and consent.redirect_uri == login["redirect_uri"]
            for consent in consents
        )

    def _back_to_client(
        self, login: dict[str, Any], *, status_code: int = 302, **params: str | None
    ) -> Response:
        location = construct_redirect_uri(
            str(login["redirect_uri"]), **params, state=login.get("state"), iss=self.issuer
        )
        headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
        return RedirectResponse(location, status_code=status_code, headers=headers)

    async def _issue_code(
        self, login: dict[str, Any], user_id: str, scopes: list[str], reason: str, status_code: int = 302
    ) -> Response:
        code = secrets.token_urlsafe(32)
        now = time.time()
        record = OAuthCodeRecord(
            code_hash=token_hash(code),
            grant_id=uuid.uuid4().hex,
            client_id=str(login["client_id"]),
            user_id=user_id,
            scopes=scopes,
            code_challenge=str(login["code_challenge"]),
            redirect_uri=str(login["redirect_uri"]),
            redirect_uri_provided_explicitly=bool(login["redirect_uri_explicit"]),
            resource=login.get("resource"),
            expires_at=_utc(now + CODE_SECONDS),
            created_at=_utc(now),
        )
        await anyio.to_thread.run_sync(self.store.save_oauth_code, record)
        await self._cleanup_if_due()
        logger.info(
            "user %s authorized client %r for %s (%s)", user_id, record.client_id, " ".join(scopes), reason
        )
        return self._back_to_client(login, code=code, status_code=status_code)

    def _sign_request(self, typ: str, audience: str, request_id: str, claims: dict[str, Any]) -> str:
        """A login state or consent request: signed by this server, valid for LOGIN_SECONDS."""
        now = int(time.time())
        registered = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + LOGIN_SECONDS,
            "jti": request_id,
        }
        return jwt.encode(
            {"alg": "RS256", "kid": self.key.kid, "typ": typ}, {**registered, **claims}, self.key
        )

    def _read_signed(
        self, token: str | None, typ: str, audience: str, *essential: str
    ) -> dict[str, Any] | None:
        """The claims of a login state or consent request this server signed, or None."""
        if not token or len(token) > 8192:
            return None
        try:
            decoded = jwt.decode(token, self.key, algorithms=["RS256"])
            if decoded.header.get("typ") != typ:
                return None
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                jti={"essential": True},
                **{name: {"essential": True} for name in essential},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None
        return decoded.claims

    # -- consents, for the user who gave them ---------------------------------------------------
    async def _bearer_user(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        record = await self._live_session(header[7:].strip())
        return None if record is None else record.user_id

    async def list_consents(self, request: Request) -> Response:
        """``GET /oauth/consents``: the caller's remembered consents (bearer token of this gateway)."""
        user_id = await self._bearer_user(request)
        if user_id is None:
            return _unauthorized()
        consents = await anyio.to_thread.run_sync(self.store.list_oauth_consents, user_id, datetime.now(UTC))
        return JSONResponse(
            {
                "consents": [
                    {
                        "consent_id": consent.consent_id,
                        "client_id": consent.client_id,
                        "redirect_uri": consent.redirect_uri,
                        "scopes": consent.scopes,
                        "created_at": consent.created_at.isoformat(),
                        "expires_at": consent.expires_at.isoformat(),
                    }
                    for consent in consents
                ]
            },
            headers=NO_STORE,
        )

    async def revoke_consent(self, request: Request) -> Response:
        """``DELETE /oauth/consents/{consent_id}``: forget the consent and revoke the caller's tokens
        of that client; the next login asks again."""
        user_id = await self._bearer_user(request)
        if user_id is None:
            return _unauthorized()
        consent_id = str(request.path_params["consent_id"])
        revoked = await anyio.to_thread.run_sync(
            self.store.revoke_oauth_consent, user_id, consent_id, datetime.now(UTC)
        )
        if revoked is None:
            return JSONResponse(
                {"error": "not_found", "error_description": "you have no consent with that id"},
                status_code=404,
                headers=NO_STORE,
            )
        logger.info("user %s revoked the consent of client %r", user_id, revoked.client_id)
        return Response(status_code=204, headers=NO_STORE)

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
        await anyio.to_thread.run_sync(self.store.mark_oauth_client_used, str(client.client_id), now)
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
        # AUTH_LEEWAY_SECONDS, as the verifier allows on the token's exp
        cutoff = datetime.fromtimestamp(time.time() - self.leeway_seconds, UTC)
        if record is None or record.revoked_at is not None or record.expires_at <= cutoff:
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

    # -- the endpoints, around the SDK's handlers ------------------------------------------------
    async def _authorize(self, request: Request, handler: AuthorizationHandler) -> Response:
        """The SDK's ``/authorize``, with its error redirects shown instead: before the login nobody
        has approved the client's redirect URI, and following one would make an open redirector."""
        response = await handler.handle(request)
        location = response.headers.get("location", "")
        if response.status_code in (302, 303) and "error" in parse_qs(urlsplit(location).query):
            query = parse_qs(urlsplit(location).query)
            return JSONResponse(
                {
                    "error": query["error"][0],
                    "error_description": query.get("error_description", [""])[0],
                },
                status_code=400,
                headers=NO_STORE,
            )
        return response

    async def _token(self, request: Request, handler: TokenHandler) -> Response:
        """The SDK's ``/token``, first refusing another ``resource`` (RFC 8707 ``invalid_target``) and
        burning a code presented with a wrong PKCE verifier (it must not survive a guess)."""
        form = await request.form()
        resource = form.get("resource")
        if isinstance(resource, str) and resource and resource.rstrip("/") != self.resource.rstrip("/"):
            return JSONResponse(
                {
                    "error": "invalid_target",
                    "error_description": f"this server issues tokens for {self.resource} only",
                },
                status_code=400,
                headers={**NO_STORE, "Pragma": "no-cache"},
            )
        code, verifier = form.get("code"), form.get("code_verifier")
        if (
            form.get("grant_type") == "authorization_code"
            and isinstance(code, str)
            and isinstance(verifier, str)
        ):
            digest = token_hash(code)
            record = await anyio.to_thread.run_sync(self.store.get_oauth_code, digest)
            challenge = _b64(hashlib.sha256(verifier.encode()).digest())
            if record is not None and not hmac.compare_digest(challenge, record.code_challenge):
                now = datetime.now(UTC)
                if await anyio.to_thread.run_sync(self.store.consume_oauth_code, digest, now):
                    logger.warning("code of client %r burnt: wrong PKCE verifier", record.client_id)
        return await handler.handle(request)

    async def _register(self, request: Request, handler: RegistrationHandler) -> Response:
        """The SDK's ``/register`` behind the registration policy (``clients.py``)."""
        try:
            check_registration(await request.body())
        except ClientPolicyError as error:
            return JSONResponse(
                {"error": error.error, "error_description": error.description},
                status_code=400,
                headers=NO_STORE,
            )
        return await handler.handle(request)

    def routes(self) -> list[Route]:
        registration = ClientRegistrationOptions(
            enabled=True, valid_scopes=list(ALL_SCOPES), default_scopes=[READ_SCOPE]
        )
        revocation = RevocationOptions(enabled=True)
        issuer_url = AuthSettings(issuer_url=self.issuer, resource_server_url=None).issuer_url
        metadata = build_metadata(issuer_url, None, registration, revocation)
        metadata.client_id_metadata_document_supported = True
        metadata.token_endpoint_auth_methods_supported = ["client_secret_post", "client_secret_basic", "none"]
        # /token and /revoke authenticate clients against the stored secret digests.
        authenticator = HashedSecretAuthenticator(self)
        authorization = AuthorizationHandler(self)
        token = TokenHandler(self, authenticator)
        register = RegistrationHandler(self, options=registration)
        keys = {
            "keys": [{**key, "use": "sig", "alg": "RS256"} for key in self.public_keys().as_dict()["keys"]]
        }

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(keys)

        async def authorize(request: Request) -> Response:
            return await self._authorize(request, authorization)

        async def token_endpoint(request: Request) -> Response:
            return await self._token(request, token)

        async def register_endpoint(request: Request) -> Response:
            return await self._register(request, register)

        limited = self.limiter.limited
        return [
            Route(
                METADATA_PATH,
                _cors(request_response(MetadataHandler(metadata).handle), ["GET", "OPTIONS"]),
                methods=["GET", "OPTIONS"],
            ),
            Route(
                AUTHORIZATION_PATH,
                _body_limited(request_response(limited("/authorize", authorize))),  # no CORS: a navigation
                methods=["GET", "POST"],
            ),
            Route(
                TOKEN_PATH, _client_endpoint(limited("/token", token_endpoint)), methods=["POST", "OPTIONS"]
            ),
            Route(
                REGISTRATION_PATH,
                _client_endpoint(limited("/register", register_endpoint)),
                methods=["POST", "OPTIONS"],
            ),
            Route(
                REVOCATION_PATH,
                _client_endpoint(RevocationHandler(self, authenticator).handle),
                methods=["POST", "OPTIONS"],
            ),
            Route(CALLBACK_PATH, self.callback, methods=["GET"]),
            Route(CONSENT_PATH, _body_limited(request_response(self.consent)), methods=["POST"]),
            Route(CONSENTS_PATH, self.list_consents, methods=["GET"]),
            Route(CONSENTS_PATH + "/{consent_id}", self.revoke_consent, methods=["DELETE"]),
            Route(JWKS_PATH, jwks, methods=["GET"]),
        ]


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_token", "error_description": "a bearer token of this gateway is required"},
        status_code=401,
        headers={**NO_STORE, "WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _body_limited(app: ASGIApp) -> ASGIApp:
    return RequestBodyLimitMiddleware(app, DEFAULT_MAX_REQUEST_BODY_SIZE)


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    return CORSMiddleware(
        app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER]
    )


def _client_endpoint(handler: Any) -> ASGIApp:
    """Wrapped as the SDK wraps its own client endpoints: body size limit, then CORS."""
    return _cors(_body_limited(request_response(handler)), ["POST", "OPTIONS"])


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

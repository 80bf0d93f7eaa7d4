"""The gateway as the OAuth 2.1 authorization server of the MCP flow, login delegated to the company IdP.

The SDK's handlers speak the protocol (``/authorize``, ``/token``, ``/register``, ``/revoke`` and
``/.well-known/oauth-authorization-server``; PKCE S256 only, ``plain`` refused; redirect URIs checked
against the registration); this provider decides and remembers. Its parts:

* ``/authorize`` sends the browser to the IdP (OIDC, PKCE S256 and a nonce). The request the MCP
  client made travels in ``state`` as a short-lived JWT signed with the gateway's key
  (``signed.py``), so any gateway task can finish the login; the IdP-side PKCE verifier is derived
  from that state's id.
* The IdP's answer, the consent page's Allow or Deny, the code it issues and the remembered
  consents: ``consents.py`` (the page itself: ``consent.py``). The gateway never sees a password.
* The endpoints around the SDK's handlers (error redirects shown, ``invalid_target``, codes burnt
  after a wrong PKCE verifier, the registration policy, rate limits, client secret digests):
  ``endpoints.py``.
* Registrations are bounded and redirect URIs checked (``clients.py``); clients never used within
  ``AUTH_UNUSED_CLIENT_HOURS`` are removed. Clients ask for every scope the resource advertises
  (``tag:read admin``); a user is granted the subset ``ScopePolicy`` allows, and ``/token`` names
  it in ``scope`` (RFC 6749 §3.3, §5.1).
* Access tokens are RS256 JWTs (1 hour) signed with the gateway's key and checked by the resource
  server's ``JwtTokenVerifier``, which also requires the token's ``oauth_sessions`` row to be live:
  revocation takes effect at once, not at expiry. Refresh tokens are opaque and rotate on every
  use; presenting a rotated-out one (a stolen copy) revokes the whole grant, as does replaying a code.
* Everything secret is stored as a SHA-256 digest only: access and refresh tokens
  (``oauth_sessions``), codes (``oauth_authorization_codes``), client secrets (``oauth_clients``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl
from starlette.routing import Route

from tagcompliance.cache import Cache
from tagcompliance.store.oauth import (
    OAuthClientRecord,
    OAuthSessionRecord,
    OAuthStore,
)

from . import endpoints
from .clients import MetadataDocumentClients, is_metadata_document_id
from .consents import CALLBACK_PATH, ConsentFlow
from .digests import b64url, s256_challenge, token_hash
from .keys import derived_secret
from .ratelimit import RateLimiter
from .scopes import ADMIN_SCOPE, ALL_SCOPES, READ_SCOPE, WRITE_SCOPE
from .signed import STATE_TYPE, SignedRequests
from .upstream import OidcUpstream, UpstreamLoginError, UserIdentity

logger = logging.getLogger("tagcompliance.gateway.auth")

CLEANUP_SECONDS = 3600


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
    """Which scopes a user may be granted: ``tag:read`` for everyone the IdP lets in, ``admin`` and
    ``tag:write`` each only for their configured users or members of their configured groups."""

    admin_users: frozenset[str]
    admin_groups: frozenset[str]
    write_users: frozenset[str] = frozenset()
    write_groups: frozenset[str] = frozenset()

    def grantable(self, identity: UserIdentity) -> set[str]:
        names = {identity.user_id, identity.subject, identity.email or ""}
        groups = set(identity.groups)
        scopes = {READ_SCOPE}
        if names & self.admin_users or groups & self.admin_groups:
            scopes.add(ADMIN_SCOPE)
        if names & self.write_users or groups & self.write_groups:
            scopes.add(WRITE_SCOPE)
        return scopes


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
        self._pkce_secret = derived_secret(key, "upstream-pkce")
        self._last_cleanup = 0.0
        self.signed = SignedRequests(self.issuer, key)
        self.consents = ConsentFlow(self)

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
        await self.cleanup_if_due()

    async def cleanup_if_due(self) -> None:
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
        state = self.signed.sign(
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
        challenge = s256_challenge(self.upstream_verifier(login_id))
        try:
            return await self.upstream.authorization_url(self.callback_url, state, nonce, challenge)
        except UpstreamLoginError as error:
            logger.warning("cannot start the IdP login: %s", error)
            raise AuthorizeError(
                "temporarily_unavailable", "the identity provider cannot be reached"
            ) from None

    def upstream_verifier(self, login_id: str) -> str:
        """The PKCE verifier of a login's IdP leg: derived from the login's id, so no task stores it."""
        return b64url(hmac.new(self._pkce_secret, login_id.encode(), hashlib.sha256).digest())

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
        record = await self.live_session(token)
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
        return await self.live_session(token) is not None

    async def live_session(self, token: str) -> OAuthSessionRecord | None:
        """The access token's ``oauth_sessions`` row, when it is neither revoked nor expired."""
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

    def routes(self) -> list[Route]:
        """This server's endpoints (``endpoints.py``), to mount in front of the MCP app."""
        return endpoints.routes(self)

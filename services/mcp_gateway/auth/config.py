"""GatewaySettings -> the gateway's OAuth configuration, and the transport rules.

Two modes, chosen by configuration:

* ``AUTH_IDP_ISSUER_URL`` set: the gateway is the OAuth authorization server of the MCP flow
  (``authserver.py``), users log in at that company IdP, and the gateway verifies the access tokens
  it signed itself (plus their ``oauth_sessions`` row, so revocation is immediate).
* ``AUTH_ISSUER_URL`` set: a resource server only; another authorization server issues the JWTs.

Scopes, in both modes: the HTTP layer *requires* ``tag:read`` (``AuthSettings.required_scopes``), the
protected-resource metadata *advertises* ``tag:read admin`` (``install``), and whichever authorization
server issues the token decides who gets ``admin`` (see ``scopes.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from tag_compliance_mcp.settings import GatewaySettings
from tagcompliance.cache import Cache
from tagcompliance.errors import TagComplianceError
from tagcompliance.store.oauth import OAuthStore

from .authserver import GatewayAuthorizationServer, ScopePolicy
from .clients import is_loopback
from .keys import load_signing_key
from .scopes import ALL_SCOPES, READ_SCOPE
from .upstream import OidcUpstream
from .verifier import JwtTokenVerifier


@dataclass(frozen=True, slots=True)
class GatewayAuth:
    """What ``build_server`` needs to require bearer tokens (and, in the authorization-server mode,
    the routes ``install`` adds to the HTTP app)."""

    verifier: JwtTokenVerifier
    settings: AuthSettings
    authorization_server: GatewayAuthorizationServer | None = None

    def describe(self) -> str:
        if self.authorization_server is not None:
            return (
                f"oauth (issuer {self.authorization_server.issuer}: this gateway, login delegated to "
                f"{self.authorization_server.upstream.issuer}; resource {self.settings.resource_server_url})"
            )
        return f"oauth (issuer {self.settings.issuer_url}, resource {self.settings.resource_server_url})"

    def install(self, app: Starlette) -> Starlette:
        """Complete the app ``streamable_http_app`` built: the protected-resource metadata advertising
        every scope, and in the authorization-server mode that server's endpoints."""
        advertise_all_scopes(app, self.settings)
        if self.authorization_server is not None:
            app.router.routes[0:0] = self.authorization_server.routes()
        return app


def advertise_all_scopes(app: Starlette, settings: AuthSettings) -> None:
    """Serve the protected-resource metadata (RFC 9728) with ``scopes_supported: ["tag:read", "admin"]``
    in place of the SDK's document for the same path.

    The SDK derives both that document's ``scopes_supported`` and the scopes its
    ``RequireAuthMiddleware`` requires of every request from the one ``AuthSettings.required_scopes``.
    Required must stay ``tag:read`` alone (a reader has no ``admin``); but MCP clients request exactly
    what discovery offers (the 401 challenge's ``scope``, which the SDK leaves out, else this
    ``scopes_supported``) and ignore the scope they were configured with, so advertising only
    ``tag:read`` meant no client ever asked for ``admin`` and no admin could get it. The authorization
    server grants the subset a user is entitled to and names it in the token response."""
    if settings.resource_server_url is None:
        return
    routes = create_protected_resource_routes(
        resource_url=settings.resource_server_url,
        authorization_servers=[settings.issuer_url],
        scopes_supported=list(ALL_SCOPES),
    )
    paths = {route.path for route in routes}
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) not in paths]
    app.router.routes[0:0] = routes


def build_auth(
    settings: GatewaySettings,
    host: str,
    port: int,
    store: OAuthStore | None = None,
    cache: Cache | None = None,
    metadata_document_fetch: Callable[[str], Awaitable[bytes]] | None = None,
) -> GatewayAuth | None:
    """The OAuth configuration, or None when neither mode is configured. The authorization-server
    mode needs the store and the cache (rate limits, client metadata documents);
    ``metadata_document_fetch`` replaces the https fetch of Client ID Metadata Documents (tests)."""
    if settings.auth_idp_issuer_url:
        if store is None or cache is None:
            raise TagComplianceError("the OAuth authorization server needs the store and the cache")
        return _authorization_server(settings, host, port, store, cache, metadata_document_fetch)
    if not settings.auth_issuer_url:
        return None
    resource = settings.auth_resource_url or f"{_base_url(host, port)}/mcp"
    verifier = JwtTokenVerifier(
        settings.auth_issuer_url,
        [resource, *settings.auth_audiences],
        algorithms=settings.auth_algorithms,
        leeway_seconds=settings.auth_leeway_seconds,
        jwks_url=settings.auth_jwks_url,
        min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
    )
    return GatewayAuth(verifier, _auth_settings(settings.auth_issuer_url, resource))


def _base_url(host: str, port: int) -> str:
    url_host = f"[{host}]" if ":" in host else host
    return f"http://{url_host}:{port}"


def _auth_settings(issuer: str, resource: str) -> AuthSettings:
    try:
        return AuthSettings(
            issuer_url=issuer,
            resource_server_url=resource,
            required_scopes=[READ_SCOPE],
            validate_token_resource=False,  # the verifier checks aud itself (resource or AUTH_AUDIENCES)
        )
    except ValueError as error:
        raise TagComplianceError(f"invalid authentication settings: {error}") from None


def _authorization_server(
    settings: GatewaySettings,
    host: str,
    port: int,
    store: OAuthStore,
    cache: Cache,
    metadata_document_fetch: Callable[[str], Awaitable[bytes]] | None,
) -> GatewayAuth:
    if settings.auth_issuer_url:
        raise TagComplianceError(
            "set either AUTH_IDP_ISSUER_URL (this gateway is the authorization server) or AUTH_ISSUER_URL "
            "(another authorization server issues the tokens), not both"
        )
    client_id, client_secret = settings.auth_idp_client_id, None
    if settings.auth_idp_client_secret is not None:
        client_secret = settings.auth_idp_client_secret.get_secret_value()
    elif settings.auth_idp_client_secret_arn:
        raw = settings.read_secret(settings.auth_idp_client_secret_arn, "IdP client secret")
        client_secret, stored_id = _client_credentials(raw, settings.auth_idp_client_secret_arn)
        client_id = client_id or stored_id
    if not client_id:
        raise TagComplianceError(
            "AUTH_IDP_ISSUER_URL needs AUTH_IDP_CLIENT_ID (the gateway's client at the IdP), or a client_id "
            "in the AUTH_IDP_CLIENT_SECRET_ARN secret"
        )
    if not client_secret:
        raise TagComplianceError(
            "AUTH_IDP_ISSUER_URL needs the IdP client secret: AUTH_IDP_CLIENT_SECRET_ARN (Secrets Manager) "
            "or, for local runs, AUTH_IDP_CLIENT_SECRET"
        )
    issuer = (settings.auth_public_url or _base_url(host, port)).rstrip("/")
    resource = settings.auth_resource_url or f"{issuer}/mcp"
    server = GatewayAuthorizationServer(
        store=store,
        issuer=issuer,
        resource=resource,
        key=load_signing_key(settings),
        upstream=OidcUpstream(
            settings.auth_idp_issuer_url or "",
            client_id,
            client_secret,
            scopes=settings.auth_idp_scopes,
            user_claim=settings.auth_user_claim,
            leeway_seconds=settings.auth_leeway_seconds,
        ),
        scope_policy=ScopePolicy(
            frozenset(settings.auth_admin_users),
            frozenset(settings.auth_admin_groups),
            frozenset(settings.auth_write_users),
            frozenset(settings.auth_write_groups),
        ),
        cache=cache,
        access_token_seconds=settings.auth_access_token_seconds,
        refresh_token_seconds=settings.auth_refresh_token_days * 86400,
        consent_days=settings.auth_consent_days,
        rate_limit_per_minute=settings.auth_rate_limit_per_minute,
        unused_client_hours=settings.auth_unused_client_hours,
        leeway_seconds=settings.auth_leeway_seconds,
        metadata_document_fetch=metadata_document_fetch,
    )
    verifier = JwtTokenVerifier(
        issuer,
        [resource, *settings.auth_audiences],
        algorithms=["RS256"],
        leeway_seconds=settings.auth_leeway_seconds,
        key_set=server.public_keys(),
        session_check=server.access_token_active,
    )
    return GatewayAuth(verifier, _auth_settings(issuer, resource), server)


def check_http_exposure(
    settings: GatewaySettings, host: str, auth: GatewayAuth | None, allow_flag: bool
) -> str:
    """The transport rule for HTTP: returns the auth mode for /health, or raises with the reason."""
    if auth is not None:
        return auth.describe()
    if not is_loopback(host):
        raise TagComplianceError(
            f"refusing to serve HTTP on {host} without authentication: set AUTH_IDP_ISSUER_URL or "
            "AUTH_ISSUER_URL (see README, Authentication) or bind to 127.0.0.1"
        )
    if not (allow_flag or settings.auth_allow_unauthenticated_loopback):
        raise TagComplianceError(
            "refusing to serve HTTP without authentication: set AUTH_IDP_ISSUER_URL or AUTH_ISSUER_URL, or "
            "for local development on loopback pass --allow-unauthenticated-loopback "
            "(AUTH_ALLOW_UNAUTHENTICATED_LOOPBACK=true)"
        )
    return "none: unauthenticated loopback (explicitly allowed)"


def transport_security(settings: GatewaySettings) -> TransportSecuritySettings | None:
    """Host/Origin checks from settings (behind a load balancer); None keeps the SDK's loopback default."""
    if not settings.mcp_allowed_hosts:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.mcp_allowed_hosts,
        allowed_origins=settings.mcp_allowed_origins,
    )


def _client_credentials(raw: str, arn: str) -> tuple[str, str | None]:
    """The secret as stored: the bare client secret, or the spec's JSON document
    ``{"client_id": ..., "client_secret": ..., "issuer_url": ...}``."""
    if not raw.lstrip().startswith("{"):
        return raw.strip(), None
    try:
        document = json.loads(raw)
    except ValueError:
        raise TagComplianceError(f"the secret {arn} looks like JSON but does not parse") from None
    secret = document.get("client_secret") if isinstance(document, dict) else None
    if not isinstance(secret, str) or not secret:
        raise TagComplianceError(f"the JSON secret {arn} has no client_secret")
    client_id = document.get("client_id")
    return secret, client_id if isinstance(client_id, str) and client_id else None

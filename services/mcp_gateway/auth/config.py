"""Settings -> the gateway's resource-server configuration and the transport rules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from tagcompliance.errors import TagComplianceError
from tagcompliance.settings import Settings

from .scopes import READ_SCOPE
from .verifier import JwtTokenVerifier


@dataclass(frozen=True, slots=True)
class GatewayAuth:
    """What ``build_server`` needs to require bearer tokens."""

    verifier: JwtTokenVerifier
    settings: AuthSettings

    def describe(self) -> str:
        return f"oauth (issuer {self.settings.issuer_url}, resource {self.settings.resource_server_url})"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_auth(settings: Settings, host: str, port: int) -> GatewayAuth | None:
    """The resource-server configuration, or None when no issuer is configured."""
    if not settings.auth_issuer_url:
        return None
    url_host = f"[{host}]" if ":" in host else host
    resource = settings.auth_resource_url or f"http://{url_host}:{port}/mcp"
    verifier = JwtTokenVerifier(
        settings.auth_issuer_url,
        [resource, *settings.auth_audiences],
        algorithms=settings.auth_algorithms,
        leeway_seconds=settings.auth_leeway_seconds,
        jwks_url=settings.auth_jwks_url,
        min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
    )
    try:
        auth_settings = AuthSettings(
            issuer_url=settings.auth_issuer_url,
            resource_server_url=resource,
            required_scopes=[READ_SCOPE],
            validate_token_resource=False,  # the verifier checks aud itself (resource or AUTH_AUDIENCES)
        )
    except ValueError as error:
        raise TagComplianceError(f"invalid authentication settings: {error}") from None
    return GatewayAuth(verifier, auth_settings)


def check_http_exposure(settings: Settings, host: str, auth: GatewayAuth | None, allow_flag: bool) -> str:
    """The transport rule for HTTP: returns the auth mode for /health, or raises with the reason."""
    if auth is not None:
        return auth.describe()
    if not is_loopback(host):
        raise TagComplianceError(
            f"refusing to serve HTTP on {host} without authentication: set AUTH_ISSUER_URL "
            "(see README, Authentication) or bind to 127.0.0.1"
        )
    if not (allow_flag or settings.auth_allow_unauthenticated_loopback):
        raise TagComplianceError(
            "refusing to serve HTTP without authentication: set AUTH_ISSUER_URL, or for local development "
            "on loopback pass --allow-unauthenticated-loopback (AUTH_ALLOW_UNAUTHENTICATED_LOOPBACK=true)"
        )
    return "none: unauthenticated loopback (explicitly allowed)"


def transport_security(settings: Settings) -> TransportSecuritySettings | None:
    """Host/Origin checks from settings (behind a load balancer); None keeps the SDK's loopback default."""
    if not settings.mcp_allowed_hosts:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.mcp_allowed_hosts,
        allowed_origins=settings.mcp_allowed_origins,
    )

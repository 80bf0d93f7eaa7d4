"""The gateway's own settings: authentication (the OAuth modes) and the HTTP transport's sessions.

``GatewaySettings`` extends the core ``Settings`` (AWS, store, cache, schedules, safety) with what
only the MCP gateway reads, so the domain core and the Lambdas never see the auth knobs. The
environment variable names are the same as ever.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from tagcompliance.settings import CommaList, Settings


class GatewaySettings(Settings):
    """The core settings plus the gateway's authentication and HTTP session settings."""

    shutdown_grace_seconds: float = Field(
        default=8.0,
        ge=0,
        le=110,
        validation_alias="SHUTDOWN_GRACE_SECONDS",
        description="After SIGTERM: seconds in-flight calls get to finish (scans answer with what they "
        "have 2 s before the end) before the rest are cancelled and the process exits. Keep it below "
        "the container's stop timeout (ECS stopTimeout, 15 s in stacks/constructs/gateway.py).",
    )

    # --- Authentication (HTTP transport; see README "Authentication") ---------------------------
    auth_issuer_url: str | None = Field(
        default=None,
        validation_alias="AUTH_ISSUER_URL",
        description="OAuth/OIDC issuer whose JWT access tokens the gateway accepts (company IdP or the "
        "authorization server in front of it); set it to require bearer tokens over HTTP.",
    )
    auth_resource_url: str | None = Field(
        default=None,
        validation_alias="AUTH_RESOURCE_URL",
        description="Public URL of this server's /mcp endpoint: the RFC 8707 resource and token audience; "
        "default http://HOST:PORT/mcp.",
    )
    auth_audiences: CommaList = Field(
        default_factory=list,
        validation_alias="AUTH_AUDIENCES",
        description="Comma-separated extra accepted audiences (e.g. an IdP API identifier), besides the "
        "resource URL.",
    )
    auth_jwks_url: str | None = Field(
        default=None,
        validation_alias="AUTH_JWKS_URL",
        description="Override the JWKS URL; default: jwks_uri from the issuer's metadata.",
    )
    auth_algorithms: CommaList = Field(
        default_factory=lambda: ["RS256", "ES256"],
        validation_alias="AUTH_ALGORITHMS",
        description="Accepted JWS algorithms (asymmetric only; none and HS* are always refused).",
    )
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300, validation_alias="AUTH_LEEWAY_SECONDS")
    auth_jwks_min_refresh_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        validation_alias="AUTH_JWKS_MIN_REFRESH_SECONDS",
        description="Least time between two JWKS fetches triggered by unknown key ids.",
    )
    auth_allow_unauthenticated_loopback: bool = Field(
        default=False,
        validation_alias="AUTH_ALLOW_UNAUTHENTICATED_LOOPBACK",
        description="Serve HTTP on a loopback address without tokens (local development only).",
    )
    auth_idp_client_id: str | None = Field(
        default=None,
        validation_alias="AUTH_IDP_CLIENT_ID",
        description="Client id at the company IdP (Okta, Entra ID, Cognito) for delegated user login.",
    )
    auth_idp_client_secret_arn: str | None = Field(
        default=None,
        validation_alias="AUTH_IDP_CLIENT_SECRET_ARN",
        description="Secrets Manager ARN (tagging-mcp/...) of that client's secret; never the secret itself.",
    )
    # The gateway as the OAuth authorization server of the MCP flow, user login delegated to the
    # company IdP over OIDC (set AUTH_IDP_ISSUER_URL; see README "Authentication").
    auth_idp_issuer_url: str | None = Field(
        default=None,
        validation_alias="AUTH_IDP_ISSUER_URL",
        description="OIDC issuer of the company IdP (Okta, Entra ID, Cognito) users log in with; setting it "
        "makes the gateway the OAuth authorization server (mutually exclusive with AUTH_ISSUER_URL).",
    )
    auth_idp_client_secret: SecretStr | None = Field(
        default=None,
        validation_alias="AUTH_IDP_CLIENT_SECRET",
        description="The IdP client secret itself, for local runs; in AWS use AUTH_IDP_CLIENT_SECRET_ARN.",
    )
    auth_idp_scopes: CommaList = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        validation_alias="AUTH_IDP_SCOPES",
        description="Comma-separated scopes asked of the IdP (openid is always added).",
    )
    auth_user_claim: str = Field(
        default="email",
        validation_alias="AUTH_USER_CLAIM",
        description="ID-token claim naming the user in tokens and the call log (falls back to sub).",
    )
    auth_admin_users: CommaList = Field(
        default_factory=list,
        validation_alias="AUTH_ADMIN_USERS",
        description="Comma-separated users (AUTH_USER_CLAIM values) who may be granted the admin scope.",
    )
    auth_admin_groups: CommaList = Field(
        default_factory=list,
        validation_alias="AUTH_ADMIN_GROUPS",
        description="Comma-separated IdP groups (the 'groups' claim) whose members may be granted admin.",
    )
    auth_write_users: CommaList = Field(
        default_factory=list,
        validation_alias="AUTH_WRITE_USERS",
        description="Comma-separated users who may be granted tag:write (apply and undo tag remediations).",
    )
    auth_write_groups: CommaList = Field(
        default_factory=list,
        validation_alias="AUTH_WRITE_GROUPS",
        description="Comma-separated IdP groups whose members may be granted tag:write.",
    )
    auth_public_url: str | None = Field(
        default=None,
        validation_alias="AUTH_PUBLIC_URL",
        description="Public base URL of the gateway (its OAuth issuer), e.g. https://mcp.example.com; "
        "default http://HOST:PORT.",
    )
    auth_signing_key_secret_arn: str | None = Field(
        default=None,
        validation_alias="AUTH_SIGNING_KEY_SECRET_ARN",
        description="Secrets Manager ARN of the PEM private key signing access tokens; unset: a key is "
        "generated once and kept in DATA_DIR/oauth-signing-key.pem.",
    )
    auth_access_token_seconds: int = Field(
        default=3600, ge=60, le=86_400, validation_alias="AUTH_ACCESS_TOKEN_SECONDS"
    )
    auth_refresh_token_days: int = Field(default=30, ge=1, le=365, validation_alias="AUTH_REFRESH_TOKEN_DAYS")
    auth_consent_days: int = Field(
        default=30,
        ge=0,
        le=365,
        validation_alias="AUTH_CONSENT_DAYS",
        description="How long a user's consent for a client (its redirect URI and scopes) is remembered; "
        "0 asks on every login.",
    )
    auth_rate_limit_per_minute: int = Field(
        default=60,
        ge=1,
        le=100_000,
        validation_alias="AUTH_RATE_LIMIT_PER_MINUTE",
        description="Requests per minute one client IP address (an IPv6 /64) may make to each of "
        "/register, /authorize and /token.",
    )
    auth_unused_client_hours: int = Field(
        default=24,
        ge=1,
        le=24 * 365,
        validation_alias="AUTH_UNUSED_CLIENT_HOURS",
        description="A registered OAuth client that has not exchanged a code this long after registering "
        "is removed.",
    )

    mcp_allowed_hosts: CommaList = Field(
        default_factory=list,
        validation_alias="MCP_ALLOWED_HOSTS",
        description="Comma-separated Host header values accepted (behind a load balancer); enables "
        "DNS-rebinding protection.",
    )
    mcp_allowed_origins: CommaList = Field(
        default_factory=list,
        validation_alias="MCP_ALLOWED_ORIGINS",
        description="Comma-separated Origin values accepted from browsers.",
    )
    mcp_max_calls_in_flight_per_user: int = Field(
        default=10,
        ge=1,
        le=1000,
        validation_alias="MCP_MAX_CALLS_IN_FLIGHT_PER_USER",
        description="MCP requests one user (token subject) may have in flight across all gateway tasks "
        "(counted in Redis); one more gets 429 with Retry-After.",
    )

"""The one settings object, read from the environment. Nothing else reads ``os.environ``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .resources import validate_region_names


class Settings(BaseSettings):
    """Every knob of the product, each with its environment variable and a sensible default."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="Home region: STS, Cost Explorer and the default scan region.",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL",
        description="Send every AWS call here (moto server, LocalStack); unset for real AWS.",
    )
    use_localstack: bool = Field(
        default=False,
        validation_alias="USE_LOCALSTACK",
        description="Send every AWS call to LocalStack, its endpoint resolved by localstack-client from "
        "LOCALSTACK_HOST (a development dependency: requirements-dev.txt).",
    )
    localstack_host: str | None = Field(
        default=None,
        validation_alias="LOCALSTACK_HOST",
        description="LocalStack's HOST[:PORT] with USE_LOCALSTACK (localstack-client's default: "
        "localhost:4566).",
    )
    scan_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="SCAN_REGIONS",
        description="Comma-separated regions scanned when a tool call names none; default: AWS_REGION.",
    )
    policy_path: Path = Field(
        default=Path("policies/tagging_policy.json"),
        validation_alias="POLICY_PATH",
        description="The tagging policy file.",
    )
    data_dir: Path = Field(
        default=Path.home() / ".tag-compliance",
        validation_alias="DATA_DIR",
        description="Where the embedded SQLite store and exported files live.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="postgresql://... to use PostgreSQL; unset for the embedded SQLite store.",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        validation_alias="DATABASE_POOL_SIZE",
        description="Most PostgreSQL connections one process holds (the deployment's connection budget).",
    )
    xray_daemon_address: str | None = Field(
        default=None,
        validation_alias="AWS_XRAY_DAEMON_ADDRESS",
        description="host:port of an X-Ray daemon: the HTTP gateway traces every request there.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="redis://... to use Redis; unset for the in-memory cache.",
    )
    cache_ttl_seconds: int = Field(default=900, ge=0, le=86_400, validation_alias="CACHE_TTL_SECONDS")
    scan_max_workers: int = Field(default=16, ge=1, le=128, validation_alias="SCAN_MAX_WORKERS")
    cost_lookback_days: int = Field(default=30, ge=1, le=365, validation_alias="COST_LOOKBACK_DAYS")
    auto_import_aws_policy: bool = Field(
        default=True,
        validation_alias="AUTO_IMPORT_AWS_POLICY",
        description="At start-up without a policy file, import the AWS Organizations tag policy.",
    )
    aws_policy_id: str | None = Field(
        default=None, validation_alias="AWS_POLICY_ID", description="The tag policy to import (p-...)."
    )
    state_machine_arn: str | None = Field(
        default=None,
        validation_alias="STATE_MACHINE_ARN",
        description="The deployed audit state machine; schedules become EventBridge schedules targeting it.",
    )
    scheduler_role_arn: str | None = Field(
        default=None, validation_alias="SCHEDULER_ROLE_ARN", description="Role EventBridge Scheduler assumes."
    )
    scheduler_group: str = Field(default="tag-compliance", validation_alias="SCHEDULER_GROUP")
    local_scheduler_interval_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        validation_alias="LOCAL_SCHEDULER_INTERVAL_SECONDS",
        description="Without EventBridge, how often the gateway fires due schedules; 0 turns the loop off.",
    )
    fallback_to_default_policy: bool = Field(
        default=True,
        validation_alias="FALLBACK_TO_DEFAULT_POLICY",
        description="Use the built-in default policy when none can be imported.",
    )

    # --- Audit pipeline (see README "Audit pipeline") -------------------------------------------
    audit_ledger_table: str | None = Field(
        default=None,
        validation_alias="AUDIT_LEDGER_TABLE",
        description="DynamoDB table of the shard ledger; unset: an in-memory ledger (in-process runs only).",
    )
    audit_ledger_region: str | None = Field(
        default=None, validation_alias="AUDIT_LEDGER_REGION", description="Region of the ledger table."
    )
    audit_ledger_ttl_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        validation_alias="AUDIT_LEDGER_TTL_DAYS",
        description="Ledger items expire (DynamoDB TTL) this many days after they were last written.",
    )
    audit_shard_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        validation_alias="AUDIT_SHARD_ATTEMPTS",
        description="In-process runner: attempts per throttled shard (the state machine has its own Retry).",
    )
    audit_poll_seconds: float = Field(default=1.0, gt=0, le=60, validation_alias="AUDIT_POLL_SECONDS")
    audit_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="AUDIT_ACCOUNTS",
        description="Comma-separated account ids audited by pipeline runs; empty: the credentials' account.",
    )
    audit_accounts_from_organizations: bool = Field(
        default=False,
        validation_alias="AUDIT_ACCOUNTS_FROM_ORGANIZATIONS",
        description="Audit every active account of the organization (Organizations ListAccounts).",
    )
    audit_role_name: str = Field(
        default="TagComplianceAuditRole",
        pattern=r"^[\w+=,.@/-]{1,64}$",
        validation_alias="AUDIT_ROLE_NAME",
        description="Role assumed in each audited account other than the credentials' own.",
    )
    audit_async_threshold_seconds: float = Field(
        default=40.0,
        gt=0,
        le=3600,
        validation_alias="AUDIT_ASYNC_THRESHOLD_SECONDS",
        description="check_tag_compliance returns a job handle when a scan is estimated to take longer.",
    )
    daily_snapshot_time: str = Field(
        default="06:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        validation_alias="DAILY_SNAPSHOT_TIME",
        description="HH:MM (UTC) of the daily compliance snapshot.",
    )
    notify_email_sender: str | None = Field(
        default=None,
        validation_alias="NOTIFY_EMAIL_SENDER",
        description="SES-verified address audit notifications are sent from; unset: no email.",
    )
    notify_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, validation_alias="NOTIFY_TIMEOUT_SECONDS"
    )
    notify_slack_base_url: str = Field(
        default="https://hooks.slack.com",
        pattern=r"^https?://[^/\s]+$",
        validation_alias="NOTIFY_SLACK_BASE_URL",
        description="Where Slack webhook posts go (scheme://host); a local receiver in tests.",
    )

    @field_validator("audit_accounts", mode="before")
    @classmethod
    def _split_accounts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and (bad := [a for a in value if not re.fullmatch(r"\d{12}", str(a))]):
            raise ValueError(f"AUDIT_ACCOUNTS must be 12-digit account ids, got {', '.join(map(str, bad))}")
        return value

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
    auth_audiences: Annotated[list[str], NoDecode] = Field(
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
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
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
    auth_idp_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        validation_alias="AUTH_IDP_SCOPES",
        description="Comma-separated scopes asked of the IdP (openid is always added).",
    )
    auth_user_claim: str = Field(
        default="email",
        validation_alias="AUTH_USER_CLAIM",
        description="ID-token claim naming the user in tokens and audit_logs (falls back to sub).",
    )
    auth_admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="AUTH_ADMIN_USERS",
        description="Comma-separated users (AUTH_USER_CLAIM values) who may be granted the admin scope.",
    )
    auth_admin_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="AUTH_ADMIN_GROUPS",
        description="Comma-separated IdP groups (the 'groups' claim) whose members may be granted admin.",
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

    @field_validator("auth_idp_scopes", "auth_admin_users", "auth_admin_groups", mode="before")
    @classmethod
    def _split_auth_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="MCP_ALLOWED_HOSTS",
        description="Comma-separated Host header values accepted (behind a load balancer); enables "
        "DNS-rebinding protection.",
    )
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="MCP_ALLOWED_ORIGINS",
        description="Comma-separated Origin values accepted from browsers.",
    )
    mcp_max_sessions_per_user: int = Field(
        default=10,
        ge=1,
        le=1000,
        validation_alias="MCP_MAX_SESSIONS_PER_USER",
        description="Open MCP sessions one user may hold; one more closes that user's longest-idle one.",
    )
    mcp_max_sessions: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        validation_alias="MCP_MAX_SESSIONS",
        description="Open MCP sessions in all; at the cap the heaviest user's longest-idle one closes.",
    )
    mcp_session_idle_seconds: float = Field(
        default=900,
        gt=0,
        le=86_400,
        validation_alias="MCP_SESSION_IDLE_SECONDS",
        description="An MCP session with no request in flight for this long is closed.",
    )

    # --- Agent safety (see README "Safety"; per-organization overrides in SAFETY_ORGANIZATIONS) ---
    safety_enabled: bool = Field(
        default=True,
        validation_alias="SAFETY_ENABLED",
        description="Clarify underspecified requests and require confirmation past the thresholds.",
    )
    safety_organization: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        validation_alias="SAFETY_ORGANIZATION",
        description="The organization this gateway serves: keys thresholds, learned warnings and beliefs.",
    )
    safety_max_resources: int = Field(
        default=500,
        ge=0,
        validation_alias="SAFETY_MAX_RESOURCES",
        description="Estimated resources a scan may cover without explicit approval.",
    )
    safety_max_api_calls: int = Field(
        default=2000,
        ge=0,
        validation_alias="SAFETY_MAX_API_CALLS",
        description="Estimated AWS requests a call may send without explicit approval.",
    )
    safety_max_cost_explorer_requests: int = Field(
        default=10,
        ge=0,
        validation_alias="SAFETY_MAX_COST_EXPLORER_REQUESTS",
        description="Cost Explorer requests ($0.01 each) a call may make without explicit approval.",
    )
    safety_all_regions_require_approval: bool = Field(
        default=True,
        validation_alias="SAFETY_ALL_REGIONS_REQUIRE_APPROVAL",
        description='A scan of regions ["all"] needs explicit approval.',
    )
    safety_require_explicit_scope: bool = Field(
        default=True,
        validation_alias="SAFETY_REQUIRE_EXPLICIT_SCOPE",
        description="Omitted resource_types / regions get clarification_needed instead of defaults.",
    )
    safety_token_ttl_seconds: int = Field(
        default=600, ge=10, le=86_400, validation_alias="SAFETY_TOKEN_TTL_SECONDS"
    )
    safety_regret_learn_after: int = Field(
        default=2,
        ge=1,
        le=100,
        validation_alias="SAFETY_REGRET_LEARN_AFTER",
        description="Corrections after a regret warning before it is raised earlier for the organization.",
    )
    safety_organizations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        validation_alias="SAFETY_ORGANIZATIONS",
        description='JSON: per-organization overrides, e.g. {"acme": {"max_resources": 2000, '
        '"disabled_rules": ["excluded_types"]}}.',
    )

    @field_validator("safety_organizations", mode="before")
    @classmethod
    def _parse_safety_organizations(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise ValueError(f"SAFETY_ORGANIZATIONS is not valid JSON: {error}") from None
        return value

    @field_validator(
        "auth_audiences", "auth_algorithms", "mcp_allowed_hosts", "mcp_allowed_origins", mode="before"
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("scan_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("scan_regions")
    @classmethod
    def _check_regions(cls, value: list[str]) -> list[str]:
        return validate_region_names(value)

    @model_validator(mode="after")
    def _resolve_localstack(self) -> Settings:
        if not self.use_localstack:
            return self
        if self.aws_endpoint_url:
            raise ValueError(
                f"USE_LOCALSTACK=true and AWS_ENDPOINT_URL={self.aws_endpoint_url} both name the AWS "
                "endpoint: set one of them"
            )
        self.aws_endpoint_url = localstack_endpoint(self.localstack_host)
        return self

    @property
    def default_regions(self) -> list[str]:
        return self.scan_regions or [self.aws_region]

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tagcompliance.sqlite3"


def localstack_endpoint(host: str | None) -> str:
    """LocalStack's edge endpoint as localstack-client resolves it (``host`` as LOCALSTACK_HOST).

    localstack-client is an sdist-only package and so stays out of requirements.txt (the Lambda
    dependencies layer is built from wheels only): asked for without it, this says so.
    """
    try:
        from localstack_client.config import get_service_endpoint
    except ImportError:
        raise ValueError(
            "USE_LOCALSTACK=true needs the localstack-client package, which is not installed (it is a "
            "development dependency: pip install -r requirements-dev.txt); or set "
            "AWS_ENDPOINT_URL=http://localhost:4566 instead"
        ) from None
    try:
        endpoint = get_service_endpoint("sts", localstack_host=host or None)
    except RuntimeError as error:  # localstack-client's word for an unparsable HOST:PORT
        raise ValueError(f"LOCALSTACK_HOST={host!r} is not HOST[:PORT]: {error}") from None
    if not endpoint:
        raise ValueError("localstack-client resolved no LocalStack endpoint")
    return endpoint

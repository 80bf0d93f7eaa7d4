"""The one settings object, read from the environment. Nothing else reads ``os.environ``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
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

    @property
    def default_regions(self) -> list[str]:
        return self.scan_regions or [self.aws_region]

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tagcompliance.sqlite3"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

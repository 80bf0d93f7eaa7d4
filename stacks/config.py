"""The one place names and sizes come from: ``cdk.json`` context, validated, plus derived names.

``-c env=dev|staging|prod`` picks an entry of ``context.environments``; a few top-level context
values (``account``, ``region``, ``aws_endpoint_url``, ``gateway_image_tag``, ...) apply to every
environment and can be overridden on the command line (``-c gateway_image_tag=abc123``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from aws_cdk import aws_logs as logs
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENVIRONMENT_NAMES = ("dev", "staging", "prod")
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-zA-Z-]+$")

# Container and service constants shared by the gateway construct, the Dockerfile and the tests.
GATEWAY_PORT = 8080
GATEWAY_HEALTH_PATH = "/health"
GATEWAY_CPU = 2048  # 2 vCPU
GATEWAY_MEMORY_MIB = 4096  # 4 GB
GATEWAY_CPU_TARGET_PERCENT = 70
DATABASE_NAME = "finops_mcp"
DATABASE_USER = "mcp_admin"
DATABASE_PORT = 5432
REDIS_PORT = 6380  # not the default 6379 (cdk-nag AwsSolutions-AEC5)


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def log_retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


class EnvironmentConfig(BaseModel):
    """One entry of ``context.environments`` (every field required: cdk.json is the one source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multi_az: bool
    domain_name: str | None = None  # (jsii drops JSON nulls from context maps)
    certificate_arn: str
    auth_issuer_url: str
    # resource_server: another authorization server (auth_issuer_url) issues the tokens the gateway
    # verifies (AUTH_ISSUER_URL). authorization_server: the gateway issues them after a login at the
    # company IdP (auth_issuer_url becomes AUTH_IDP_ISSUER_URL); needs the signing-key secret filled.
    auth_mode: Literal["resource_server", "authorization_server"] = "resource_server"
    vpc_cidr: str
    nat_gateways: int = Field(ge=1, le=3)
    gateway_desired_count: int = Field(ge=1, le=10)
    gateway_min_capacity: int = Field(ge=1, le=10)
    gateway_max_capacity: int = Field(ge=1, le=50)
    # Blue/green: minutes the previous (blue) revision keeps running after production traffic moved
    # to the new (green) one; the deployment alarms can still roll back until it ends (ECS: 0-1440).
    gateway_bake_time_minutes: int = Field(ge=0, le=1440)
    db_instance_type: str
    db_allocated_storage_gb: int = Field(ge=20, le=1000)
    db_max_allocated_storage_gb: int = Field(ge=20, le=2000)
    db_backup_retention_days: int = Field(ge=1, le=35)
    deletion_protection: bool
    redis_node_type: str
    redis_replicas: int = Field(ge=0, le=5)
    log_retention_days: int = Field(description="One of " + ", ".join(map(str, sorted(_RETENTION))))
    scan_regions: list[str] = Field(min_length=1)
    daily_snapshot_time: str
    compliance_score_alarm_threshold: float = Field(gt=0, le=100)
    alarm_email: str | None = None
    notify_email_sender: str | None = None

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str) -> str:
        if not _CERTIFICATE_ARN.fullmatch(value):
            raise ValueError(f"not an ACM certificate ARN: {value!r}")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_days(cls, value: int) -> int:
        if value not in _RETENTION:
            raise ValueError(f"log_retention_days must be one of {sorted(_RETENTION)}, got {value}")
        return value

    @field_validator("daily_snapshot_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HH_MM.fullmatch(value):
            raise ValueError(f"daily_snapshot_time must be HH:MM (24 h), got {value!r}")
        return value

    @field_validator("auth_issuer_url")
    @classmethod
    def _https_issuer(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"auth_issuer_url must be an https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentConfig:
        if not self.gateway_min_capacity <= self.gateway_desired_count <= self.gateway_max_capacity:
            raise ValueError(
                "gateway_min_capacity <= gateway_desired_count <= gateway_max_capacity is required"
            )
        if self.multi_az and self.redis_replicas < 1:
            raise ValueError("multi_az needs redis_replicas >= 1 (automatic failover needs a replica)")
        if self.db_max_allocated_storage_gb < self.db_allocated_storage_gb:
            raise ValueError("db_max_allocated_storage_gb must be >= db_allocated_storage_gb")
        return self


class AppConfig(BaseModel):
    """The selected environment plus the settings shared by all environments."""

    model_config = ConfigDict(frozen=True)

    env_name: str
    project: str
    account: str | None
    region: str
    availability_zones: list[str] = Field(min_length=3)
    aws_endpoint_url: str | None
    ecr_repository_name: str
    gateway_image_tag: str | None
    lambda_deps_dir: str
    require_lambda_deps: bool
    audit_role_name: str
    env: EnvironmentConfig

    @property
    def prefix(self) -> str:
        """``tag-compliance-dev``: the prefix of every physical name."""
        return f"{self.project}-{self.env_name}"

    @property
    def stack_prefix(self) -> str:
        """``TagCompliance-dev``: the prefix of every stack name."""
        return "".join(part.capitalize() for part in self.project.split("-")) + f"-{self.env_name}"

    @property
    def scheduler_group_name(self) -> str:
        return self.prefix

    @property
    def secret_prefix(self) -> str:
        """Secrets live under ``tagging-mcp/<env>/`` (the spec's task-role scope ``tagging-mcp/*``)."""
        return f"tagging-mcp/{self.env_name}"

    @property
    def is_prod(self) -> bool:
        return self.env_name == "prod"


def _flag(value: Any) -> bool:
    # -c key=value arrives as a string; cdk.json gives a JSON boolean.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _optional(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "null", "none")):
        return None
    return str(value)


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """``cdk.json``'s context: the defaults of an app run without the CLI (``python app.py``, tests).

    The CLI's own context (cdk.json plus ``-c``) overrides these when it runs the app.
    """
    return dict(json.loads(path.read_text(encoding="utf-8")).get("context", {}))


def load_config(scope: Construct, env_name: str | None = None) -> AppConfig:
    """Read and validate the selected environment's context from ``scope`` (the app)."""
    context = scope.node
    name = env_name or context.try_get_context("env") or "dev"
    environments = context.try_get_context("environments") or {}
    if name not in environments:
        known = ", ".join(sorted(environments)) or "none defined in cdk.json"
        raise SystemExit(f"unknown environment {name!r} (-c env=...): known environments: {known}")
    entry = dict(environments[name])
    # A per-environment value can be overridden for one run: -c certificate_arn=arn:...
    overridable = (
        "certificate_arn",
        "domain_name",
        "auth_issuer_url",
        "auth_mode",
        "alarm_email",
        "notify_email_sender",
    )
    for key in overridable:
        override = context.try_get_context(key)
        if override is not None:
            entry[key] = _optional(override)
    try:
        return AppConfig(
            env_name=name,
            project=context.try_get_context("project") or "tag-compliance",
            account=_optional(context.try_get_context("account")),
            region=context.try_get_context("region") or "us-east-1",
            availability_zones=list(context.try_get_context("availability_zones") or []),
            aws_endpoint_url=_optional(context.try_get_context("aws_endpoint_url")),
            ecr_repository_name=context.try_get_context("ecr_repository_name") or "tag-compliance-mcp",
            gateway_image_tag=_optional(context.try_get_context("gateway_image_tag")),
            lambda_deps_dir=context.try_get_context("lambda_deps_dir") or "build/lambda-deps",
            require_lambda_deps=_flag(context.try_get_context("require_lambda_deps")),
            audit_role_name=context.try_get_context("audit_role_name") or "TagComplianceAuditRole",
            env=EnvironmentConfig.model_validate(entry),
        )
    except ValidationError as error:
        raise SystemExit(f"invalid cdk.json context for environment {name!r}:\n{error}") from None

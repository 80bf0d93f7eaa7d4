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

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENVIRONMENT_NAMES = ("dev", "staging", "prod")
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLACK_WORKSPACE = re.compile(r"^T[A-Z0-9]{5,}$")
_SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{5,}$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{5,}$")
# Interface VPC endpoints an environment may choose (stacks/constructs/network.py maps each to its
# service); without one, that service's traffic leaves through the NAT gateways.
INTERFACE_ENDPOINT_NAMES = (
    "SecretsManager", "EcrApi", "EcrDocker", "Logs", "Monitoring", "StepFunctions", "Sts", "XRay",
)  # fmt: skip
# Environments whose alarms must reach someone (validated at synth).
ALARMED_ENVIRONMENTS = ("staging", "prod")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-zA-Z-]+$")
# Fields checked against a format: (pattern the whole value matches, the error; {value!r} is the value).
_FIELD_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "alarm_email": (_EMAIL, "alarm_email is not an e-mail address: {value!r}"),
    "certificate_arn": (_CERTIFICATE_ARN, "not an ACM certificate ARN: {value!r}"),
    "daily_snapshot_time": (_HH_MM, "daily_snapshot_time must be HH:MM (24 h), got {value!r}"),
    "auth_issuer_url": (
        re.compile(r"https://.*", re.DOTALL),
        "auth_issuer_url must be an https:// URL, got {value!r}",
    ),
}

# Container and service constants shared by the gateway construct, the Dockerfile and the tests.
GATEWAY_PORT = 8080
# The container's check restarts a wedged process: liveness, no I/O (a database outage is no reason
# to replace tasks). The load balancer's check routes around a task that cannot serve: readiness,
# 503 while the database does not answer (services/mcp_gateway/health.py).
GATEWAY_LIVENESS_PATH = "/health/live"
GATEWAY_READINESS_PATH = "/health/ready"
# Fargate task sizes (CPU units -> the memory sizes Fargate accepts with them, MiB).
FARGATE_MEMORY_BY_CPU = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
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
    interface_endpoints: list[str] = Field(
        description="Interface VPC endpoints, in every AZ (one of "
        + ", ".join(INTERFACE_ENDPOINT_NAMES)
        + ")"
    )
    gateway_desired_count: int = Field(ge=1, le=10)
    gateway_min_capacity: int = Field(ge=1, le=10)
    gateway_max_capacity: int = Field(ge=1, le=50)
    # Blue/green: minutes the previous (blue) revision keeps running after production traffic moved
    # to the new (green) one; the deployment alarms can still roll back until it ends (ECS: 0-1440).
    gateway_bake_time_minutes: int = Field(ge=0, le=1440)
    gateway_cpu: int = Field(
        description="Fargate CPU units of a gateway task: " + ", ".join(map(str, FARGATE_MEMORY_BY_CPU))
    )
    gateway_memory_mib: int
    # Connections (stacks/budget.py): the most each gateway task holds (DATABASE_POOL_SIZE), and the
    # reserved concurrency of the scan-batch function (the Distributed Map's child executions) and
    # of every other function.
    gateway_db_pool_size: int = Field(ge=1, le=100)
    lambda_scan_concurrency: int = Field(ge=1, le=100)
    lambda_step_concurrency: int = Field(ge=1, le=20)
    rds_proxy: bool
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
    # AWS Chatbot posts the alarms to this Slack channel (the workspace authorized once in the console).
    alarm_slack_workspace_id: str | None = None
    alarm_slack_channel_id: str | None = None
    notify_email_sender: str | None = None
    waf: bool
    # The gateway may write tags (apply/undo_tag_remediation): REMEDIATION_ENABLED and the task
    # role's tagging permissions, both only when true.
    remediation_enabled: bool
    # Route 53: with a hosted zone (id and name) and domain_name, an alias record points at the ALB.
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None

    @field_validator(*_FIELD_FORMATS)
    @classmethod
    def _formatted(cls, value: str | None, info: ValidationInfo) -> str | None:
        pattern, message = _FIELD_FORMATS[info.field_name]
        if value is not None and not pattern.fullmatch(value):
            raise ValueError(message.format(value=value))
        return value

    @field_validator("interface_endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(INTERFACE_ENDPOINT_NAMES))
        if unknown:
            raise ValueError(
                f"unknown interface endpoints {unknown}: choose from {list(INTERFACE_ENDPOINT_NAMES)}"
            )
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_days(cls, value: int) -> int:
        if value not in _RETENTION:
            raise ValueError(f"log_retention_days must be one of {sorted(_RETENTION)}, got {value}")
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
        if self.gateway_memory_mib not in FARGATE_MEMORY_BY_CPU.get(self.gateway_cpu, ()):
            raise ValueError(
                f"gateway_cpu={self.gateway_cpu} with gateway_memory_mib={self.gateway_memory_mib} is not a "
                f"Fargate task size (CPU units -> MiB: {FARGATE_MEMORY_BY_CPU})"
            )
        slack = (self.alarm_slack_workspace_id, self.alarm_slack_channel_id)
        if any(slack) and not all(slack):
            raise ValueError(
                "alarm_slack_workspace_id and alarm_slack_channel_id go together (both or neither)"
            )
        if self.alarm_slack_workspace_id and not _SLACK_WORKSPACE.fullmatch(self.alarm_slack_workspace_id):
            raise ValueError(f"alarm_slack_workspace_id is not a Slack workspace id (T...): {slack[0]!r}")
        if self.alarm_slack_channel_id and not _SLACK_CHANNEL.fullmatch(self.alarm_slack_channel_id):
            raise ValueError(f"alarm_slack_channel_id is not a Slack channel id (C... or G...): {slack[1]!r}")
        zone = (self.hosted_zone_id, self.hosted_zone_name)
        if any(zone) and not (all(zone) and self.domain_name):
            raise ValueError(
                "a Route 53 alias needs hosted_zone_id, hosted_zone_name and domain_name together"
            )
        if self.hosted_zone_id and not _HOSTED_ZONE_ID.fullmatch(self.hosted_zone_id):
            raise ValueError(
                f"hosted_zone_id is not a Route 53 hosted zone id (Z...): {self.hosted_zone_id!r}"
            )
        if self.domain_name and self.hosted_zone_name:
            zone_name = self.hosted_zone_name.rstrip(".")
            if not (self.domain_name == zone_name or self.domain_name.endswith("." + zone_name)):
                raise ValueError(f"domain_name {self.domain_name!r} is not in hosted zone {zone_name!r}")
        return self

    @property
    def alarm_destinations(self) -> list[str]:
        """Where the alarms go: ``email:...`` and/or ``slack:<workspace>/<channel>``."""
        destinations = [f"email:{self.alarm_email}"] if self.alarm_email else []
        if self.alarm_slack_channel_id:
            destinations.append(f"slack:{self.alarm_slack_workspace_id}/{self.alarm_slack_channel_id}")
        return destinations


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
    # Assumed in other accounts to write tags there (with remediation_enabled); the audit role is read-only.
    remediation_role_name: str
    env: EnvironmentConfig

    @model_validator(mode="after")
    def _alarms_reach_someone(self) -> AppConfig:
        if self.env_name in ALARMED_ENVIRONMENTS and not self.env.alarm_destinations:
            raise ValueError(
                f"{self.env_name} alarms would reach no one: set alarm_email and/or alarm_slack_workspace_id "
                f"+ alarm_slack_channel_id for {self.env_name} in cdk.json (or -c alarm_email=...)"
            )
        return self

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

    @property
    def data_removal_policy(self) -> RemovalPolicy:
        """What deleting a stack does to the data it holds (secrets, the shard ledger, access logs):
        prod keeps it, the other environments delete it."""
        return RemovalPolicy.RETAIN if self.is_prod else RemovalPolicy.DESTROY


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
        "alarm_slack_workspace_id",
        "alarm_slack_channel_id",
        "notify_email_sender",
        "hosted_zone_id",
        "hosted_zone_name",
        "remediation_enabled",
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
            remediation_role_name=context.try_get_context("remediation_role_name")
            or "TagComplianceRemediationRole",
            env=EnvironmentConfig.model_validate(entry),
        )
    except ValidationError as error:
        raise SystemExit(f"invalid cdk.json context for environment {name!r}:\n{error}") from None

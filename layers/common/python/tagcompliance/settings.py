"""The core settings, read from the environment. Nothing else reads ``os.environ``, except the
gateway's own settings (``services/mcp_gateway/settings.py``), which extend these.

Secrets are resolved here too, so every process gets them the same way: the database password
from ``DATABASE_PASSWORD`` or the Secrets Manager secret ``DATABASE_PASSWORD_SECRET_ARN`` (what a
Lambda is given: its configuration must not hold the password), and ``REDIS_URL`` from
``REDIS_HOST``/``REDIS_PORT``/``REDIS_AUTH_TOKEN`` (what the ECS task is given) when it is unset.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import TagComplianceError
from .resources import validate_region_names


def split_comma_list(value: object) -> object:
    """A comma-separated environment value as its non-empty, stripped parts; anything else as given."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list setting given as one comma-separated environment value (NoDecode: not as JSON).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_comma_list)]

APP_DIR_NAME = "tag-compliance"
# Where the policy is read from when POLICY_PATH is unset and this file exists in the working directory:
# a checkout, the gateway image (/app) and the Lambda bundle (/var/task) all run from beside it.
WORKING_DIRECTORY_POLICY = Path("policies/tagging_policy.json")


def user_data_dir() -> Path:
    """The user's data folder for this product: ``$XDG_DATA_HOME`` (``~/.local/share``) on Linux,
    ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on Windows, each + ``tag-compliance``.

    ``~/.tag-compliance`` (the default of releases before the installable command) is kept while it
    exists and the new folder does not, so an existing store and its history stay in use.
    """
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if Path(xdg).is_absolute() else home / ".local" / "share"  # the XDG spec's rule
    legacy, folder = home / ".tag-compliance", base / APP_DIR_NAME
    return legacy if legacy.is_dir() and not folder.exists() else folder


class LogSettings(BaseSettings):
    """How a process logs: what the gateway and the Lambdas read before anything else (no secrets
    to resolve, so it cannot fail where the full settings might)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="LOG_FORMAT",
        description="text (local runs) or json (one JSON object per line: what the stacks deploy).",
    )
    environment_name: str = Field(
        default="local",
        validation_alias="ENVIRONMENT_NAME",
        description="The deployment (dev, staging, prod) every JSON log line names.",
    )
    lambda_function_name: str | None = Field(
        default=None,
        validation_alias="AWS_LAMBDA_FUNCTION_NAME",
        description="Set by AWS Lambda: the process is a Lambda function (its core loggers are routed "
        "through the Powertools handler at cold start).",
    )


class Settings(LogSettings):
    """Every knob of the product, each with its environment variable and a sensible default."""

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
    scan_regions: CommaList = Field(
        default_factory=list,
        validation_alias="SCAN_REGIONS",
        description="Comma-separated regions scanned when a tool call names none; default: AWS_REGION.",
    )
    policy_path: Path = Field(
        default=WORKING_DIRECTORY_POLICY,
        validation_alias="POLICY_PATH",
        description="The tagging policy file; unset: policies/tagging_policy.json when the working "
        "directory has one (a checkout, the image, the Lambda bundle), else DATA_DIR/tagging_policy.json.",
    )
    data_dir: Path = Field(
        default_factory=user_data_dir,
        validation_alias="DATA_DIR",
        description="Where the embedded SQLite store and exported files live; unset: the user's data "
        "folder (~/.local/share/tag-compliance, ~/Library/Application Support/tag-compliance, "
        "%APPDATA%\\tag-compliance).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="postgresql://... to use PostgreSQL; unset for the embedded SQLite store.",
    )
    database_password: SecretStr | None = Field(
        default=None,
        validation_alias="DATABASE_PASSWORD",
        description="PostgreSQL password, when DATABASE_URL holds none (the ECS task gets it from Secrets "
        "Manager); unset: DATABASE_PASSWORD_SECRET_ARN, else libpq's own PGPASSWORD or ~/.pgpass.",
    )
    database_password_secret_arn: str | None = Field(
        default=None,
        validation_alias="DATABASE_PASSWORD_SECRET_ARN",
        description='Secrets Manager ARN of a JSON secret holding the PostgreSQL "password", read once at '
        "start-up (the Lambda functions: a password in their configuration would be readable).",
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
        description="redis://... to use Redis; unset: built from REDIS_HOST, else the in-memory cache.",
    )
    redis_host: str | None = Field(
        default=None,
        validation_alias="REDIS_HOST",
        description="Redis host reached over TLS (rediss://) when REDIS_URL is unset (the ECS task).",
    )
    redis_port: int = Field(default=6379, ge=1, le=65_535, validation_alias="REDIS_PORT")
    redis_auth_token: SecretStr | None = Field(
        default=None,
        validation_alias="REDIS_AUTH_TOKEN",
        description="Redis AUTH token with REDIS_HOST (the ECS task gets it from Secrets Manager).",
    )
    cache_ttl_seconds: int = Field(default=900, ge=0, le=86_400, validation_alias="CACHE_TTL_SECONDS")
    remediation_enabled: bool = Field(
        default=False,
        validation_alias="REMEDIATION_ENABLED",
        description="Let apply_tag_remediation / undo_tag_remediation write tags (off by default).",
    )
    scan_max_workers: int = Field(default=16, ge=1, le=128, validation_alias="SCAN_MAX_WORKERS")
    tool_deadline_seconds: float = Field(
        default=25.0,
        ge=3,
        le=3600,
        validation_alias="TOOL_DEADLINE_SECONDS",
        description="Every tool call answers within this many seconds (MCP clients give up after about "
        "60): a scan stops there and reports its unfinished shards in failed_shards (reason deadline).",
    )
    aws_breaker_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        validation_alias="AWS_BREAKER_FAILURES",
        description="Consecutive connection failures or timeouts after which a region's AWS requests "
        "fail at once (circuit open; failed_shards reason circuit_open).",
    )
    aws_breaker_cooldown_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        validation_alias="AWS_BREAKER_COOLDOWN_SECONDS",
        description="How long an open circuit fails requests before letting them try the region again.",
    )
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
        description="Scans of a throttled shard before it is recorded failed (both runners).",
    )
    audit_backoff_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        validation_alias="AUDIT_BACKOFF_SECONDS",
        description="Base of the exponential backoff (full jitter) between scans of a throttled shard.",
    )
    audit_plan_bucket: str | None = Field(
        default=None,
        validation_alias="AUDIT_PLAN_BUCKET",
        description="S3 bucket the plan step writes each run's plan to (the Distributed Map reads it).",
    )
    audit_batch_size: int = Field(
        default=25,
        ge=1,
        le=100,
        validation_alias="AUDIT_BATCH_SIZE",
        description="Most resource types one child execution scans (one account and region per child).",
    )
    audit_region_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        validation_alias="AUDIT_REGION_CONCURRENCY",
        description="Concurrent API calls a child execution makes into its account-region.",
    )
    audit_max_concurrency: int = Field(
        default=10,
        ge=1,
        le=10000,
        validation_alias="AUDIT_MAX_CONCURRENCY",
        description="The Distributed Map's MaxConcurrency: child executions (account-regions) at once.",
    )
    audit_tolerated_failure_percentage: float = Field(
        default=10.0,
        ge=0,
        le=100,
        validation_alias="AUDIT_TOLERATED_FAILURE_PERCENTAGE",
        description="Failed child executions (percent) beyond which the Distributed Map fails the run.",
    )
    audit_poll_seconds: float = Field(default=1.0, gt=0, le=60, validation_alias="AUDIT_POLL_SECONDS")
    audit_accounts: CommaList = Field(
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
    remediation_role_name: str = Field(
        default="TagComplianceRemediationRole",
        pattern=r"^[\w+=,.@/-]{1,64}$",
        validation_alias="REMEDIATION_ROLE_NAME",
        description="Role assumed to read and write tags in another account (the audit role is read-only).",
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

    @field_validator("audit_accounts")
    @classmethod
    def _check_accounts(cls, value: list[str]) -> list[str]:
        if bad := [account for account in value if not re.fullmatch(r"\d{12}", account)]:
            raise ValueError(f"AUDIT_ACCOUNTS must be 12-digit account ids, got {', '.join(bad)}")
        return value

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

    @field_validator("scan_regions")
    @classmethod
    def _check_regions(cls, value: list[str]) -> list[str]:
        return validate_region_names(value)

    @model_validator(mode="after")
    def _resolve_policy_path(self) -> Settings:
        # An installed command runs from wherever its client starts it (often /): a policy imported at
        # start-up is saved in the data folder, never in an unrelated working directory.
        if "policy_path" not in self.model_fields_set and not self.policy_path.is_file():
            self.policy_path = self.data_dir / "tagging_policy.json"
        return self

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

    @model_validator(mode="after")
    def _resolve_connection_secrets(self) -> Settings:
        if self.redis_url is None and self.redis_host:
            token = self.redis_auth_token.get_secret_value() if self.redis_auth_token else ""
            self.redis_url = f"rediss://:{token}@{self.redis_host}:{self.redis_port}/0"
        if self.database_password is None and self.database_password_secret_arn:
            arn = self.database_password_secret_arn
            document = self.read_secret(arn, "database password")
            try:
                password = json.loads(document)["password"]
            except (ValueError, KeyError, TypeError):
                raise TagComplianceError(f'the database secret {arn} is not JSON with a "password"') from None
            self.database_password = SecretStr(str(password))
        return self

    def read_secret(self, arn: str, what: str) -> str:
        """A Secrets Manager secret's string value; a clear error (naming the ARN, never the value)."""
        client = boto3.client(
            "secretsmanager", region_name=self.aws_region, endpoint_url=self.aws_endpoint_url
        )
        try:
            value = client.get_secret_value(SecretId=arn).get("SecretString")
        except (ClientError, BotoCoreError) as error:
            raise TagComplianceError(
                f"cannot read the {what} from Secrets Manager ({arn}): {error}"
            ) from None
        if not value:
            raise TagComplianceError(f"the {what} secret {arn} has no SecretString")
        return str(value)

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

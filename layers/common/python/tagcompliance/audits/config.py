"""Settings of the audit pipeline (read from the environment like ``tagcompliance.settings``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    ledger_table: str | None = Field(
        default=None,
        validation_alias="AUDIT_LEDGER_TABLE",
        description="DynamoDB table of the shard ledger; unset: an in-memory ledger (in-process runs only).",
    )
    ledger_region: str | None = Field(
        default=None,
        validation_alias="AUDIT_LEDGER_REGION",
        description="Region of the ledger table; default: AWS_REGION.",
    )
    scan_shard_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        validation_alias="AUDIT_SHARD_ATTEMPTS",
        description="In-process runner: attempts per throttled shard (the state machine has its own Retry).",
    )
    poll_seconds: float = Field(default=1.0, gt=0, le=60, validation_alias="AUDIT_POLL_SECONDS")

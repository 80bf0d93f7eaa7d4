"""The audit pipeline's messages: what the planner, the scanners and the aggregator pass along.

They are pydantic models so the same shapes travel between Lambda functions (as JSON through
Step Functions) and between threads of the in-process runner.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tagcompliance.compliance import Resource
from tagcompliance.inventory import ShardOutcome, UnreadableResource
from tagcompliance.models import AccountCounts, ComplianceCounts, FailedShard

RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"  # also a valid Step Functions execution name
# Fixed namespace so a run id always maps to the same snapshot id (re-runs never duplicate).
_SNAPSHOT_NAMESPACE = uuid.UUID("6d0c8f0e-3c1b-4f57-9a55-2a7a1f6d9b31")

ShardStatus = Literal["pending", "running", "ok", "failed"]
RunStatus = Literal["running", "succeeded", "failed", "unknown"]


def new_run_id() -> str:
    return f"audit-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def snapshot_id_for(run_id: str) -> str:
    """The snapshot id a run writes: derived from the run id, so a re-run finds it."""
    return str(uuid.uuid5(_SNAPSHOT_NAMESPACE, run_id))


class AuditScope(BaseModel):
    """What one audit run covers. Regions and types are already resolved (no defaults left)."""

    account_id: str = Field(description="The credentials' own account (the one running the audit).")
    accounts: list[str] = Field(
        default_factory=list,
        description="Accounts audited (others through AssumeRole); empty: account_id alone.",
    )
    regions: list[str] = Field(min_length=1, description="Regions scanned, in report order.")
    resource_types: list[str] = Field(min_length=1, description="Registry type ids, in report order.")
    trigger: str = Field(default="manual", description="manual | scheduled | daily")

    @property
    def audited_accounts(self) -> list[str]:
        return list(dict.fromkeys(self.accounts)) or [self.account_id]

    @property
    def snapshot_accounts(self) -> list[str]:
        """The snapshot's ``accounts``: the audited accounts, sorted. Its ``account_id`` is
        ``account_id`` (the account that ran the audit), never a list.

        A snapshot of several accounts is one scope (drift baselines compare the whole account
        list); each resource state and each failed shard names its own account.
        """
        return sorted(self.audited_accounts)


class Shard(BaseModel):
    """One unit of scanning: an account, a region and a resource type."""

    account_id: str
    region: str
    resource_type: str

    @property
    def shard_id(self) -> str:
        return f"{self.account_id}/{self.region}/{self.resource_type}"


class ShardSummary(BaseModel):
    """What a scanned (or failed) shard reports to the state machine: small, no resources."""

    run_id: str
    shard: Shard
    status: Literal["ok", "failed"]
    resource_count: int = 0
    unreadable_count: int = 0
    api_requests: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    attempts: int = Field(default=1, ge=1, description="Scan attempts this result took (throttling retried).")


class ShardResult(ShardSummary):
    """A shard's full result: the resources with their tags and what could not be read."""

    scanned_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # The core's own dataclasses: pydantic validates and serialises them, so no mirror models.
    resources: list[Resource] = Field(default_factory=list)
    outcomes: list[ShardOutcome] = Field(default_factory=list)
    unreadable: list[UnreadableResource] = Field(default_factory=list)

    def summary(self) -> ShardSummary:
        return ShardSummary.model_validate(self.model_dump(include=set(ShardSummary.model_fields)))


class ShardBatch(BaseModel):
    """One item of the Distributed Map's plan: shards of ONE account and region, scanned by one child.

    Keeping an account-region in one batch lets one scan share the region's Tagging API reads and
    bound its concurrent calls into that account-region (the unit AWS throttles).
    """

    batch_id: str
    account_id: str
    region: str
    resource_types: list[str] = Field(min_length=1)

    @property
    def shards(self) -> list[Shard]:
        return [
            Shard(account_id=self.account_id, region=self.region, resource_type=type_id)
            for type_id in self.resource_types
        ]


class PlannedRun(BaseModel):
    """What the plan step hands the state machine: where the plan is and how to run it, never the plan."""

    run_id: str
    correlation_id: str | None = Field(
        default=None, description="The run's correlation id: every later step passes it on to its log lines."
    )
    plan_bucket: str
    plan_key: str
    shard_count: int
    batch_count: int
    max_concurrency: int = Field(description="The Distributed Map's MaxConcurrency (child executions).")
    tolerated_failure_percentage: float = Field(
        description="The Distributed Map's ToleratedFailurePercentage (failed child executions)."
    )


class BatchReport(BaseModel):
    """What a child execution returns (small: results are in the ledger)."""

    run_id: str
    batch_id: str
    ok: int = 0
    failed: int = 0
    already_done: int = 0
    resources: int = Field(default=0, description="Resources found by the shards scanned now.")


class AuditRequest(BaseModel):
    """What starts a run: the state machine's input, and the in-process runner's argument."""

    run_id: str = Field(pattern=RUN_ID_PATTERN)
    scope: AuditScope
    policy: dict[str, Any] | None = Field(
        default=None, description="The policy document to evaluate with; None: the runner's policy file."
    )
    schedule_id: str | None = Field(
        default=None, description="The scheduled audit that started the run: its recipients are notified."
    )
    recipients: list[str] = Field(
        default_factory=list, description="Extra recipients (email addresses, Slack webhook URLs)."
    )
    correlation_id: str | None = Field(
        default=None,
        max_length=200,
        description="Who asked: the starting tool call's correlation id (its call log row's call_id); "
        "a scheduled or daily run's own run id. Every log line of the run carries it.",
    )


class AuditPlan(AuditRequest):
    shards: list[Shard]


class AuditOutcome(ComplianceCounts):
    """What a finished run produced."""

    run_id: str
    snapshot_id: str
    failed_shards: int
    failed_shard_details: list[FailedShard] = Field(
        default_factory=list,
        description="The snapshot's failed shards (account, region, type, error), at most 100.",
    )
    accounts: list[str] = Field(default_factory=list, description="The accounts the snapshot covers.")
    by_account: dict[str, AccountCounts] = Field(
        default_factory=dict,
        description="Per account with resources: found, compliant, violations and score; worst first.",
    )
    created: bool = Field(description="False when the snapshot already existed (a re-run of the same id).")


class ShardProgress(BaseModel):
    shard_id: str
    status: ShardStatus
    attempts: int = 0
    resource_count: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class AuditStatus(BaseModel):
    """Progress of a run, readable while it is under way; the outcome once it is done."""

    run_id: str
    correlation_id: str | None = Field(
        default=None, description="The run's correlation id (see AuditRequest), to find its log lines."
    )
    status: RunStatus
    runner: Literal["in_process", "step_functions", "unknown"] = "unknown"
    shards_total: int = 0
    shards_done: int = Field(default=0, description="Shards finished, failed ones included.")
    shards_failed: int = 0
    resources_scanned: int = Field(default=0, description="Resources read so far by the finished shards.")
    shards: list[ShardProgress] = Field(default_factory=list)
    outcome: AuditOutcome | None = None
    drift: dict[str, Any] | None = Field(default=None, description="The drift step's summary, once run.")
    notifications: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per recipient notified (recipients masked), once run."
    )
    error: str | None = None

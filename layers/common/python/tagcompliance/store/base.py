"""The store ports: the records, one protocol per area, and ``Store``, which combines them.

A consumer that needs one area takes that area's protocol (the OAuth provider an ``OAuthStore``,
confirmation tokens a ``SafetyStore``); ``SqlStore`` implements them all. The OAuth records and
port live in ``oauth.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tagcompliance.errors import StoreError

from .oauth import OAuthStore
from .remediations import RemediationStore


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One compliance check: its scope, score and counts. Written once, never updated.

    ``account_id`` is one account id: the account whose credentials ran the scan. For a scan of
    that account alone (every gateway scan) it is also the account scanned. For a pipeline run
    it is the runner's own account, which reaches the audited ones through ``AssumeRole`` and need
    not be one of them. What the snapshot covers is ``accounts`` (sorted), and
    ``counts_by_account`` holds each account's totals. Rows written before migration 0005 by a
    multi-account run keep the comma-joined ids they were written with in ``account_id``; their
    ``accounts`` was filled in by that migration.
    """

    snapshot_id: str
    created_at: datetime  # timezone-aware UTC
    account_id: str  # the account that ran the scan (see above)
    regions: list[str]
    resource_types: list[str]
    policy_digest: str
    policy: dict[str, Any]  # the policy document evaluated, so old snapshots stay explainable
    total_resources: int  # resources found in the scope
    scanned_resources: int  # resources the policy has requirements for
    compliant_resources: int
    compliance_score: float | None  # None when nothing was scanned
    violation_count: int
    counts_by_type: dict[str, dict[str, int]]  # type -> {"total", "compliant", "violations"}
    counts_by_region: dict[str, dict[str, int]]
    counts_by_violation: dict[str, int]  # violation_type -> count
    failed_shards: list[dict[str, Any]]  # [{"region", "resource_type", "error"}] (+ "account_id": pipeline)
    trigger: str = "manual"  # manual | scheduled | daily
    scheduled: bool = False
    # The accounts whose resources the snapshot covers, sorted; [] in a record built without them
    # means account_id alone (see covered_accounts).
    accounts: list[str] = field(default_factory=list)
    # account -> {"total", "compliant", "violations"}, like counts_by_type: accounts with resources.
    counts_by_account: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def covered_accounts(self) -> list[str]:
        """The accounts the snapshot covers: ``accounts``, or ``[account_id]`` when none are given."""
        return list(self.accounts) or ([self.account_id] if self.account_id else [])


@dataclass(frozen=True, slots=True)
class ResourceStateRecord:
    """A resource's tags as seen by one snapshot."""

    snapshot_id: str
    resource_arn: str
    resource_type: str
    region: str
    account_id: str
    tags: dict[str, str]
    compliant: bool
    name: str | None = None
    vpc_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One tool call: a row of ``call_log`` (the spec's ``audit_logs``, renamed by migration 7)."""

    timestamp: datetime
    user_id: str
    tool_name: str
    parameters: dict[str, Any]
    result_summary: dict[str, Any]
    duration_ms: int
    status: str  # success | error
    error_message: str | None = None
    client_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    # Unique per call: a row replayed from the local spool after an outage is written at most once.
    call_id: str | None = None
    id: int | None = None  # assigned by the store


@dataclass(frozen=True, slots=True)
class ScheduledAuditRecord:
    """One recurring compliance audit (the spec's ``scheduled_audits`` row).

    ``next_run`` is when it is next due, computed by ``tagcompliance.schedules``; the store only
    compares it. ``revision`` counts writes: ``update_scheduled_audit`` succeeds only for the revision
    it was read at, so an edit never silently undoes a run claimed in the meantime.
    """

    schedule_id: str
    schedule_type: str  # daily | weekly | monthly | cron
    time: str | None  # "HH:MM" (24-hour) in ``timezone``; None for cron schedules
    timezone: str  # IANA name, e.g. "America/New_York"
    recipients: list[str]  # email addresses and Slack incoming-webhook URLs
    format: str  # email | slack | both
    next_run: datetime  # timezone-aware UTC
    status: str  # active | paused | deleted
    created_by: str
    created_at: datetime
    updated_at: datetime
    cron_expression: str | None = None  # the 5-field expression, for cron schedules
    day_of_week: str | None = None  # "monday".."sunday", for weekly schedules
    day_of_month: int | None = None  # 1..31, for monthly schedules
    resource_types: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)  # [] = the server's default regions
    last_run: datetime | None = None  # when the latest run was claimed
    last_run_status: str | None = None  # running | success | error
    last_snapshot_id: str | None = None
    last_error: str | None = None
    external_id: str | None = None  # the EventBridge Scheduler schedule ARN, once synced
    revision: int = 0  # assigned by the store


class ConcurrentUpdateError(StoreError):
    """The record changed since it was read (another writer, or a scheduled run); read it again."""


@dataclass(frozen=True, slots=True)
class StoreInfo:
    backend: str  # "sqlite" | "postgresql"
    location: str  # file path, or the URL with the password removed
    schema_version: int
    details: dict[str, Any] = field(default_factory=dict)


# --- agent safety (tagcompliance.safety) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class InventoryCount:
    """How many resources of one type one region held, per the newest snapshot that read it."""

    resource_type: str
    region: str
    resources: int
    snapshot_id: str
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class ConfirmationRecord:
    """A single-use confirmation token (stored as its SHA-256 hash) bound to an intent commit."""

    token_hash: str
    organization: str
    user_id: str
    operation: str
    parameters: dict[str, Any]
    parameters_digest: str
    estimate: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    client_id: str | None = None
    belief_id: str | None = None
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BeliefRecord:
    """What the server understood a request to mean, and afterwards whether the outcome matched."""

    belief_id: str
    created_at: datetime
    organization: str
    user_id: str
    tool_name: str
    stage: str  # clarification | commit | executed | dry_run | refused
    understood: dict[str, Any]
    assumptions: list[str]
    alternatives: list[dict[str, Any]]
    estimate: dict[str, Any]
    warnings: list[dict[str, Any]]
    client_id: str | None = None
    outcome: dict[str, Any] | None = None
    outcome_matched: bool | None = None
    outcome_notes: str | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RegretEventRecord:
    """A regret warning shown to a caller, then resolved as corrected (parameter changed) or kept."""

    created_at: datetime
    organization: str
    user_id: str
    tool_name: str
    rule_id: str
    parameter: str
    value: Any
    status: str = "shown"  # shown | corrected | kept
    resolved_at: datetime | None = None
    id: int | None = None  # assigned by the store


class SnapshotStore(Protocol):
    """Compliance snapshots, their per-resource states, and the inventory counts derived from them."""

    def save_snapshot(self, snapshot: SnapshotRecord, resources: Iterable[ResourceStateRecord]) -> None:
        """Write the snapshot and its resource states in one transaction (all or nothing)."""
        ...

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None: ...

    def list_snapshots(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[SnapshotRecord]:
        """Snapshots with ``since <= created_at < until``, oldest first, at most ``limit``."""
        ...

    def latest_snapshot(self) -> SnapshotRecord | None: ...

    def iter_resource_states(self, snapshot_id: str) -> Iterator[ResourceStateRecord]:
        """A snapshot's resource states ordered by ARN, streamed (not loaded all at once)."""
        ...

    def inventory_counts(
        self, resource_types: Sequence[str] | None = None, regions: Sequence[str] | None = None
    ) -> list[InventoryCount]:
        """Per (type, region) pair, the resource count of the newest snapshot that read it successfully
        (a pair in a snapshot's scope with no resources counts 0). None means any type / region.
        Pairs no stored snapshot covers are absent: their size is unknown."""
        ...


class CallLogStore(Protocol):
    """The log of tool calls (the ``call_log`` table), not to be confused with the compliance audit runs."""

    def record_call(self, record: CallRecord) -> None:
        """Write one call; a record whose ``call_id`` is already stored is not written again."""
        ...

    def list_calls(self, limit: int = 100, tool_name: str | None = None) -> list[CallRecord]:
        """Newest first."""
        ...


class ScheduleStore(Protocol):
    """Scheduled compliance audits and the claiming of their runs."""

    def create_scheduled_audit(self, record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        """Insert a new schedule; StoreError if the id is taken. Returns it as stored (revision 0)."""
        ...

    def get_scheduled_audit(self, schedule_id: str) -> ScheduledAuditRecord | None: ...

    def list_scheduled_audits(self, status: str | None = None) -> list[ScheduledAuditRecord]:
        """Every schedule (or those with ``status``), oldest first."""
        ...

    def update_scheduled_audit(self, record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        """Replace the whole row if it is still at ``record.revision``; return it at the next revision.

        StoreError if the schedule does not exist; ConcurrentUpdateError if it changed since read.
        """
        ...

    def due_scheduled_audits(self, now: datetime, limit: int = 100) -> list[ScheduledAuditRecord]:
        """Active schedules with ``next_run <= now``, most overdue first."""
        ...

    def claim_scheduled_run(
        self, schedule_id: str, expected_next_run: datetime, new_next_run: datetime, now: datetime
    ) -> bool:
        """Atomically move an active schedule from ``expected_next_run`` to ``new_next_run``.

        Sets ``last_run = now`` and ``last_run_status = "running"``. True for exactly one of any
        number of concurrent callers with the same ``expected_next_run`` (across processes too);
        False when the schedule has moved on, was paused or deleted, or does not exist.
        """
        ...

    def record_scheduled_run(
        self, schedule_id: str, run_at: datetime, snapshot_id: str | None, error: str | None
    ) -> bool:
        """Record how the run claimed at ``run_at`` ended (error None = success).

        False, and nothing written, when a later run has been claimed since.
        """
        ...


class SafetyStore(Protocol):
    """Agent safety (``tagcompliance.safety``): confirmation tokens, beliefs and regret warnings."""

    def save_confirmation(self, record: ConfirmationRecord) -> None: ...

    def get_confirmation(self, token_hash: str) -> ConfirmationRecord | None: ...

    def consume_confirmation(self, token_hash: str, now: datetime) -> bool:
        """Mark the token used if it is unused and unexpired; True for exactly one concurrent caller."""
        ...

    def record_belief(self, record: BeliefRecord) -> None: ...

    def update_belief_outcome(
        self,
        belief_id: str,
        outcome: dict[str, Any],
        matched: bool | None,
        notes: str | None,
        resolved_at: datetime,
        stage: str | None = None,
    ) -> bool:
        """Record how a belief turned out (and optionally its new stage); False if it does not exist."""
        ...

    def list_beliefs(
        self,
        organization: str | None = None,
        limit: int = 100,
        tool_name: str | None = None,
        user_id: str | None = None,
        stage: str | None = None,
        since: datetime | None = None,
    ) -> list[BeliefRecord]:
        """Newest first."""
        ...

    def record_regret_event(self, record: RegretEventRecord) -> RegretEventRecord:
        """Insert; returns the record with its id."""
        ...

    def open_regret_events(self, organization: str, user_id: str, tool_name: str) -> list[RegretEventRecord]:
        """Warnings shown to this caller for this tool and not yet resolved, oldest first."""
        ...

    def resolve_regret_event(self, event_id: int, status: str, resolved_at: datetime) -> bool: ...

    def regret_correction_counts(self, organization: str) -> dict[str, int]:
        """rule_id -> how many times users changed the warned parameter after that rule's warning."""
        ...


class Store(SnapshotStore, CallLogStore, ScheduleStore, SafetyStore, OAuthStore, RemediationStore, Protocol):
    """The whole persistence port: every area, plus the schema and the connection's lifecycle."""

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version. Safe to call repeatedly."""
        ...

    def info(self) -> StoreInfo: ...

    def close(self) -> None: ...

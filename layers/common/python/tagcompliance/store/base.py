"""The store port: records and the ``Store`` protocol both backends implement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tagcompliance.errors import StoreError


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One compliance check: its scope, score and counts. Written once, never updated."""

    snapshot_id: str
    created_at: datetime  # timezone-aware UTC
    account_id: str
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
    failed_shards: list[dict[str, Any]]  # [{"region", "resource_type", "error"}]
    trigger: str = "manual"  # manual | scheduled | daily
    scheduled: bool = False


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
class AuditRecord:
    """One tool call (the spec's ``audit_logs`` row)."""

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


class Store(Protocol):
    """Persistence for snapshots, per-resource tag state and the audit log."""

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version. Safe to call repeatedly."""
        ...

    def info(self) -> StoreInfo: ...

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

    def record_audit(self, record: AuditRecord) -> None: ...

    def list_audit_logs(self, limit: int = 100, tool_name: str | None = None) -> list[AuditRecord]:
        """Newest first."""
        ...

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

    def close(self) -> None: ...

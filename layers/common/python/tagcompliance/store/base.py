"""The store port: records and the ``Store`` protocol both backends implement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


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

    def close(self) -> None: ...

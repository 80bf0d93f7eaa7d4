"""The tag remediation journal's records and its store port (``RemediationStore``).

A remediation is one run of ``apply_tag_remediation`` (kind ``apply``) or ``undo_tag_remediation``
(kind ``undo``, ``undoes`` naming the apply). Its items, one per resource, are written before any
tag is changed in AWS and updated with each outcome, so the journal is also the audit of every
write (user, client, remediation id) and the record a crashed run is recovered from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

RemediationKind = Literal["apply", "undo"]
RemediationStatus = Literal["running", "completed", "interrupted"]
ItemStatus = Literal["pending", "applied", "unchanged", "failed", "skipped", "unknown"]


@dataclass(frozen=True, slots=True)
class RemediationRecord:
    remediation_id: str
    kind: str  # RemediationKind
    undoes: str | None  # for an undo: the apply it reverts
    status: str  # RemediationStatus
    user_id: str
    client_id: str | None
    account_id: str
    owner: str  # host:pid of the process that writes it
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]  # counts by outcome, by type and by region


@dataclass(frozen=True, slots=True)
class RemediationItemRecord:
    remediation_id: str
    resource_arn: str
    resource_type: str
    region: str  # the region written to ("" never: S3 buckets carry their bucket's region)
    before_tags: dict[str, str]
    set_tags: dict[str, str]
    remove_keys: list[str]
    after_tags: dict[str, str]
    status: str  # ItemStatus
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    resource_arn: str
    status: str  # ItemStatus
    error: str | None = None


class RemediationStore(Protocol):
    """The journal: a run and its items are written together, before anything changes in AWS."""

    def create_remediation(self, record: RemediationRecord, items: Sequence[RemediationItemRecord]) -> None:
        """Raises StoreError when it cannot be stored: then nothing may be written to AWS."""
        ...

    def record_item_outcomes(
        self, remediation_id: str, outcomes: Sequence[ItemOutcome], at: datetime
    ) -> None: ...

    def finish_remediation(
        self, remediation_id: str, status: str, summary: dict[str, Any], at: datetime
    ) -> None: ...

    def get_remediation(self, remediation_id: str) -> RemediationRecord | None: ...

    def list_remediation_items(self, remediation_id: str) -> list[RemediationItemRecord]: ...

    def list_remediations(
        self, since: datetime | None = None, kind: str | None = None, limit: int = 100
    ) -> list[RemediationRecord]:
        """Oldest first."""
        ...

    def find_undo(self, remediation_id: str) -> RemediationRecord | None:
        """The newest undo of this apply, if any."""
        ...

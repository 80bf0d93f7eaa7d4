"""What the remediation tools answer: the diff of each resource and each resource's outcome."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["applied", "unchanged", "failed", "skipped", "pending", "unknown"]


class ResourceDiff(BaseModel):
    """One resource's change, before -> after."""

    resource_arn: str
    resource_type: str
    region: str
    before: dict[str, str]
    after: dict[str, str]
    added: dict[str, str] = Field(default_factory=dict, description="Keys the resource did not have.")
    changed: dict[str, list[str]] = Field(
        default_factory=dict, description="Overwritten values: key -> [before, after]."
    )
    removed: dict[str, str] = Field(default_factory=dict, description="Keys removed, with their value.")
    note: str | None = Field(default=None, description="Why nothing is written (unchanged, skipped).")


class PolicyPreview(BaseModel):
    """What the policy says about the changed resources before and after (evaluated locally)."""

    resources: int
    compliant_before: int
    compliant_after: int
    violations_before: int
    violations_after: int


class ChangeSetPreview(BaseModel):
    """The intent commit's details: the exact diff the confirmation token binds."""

    change_set_digest: str
    resources: int
    to_write: int
    unchanged: int
    skipped: int = 0
    refused_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="Accounts whose remediation role cannot be assumed -> why (not written).",
    )
    by_type: dict[str, int]
    by_region: dict[str, int]
    by_account: dict[str, int] = Field(default_factory=dict, description="Resources to write per account.")
    policy_after: PolicyPreview
    regrets: list[str] = Field(description="Overwritten existing values, values the policy rejects.")
    diffs: list[ResourceDiff]
    write_requests: int = Field(description="Estimated AWS write requests (20 ARNs a Tagging API request).")


class ResourceOutcome(BaseModel):
    resource_arn: str
    resource_type: str
    region: str
    status: Outcome
    error: str | None = None
    before_tags: dict[str, str]
    after_tags: dict[str, str] = Field(description="The tags intended (and, when applied, written).")


class RemediationResult(BaseModel):
    remediation_id: str
    kind: Literal["apply", "undo"]
    undoes: str | None = None
    status: Literal["completed", "interrupted", "running"]
    applied: int
    unchanged: int
    failed: int
    skipped: int
    pending: int = Field(default=0, description="Not known to be written: an interrupted run.")
    resources: list[ResourceOutcome]
    write_requests: int = Field(description="AWS write requests this run sent.")
    recovered: bool = Field(
        default=False, description="The run undone was interrupted; its journal was reconciled with AWS."
    )
    cache_invalidated: bool = Field(
        description="Cached scans were invalidated: the next check_tag_compliance reads AWS again."
    )
    undo: str | None = Field(default=None, description="How to take it back.")

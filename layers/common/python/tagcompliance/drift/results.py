"""What drift detection returns: one tag's drift, resources added or removed, the whole result."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tagcompliance.models import Coverage

DriftChange = Literal["added", "removed", "changed"]
DriftSeverity = Literal["critical", "warning", "info"]
Attribution = Literal["cloudtrail", "unavailable"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}


class TagDrift(BaseModel):
    resource_arn: str
    resource_type: str
    region: str
    tag: str = Field(description="The tag key as it is now (as it was, for a removal).")
    previous_key: str | None = Field(
        default=None, description="Set when the key changed only in case: the key as it was."
    )
    change: DriftChange
    old_value: str | None
    new_value: str | None
    severity: DriftSeverity
    reason: str = Field(description="Why this severity, in words.")
    changed_at: datetime | None = None
    changed_by: str | None = None
    event_name: str | None = None
    attribution: Attribution = "unavailable"


class ResourceChange(BaseModel):
    resource_arn: str
    resource_type: str
    region: str


class UnobservedResource(ResourceChange):
    unobserved_in: Literal["baseline", "current"] = Field(
        description="Which snapshot could not read the resource's shard: it may exist unchanged there, "
        "so it is neither added nor removed."
    )


class DriftResult(BaseModel):
    drift_detected: list[TagDrift] = Field(description="Most severe first, then by ARN and tag key.")
    total_drifts: int = Field(description="All drifts found, also when drift_detected is truncated.")
    by_severity: dict[str, int]
    by_account: dict[str, int] = Field(
        default_factory=dict,
        description="Drifts per account (the account each resource was read in), most first.",
    )
    threshold: int | None = None
    threshold_exceeded: bool | None = Field(
        default=None, description="total_drifts >= threshold; null when no threshold was given."
    )
    baseline_snapshot_id: str | None = None
    baseline_taken_at: datetime | None = None
    observed_at: datetime
    resources_compared: int = Field(description="Resources present in the baseline and now.")
    resources_added: list[ResourceChange] = Field(description="Resources that appeared since the baseline.")
    resources_removed: list[ResourceChange] = Field(description="Resources gone since the baseline.")
    total_resources_added: int
    total_resources_removed: int
    resources_unobserved: list[UnobservedResource] = Field(
        default_factory=list,
        description="Resources seen on one side only, in a shard the other side could not read.",
    )
    total_resources_unobserved: int = 0
    baseline_coverage: Coverage | None = Field(
        default=None, description="What the baseline snapshot could read (partial: some shards failed)."
    )
    current_coverage: Coverage | None = Field(default=None, description="What the current scan could read.")
    truncated: bool = False
    notes: list[str] = Field(default_factory=list)

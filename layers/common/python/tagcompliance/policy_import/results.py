"""What the policy-import functions return: summaries, conversions, imports and start-up detection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tagcompliance.policy import (
    TaggingPolicy,
)


class TagPolicySummary(BaseModel):
    id: str
    arn: str | None = None
    name: str | None = None
    description: str | None = None
    aws_managed: bool = False


class ConversionSummary(BaseModel):
    required_tags_count: int
    optional_tags_count: int
    enforced_services: list[str] = Field(
        description="Services (as AWS names them) for which the policy blocks noncompliant tagging."
    )
    enforced_types: list[str] = Field(description="Registry resource types of those enforcements.")


class ConversionResult(BaseModel):
    policy: TaggingPolicy
    summary: ConversionSummary
    warnings: list[str] = Field(
        default_factory=list,
        description="Every AWS construct not carried into the policy as is, with its path and what was done.",
    )


ImportStatus = Literal["success", "choose_policy", "no_policy"]


class ImportResult(BaseModel):
    status: ImportStatus
    message: str
    policy: TaggingPolicy | None = None
    source_policy: TagPolicySummary | None = Field(
        default=None, description="The AWS tag policy imported (None for an effective policy)."
    )
    saved_to: str | None = None
    replaced_existing_file: bool = False
    summary: ConversionSummary | None = None
    warnings: list[str] = Field(default_factory=list)
    available_policies: list[TagPolicySummary] = Field(default_factory=list)


DetectionSource = Literal["file", "aws_tag_policy", "aws_effective_tag_policy", "default"]


class DetectionOutcome(BaseModel):
    """What start-up detection chose and why: for the start-up log and ``/health``."""

    source: DetectionSource
    reason: str
    policy_path: str
    policy: TaggingPolicy | None = Field(
        default=None, description="The policy chosen; None for 'file' (the file is loaded as usual)."
    )
    source_policy: TagPolicySummary | None = None
    saved_to: str | None = None
    summary: ConversionSummary | None = None
    warnings: list[str] = Field(default_factory=list)
    aws_called: bool = False

    @property
    def description(self) -> str:
        where = {
            "file": f"existing file {self.policy_path}",
            "aws_tag_policy": "AWS Organizations tag policy"
            + (f" {self.source_policy.id}" if self.source_policy else ""),
            "aws_effective_tag_policy": "AWS Organizations effective tag policy",
            "default": "built-in default policy (CostCenter, Owner, Environment)",
        }[self.source]
        return f"{where}: {self.reason}"

"""Cloud Custodian generation's constants and result models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["pull", "periodic", "cloudtrail"]
MODES: tuple[str, ...] = ("pull", "periodic", "cloudtrail")

POLICY_PREFIX = "tag-compliance"
DEFAULT_SCHEDULE = "rate(1 day)"
# Lambda modes need an execution role; c7n expands {account_id} when it loads the policy.
PLACEHOLDER_ROLE_ARN = "arn:aws:iam::{account_id}:role/REPLACE-ME-custodian-tag-compliance"
MARK_TAG = "tag-compliance-status"
MARK_OP = "notify"
MIN_MARK_DAYS, MAX_MARK_DAYS = 1, 90
MAX_TAG_VALUE_LENGTH = 256  # AWS limit on a tag value
# c7n deploys a Lambda-mode policy as the function "custodian-<name>" (at most 64 characters) and
# rejects a description longer than 256 characters; every policy respects both, whatever its mode.
MAX_POLICY_NAME_LENGTH = 64 - len("custodian-")
MAX_DESCRIPTION_LENGTH = 256

# Create events c7n has CloudTrail shortcuts for (c7n.cwe.CloudWatchEvents.trail_events) whose ids
# are the ids of the registry type's c7n resource. Other types have no shortcut (or one for a
# different resource: CreateCluster is Redshift's, CreateLoadBalancer yields classic ELB names).
CLOUDTRAIL_EVENTS: dict[str, str] = {
    "ec2:instance": "RunInstances",
    "ec2:volume": "CreateVolume",
    "rds:db": "CreateDBInstance",
    "s3:bucket": "CreateBucket",
    "lambda:function": "CreateFunction",
    "dynamodb:table": "CreateTable",
    "opensearch:domain": "CreateElasticsearchDomain",
}


class SkippedType(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    reason: str


class CustodianPolicies(BaseModel):
    """Generated Cloud Custodian policies: the YAML document and the same policies as data."""

    yaml: str = Field(description="The policy file: a `policies:` list, ready for `custodian run`.")
    policies: list[dict[str, Any]] = Field(description="The policies of `yaml`, as data.")
    resource_types: list[str] = Field(description="Registry types that got at least one policy.")
    skipped: list[SkippedType] = Field(description="Requested types without a policy, and why.")
    notes: list[str] = Field(description="How to run the policies and what they cannot do.")
    dry_run: bool
    mode: Mode

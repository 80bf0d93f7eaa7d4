"""The read-only IAM actions the product needs, derived from the code that makes the calls.

The resource registry (``tagcompliance.resources.REGISTRY``) records, per type, the boto3 client
and paginator its listing uses; botocore knows each operation's API name and each service's IAM
prefix (its signing name). The per-resource tag readers are closures, so their actions are a
reviewed table keyed by client; synth fails when a registry row uses a client the table lacks.
"""

from __future__ import annotations

from functools import lru_cache

import botocore.session
from botocore import xform_name

from tagcompliance.resources import REGISTRY

# IAM action names that differ from the API operation's name.
_ACTION_OVERRIDES = {("s3", "ListBuckets"): "s3:ListAllMyBuckets"}

# Per-resource tag readers (tagcompliance.resources ``TagReader``), reviewed against their code.
TAG_READER_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3": ("s3:GetBucketTagging",),
    "lambda": ("lambda:ListTags",),
    "ecs": ("ecs:ListTagsForResource",),
    "eks": ("eks:ListTagsForResource",),
    "dynamodb": ("dynamodb:ListTagsOfResource",),
    "elasticache": ("elasticache:ListTagsForResource",),
    "opensearch": ("es:ListTags",),
    "sns": ("sns:ListTagsForResource",),
    "sqs": ("sqs:GetQueueUrl", "sqs:ListQueueTags"),
    "elbv2": ("elasticloadbalancing:DescribeTags",),
    "kinesis": ("kinesis:ListTagsForStream",),
}

# The Resource Groups Tagging API (inventory) and the account's enabled regions (regions=["all"]).
TAGGING_ACTIONS = ("tag:GetResources", "ec2:DescribeRegions")
# tagcompliance.cost: spend, resource-level spend (last 14 days) and cost allocation tag status.
COST_EXPLORER_ACTIONS = ("ce:GetCostAndUsage", "ce:GetCostAndUsageWithResources", "ce:ListCostAllocationTags")
# tagcompliance.policy_import: tag policies (management account / delegated admin) and effective policy.
ORGANIZATIONS_ACTIONS = (
    "organizations:ListPolicies",
    "organizations:DescribePolicy",
    "organizations:DescribeEffectivePolicy",
    "organizations:ListPoliciesForTarget",
    "organizations:ListParents",
)
# tagcompliance.scope: the organization's accounts (AUDIT_ACCOUNTS_FROM_ORGANIZATIONS) and whether
# the credentials' account is its management (payer) account (the cost gap per account).
ORGANIZATIONS_ACCOUNT_ACTIONS = ("organizations:ListAccounts", "organizations:DescribeOrganization")
# tagcompliance.drift: who changed a tag.
CLOUDTRAIL_ACTIONS = ("cloudtrail:LookupEvents",)
# tagcompliance.audits.runner.StepFunctionsRunner: on the audit state machine only.
STATE_MACHINE_START_ACTIONS = ("states:StartExecution",)
STATE_MACHINE_EXECUTION_ACTIONS = ("states:DescribeExecution",)


# Writing tags (tagcompliance.tagging; only with remediation_enabled). The Tagging API's own actions
# take no resource scope; the service actions it calls on the caller's behalf (and the S3 API the
# writer uses for buckets) are scoped to the registry's ARN patterns, keyed by the ARN's service.
TAGGING_WRITE_ACTIONS = ("tag:TagResources", "tag:UntagResources")
SERVICE_TAG_WRITE_ACTIONS: dict[str, tuple[str, ...]] = {
    "ec2": ("ec2:CreateTags", "ec2:DeleteTags"),
    "rds": ("rds:AddTagsToResource", "rds:RemoveTagsFromResource"),
    "s3": ("s3:GetBucketLocation", "s3:GetBucketTagging", "s3:PutBucketTagging"),
    "lambda": ("lambda:TagResource", "lambda:UntagResource"),
    "ecs": ("ecs:TagResource", "ecs:UntagResource"),
    "eks": ("eks:TagResource", "eks:UntagResource"),
    "dynamodb": ("dynamodb:TagResource", "dynamodb:UntagResource"),
    "elasticache": ("elasticache:AddTagsToResource", "elasticache:RemoveTagsFromResource"),
    "elasticfilesystem": ("elasticfilesystem:TagResource", "elasticfilesystem:UntagResource"),
    "es": ("es:AddTags", "es:RemoveTags"),
    "sns": ("sns:TagResource", "sns:UntagResource"),
    "sqs": ("sqs:TagQueue", "sqs:UntagQueue"),
    "elasticloadbalancing": ("elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"),
    "kinesis": ("kinesis:AddTagsToStream", "kinesis:RemoveTagsFromStream"),
    "secretsmanager": ("secretsmanager:TagResource", "secretsmanager:UntagResource"),
}


def tag_write_grants(partition: str, account: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(actions, resource ARN patterns) per service of the registry, for the gateway's task role."""
    patterns: dict[str, set[str]] = {}
    for row in REGISTRY.values():
        service = row.arn_service
        if service not in SERVICE_TAG_WRITE_ACTIONS:
            raise SystemExit(
                f"resource type {row.id!r} ({service}) has no tag write actions: add them to "
                "stacks/permissions.py SERVICE_TAG_WRITE_ACTIONS"
            )
        if row.global_arn:
            pattern = f"arn:{partition}:{service}:::*"
        else:
            head = f"{row.arn_prefix}{row.arn_separator}" if row.arn_prefix else ""
            pattern = f"arn:{partition}:{service}:*:{account}:{head}*"
        patterns.setdefault(service, set()).add(pattern)
    return [(SERVICE_TAG_WRITE_ACTIONS[s], sorted(p)) for s, p in sorted(patterns.items())]


def remediation_role_actions() -> tuple[str, ...]:
    """The actions of the remediation role in a member account (README, "Setting up an organization"):
    the Tagging API's reads and writes, every registry service's tag writes, and the per-resource tag
    reads the plan's reads use. No listing: finding a resource is the audit role's."""
    readers = {
        action
        for row in REGISTRY.values()
        if row.tag_reader is not None
        for action in TAG_READER_ACTIONS[row.tag_reader.client]
    }
    writes = {action for actions in SERVICE_TAG_WRITE_ACTIONS.values() for action in actions}
    return tuple(sorted({"tag:GetResources", *TAGGING_WRITE_ACTIONS, *writes, *readers}))


@lru_cache(maxsize=1)
def _botocore() -> botocore.session.Session:
    return botocore.session.get_session()


def api_action(client: str, operation: str) -> str:
    """``("efs", "describe_file_systems")`` -> ``elasticfilesystem:DescribeFileSystems``."""
    model = _botocore().get_service_model(client)
    names = {xform_name(name): name for name in model.operation_names}
    if operation not in names:
        raise ValueError(f"boto3 client {client!r} has no operation {operation!r}")
    api_name = names[operation]
    prefix = model.signing_name
    return _ACTION_OVERRIDES.get((prefix, api_name), f"{prefix}:{api_name}")


@lru_cache(maxsize=1)
def resource_read_actions() -> tuple[str, ...]:
    """Every action scanning the registry's types needs: listings plus per-resource tag reads."""
    actions: set[str] = set(TAGGING_ACTIONS)
    for row in REGISTRY.values():
        actions.add(api_action(row.listing.client, row.listing.operation))
        if row.tag_reader is not None:
            if row.tag_reader.client not in TAG_READER_ACTIONS:
                raise SystemExit(
                    f"resource type {row.id!r} reads tags with the {row.tag_reader.client!r} client: add its "
                    "IAM actions to stacks/permissions.py TAG_READER_ACTIONS"
                )
            actions.update(TAG_READER_ACTIONS[row.tag_reader.client])
    return tuple(sorted(actions))


def gateway_read_actions() -> tuple[str, ...]:
    """The gateway task role's account-wide read actions (``Resource: *``: these APIs have no ARN scope)."""
    return tuple(
        sorted(
            {
                *resource_read_actions(),
                *COST_EXPLORER_ACTIONS,
                *ORGANIZATIONS_ACTIONS,
                *ORGANIZATIONS_ACCOUNT_ACTIONS,
                *CLOUDTRAIL_ACTIONS,
            }
        )
    )


def pipeline_read_actions() -> tuple[str, ...]:
    """The audit Lambdas' account-wide read actions: scanning, drift attribution, policy import."""
    return tuple(
        sorted(
            {
                *resource_read_actions(),
                *ORGANIZATIONS_ACTIONS,
                *ORGANIZATIONS_ACCOUNT_ACTIONS,
                *CLOUDTRAIL_ACTIONS,
            }
        )
    )

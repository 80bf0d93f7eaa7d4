"""IAM actions derived from the resource registry and botocore."""

from __future__ import annotations

import pytest

from stacks.permissions import (
    TAG_READER_ACTIONS,
    api_action,
    gateway_read_actions,
    remediation_role_actions,
    resource_read_actions,
)
from tagcompliance.resources import REGISTRY


@pytest.mark.parametrize(
    ("client", "operation", "action"),
    [
        ("ec2", "describe_instances", "ec2:DescribeInstances"),
        ("efs", "describe_file_systems", "elasticfilesystem:DescribeFileSystems"),
        ("opensearch", "list_domain_names", "es:ListDomainNames"),
        ("elbv2", "describe_load_balancers", "elasticloadbalancing:DescribeLoadBalancers"),
        ("s3", "list_buckets", "s3:ListAllMyBuckets"),
        ("rds", "describe_db_instances", "rds:DescribeDBInstances"),
    ],
)
def test_api_action_maps_boto3_names_to_iam_actions(client: str, operation: str, action: str) -> None:
    assert api_action(client, operation) == action


def test_unknown_operation_is_an_error() -> None:
    with pytest.raises(ValueError, match="no operation"):
        api_action("ec2", "describe_everything")


def test_every_registry_type_is_covered_and_nothing_writes() -> None:
    actions = set(resource_read_actions())
    for row in REGISTRY.values():
        assert api_action(row.listing.client, row.listing.operation) in actions, row.id
        if row.tag_reader is not None:
            assert set(TAG_READER_ACTIONS[row.tag_reader.client]) <= actions, row.id
    verbs = {action.split(":", 1)[1] for action in gateway_read_actions()}
    assert all(verb.startswith(("Describe", "List", "Get", "Lookup")) for verb in verbs), verbs


def test_the_remediation_role_reads_and_writes_tags_and_lists_nothing() -> None:
    actions = set(remediation_role_actions())
    assert {"tag:GetResources", "tag:TagResources", "tag:UntagResources"} <= actions
    # The writer's per-service actions (SQS through the Tagging API, S3 through its own API) and the
    # plan's per-resource tag reads.
    assert {"sqs:TagQueue", "sqs:UntagQueue", "s3:PutBucketTagging", "s3:GetBucketTagging"} <= actions
    assert {"sqs:ListQueueTags", "lambda:ListTags", "elasticloadbalancing:DescribeTags"} <= actions
    listings = {api_action(row.listing.client, row.listing.operation) for row in REGISTRY.values()}
    assert not actions & listings, sorted(actions & listings)

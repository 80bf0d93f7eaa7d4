"""The registry and ARN parsing: every type, every partition, and errors that say what is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tagcompliance.errors import InvalidInputError
from tagcompliance.resources import (
    PARTITIONS,
    REGISTRY,
    RESOURCE_TYPE_IDS,
    parse_arn,
    resolve_resource_types,
    resource_id_from_arn,
)

REQUIRED_TYPES = {
    "ec2:instance",
    "ec2:volume",
    "ec2:snapshot",
    "ec2:natgateway",
    "rds:db",
    "rds:cluster",
    "s3:bucket",
    "lambda:function",
    "ecs:cluster",
    "ecs:service",
    "eks:cluster",
    "dynamodb:table",
    "elasticache:cluster",
    "elasticfilesystem:file-system",
    "opensearch:domain",
    "sns:topic",
    "sqs:queue",
    "elasticloadbalancing:loadbalancer",
    "kinesis:stream",
    "secretsmanager:secret",
}

# One real-shaped identifier per type, to build and parse ARNs in every partition.
SAMPLE_IDS = {
    "ec2:instance": "i-0123456789abcdef0",
    "ec2:volume": "vol-0123456789abcdef0",
    "ec2:snapshot": "snap-0123456789abcdef0",
    "ec2:natgateway": "nat-0123456789abcdef0",
    "rds:db": "orders-db",
    "rds:cluster": "orders-aurora",
    "s3:bucket": "finops-logs.example",
    "lambda:function": "resize-images",
    "ecs:cluster": "payments",
    "ecs:service": "payments/api",
    "eks:cluster": "platform",
    "dynamodb:table": "orders",
    "elasticache:cluster": "sessions-001",
    "elasticfilesystem:file-system": "fs-0123abcd",
    "opensearch:domain": "search-logs",
    "sns:topic": "alerts.fifo",
    "sqs:queue": "jobs-dlq",
    "elasticloadbalancing:loadbalancer": "app/web/50dc6c495c0c9188",
    "kinesis:stream": "clickstream",
    "secretsmanager:secret": "prod/db-AbCdEf",
}

REGION_FOR = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}


def test_registry_has_every_required_type() -> None:
    assert set(RESOURCE_TYPE_IDS) >= REQUIRED_TYPES
    assert len(RESOURCE_TYPE_IDS) >= 20
    assert set(SAMPLE_IDS) == set(RESOURCE_TYPE_IDS), "add a sample id for every new registry row"


@pytest.mark.parametrize("partition", PARTITIONS)
@pytest.mark.parametrize("type_id", sorted(SAMPLE_IDS))
def test_arn_round_trip_for_every_type_and_partition(type_id: str, partition: str) -> None:
    row = REGISTRY[type_id]
    arn = row.build_arn(partition, REGION_FOR[partition], "123456789012", SAMPLE_IDS[type_id])
    parsed = parse_arn(arn)
    assert parsed.resource_type == type_id
    assert parsed.partition == partition
    assert parsed.resource_id == SAMPLE_IDS[type_id]
    assert resource_id_from_arn(row, arn) == SAMPLE_IDS[type_id]
    if type_id == "s3:bucket":
        assert arn == f"arn:{partition}:s3:::finops-logs.example"
        assert (parsed.region, parsed.account_id) == ("", "")
    else:
        assert (parsed.region, parsed.account_id) == (REGION_FOR[partition], "123456789012")


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("", "empty"),
        ("i-0123456789abcdef0", "not an ARN"),
        ("arn:aws:ec2:us-east-1:123456789012", "not an ARN"),
        ("arn:azure:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0", "unknown partition 'azure'"),
        ("arn:aws:ec2:us-east-1:12345:instance/i-0123456789abcdef0", "invalid account id '12345'"),
        ("arn:aws:ec2:mars-1:123456789012:instance/i-0123456789abcdef0", "invalid region 'mars-1'"),
        ("arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1", "not a supported ec2 resource type"),
        ("arn:aws:iam::123456789012:role/x", "service 'iam' is not supported"),
        ("arn:aws:s3:us-east-1:123456789012:bucket", "empty region and account"),
        ("arn:aws:ec2:us-east-1:123456789012:instance/not-an-id", "invalid ec2:instance identifier"),
        ("arn:aws:ec2:us-east-1:123456789012:", "empty resource part"),
        (" arn:aws:s3:::bucket", "whitespace"),
    ],
)
def test_malformed_arns_say_what_is_wrong(arn: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_arn(arn)


def test_resource_types_argument() -> None:
    assert resolve_resource_types(None) == list(RESOURCE_TYPE_IDS)
    assert resolve_resource_types(["all"]) == list(RESOURCE_TYPE_IDS)
    assert resolve_resource_types(["rds:db", "ec2:instance", "rds:db"]) == ["rds:db", "ec2:instance"]
    with pytest.raises(InvalidInputError, match=r"'ec2:vpc'.*supported types"):
        resolve_resource_types(["ec2:instance", "ec2:vpc"])
    with pytest.raises(InvalidInputError, match="cannot be combined"):
        resolve_resource_types(["all", "rds:db"])


def test_custodian_names_exist_in_c7n() -> None:
    """Generated Custodian policies must name resources that c7n knows."""
    schema = subprocess.run(
        [sys.executable, "-m", "c7n.cli", "schema", "aws"], capture_output=True, text=True, check=True
    ).stdout
    known = {
        line.strip().removeprefix("- aws.")
        for line in schema.splitlines()
        if line.strip().startswith("- aws.")
    }
    missing = {
        row.id: row.custodian_resource for row in REGISTRY.values() if row.custodian_resource not in known
    }
    assert not missing

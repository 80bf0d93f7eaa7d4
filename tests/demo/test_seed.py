"""The seeded demo AWS: every resource exists in moto with exactly its defined tags, read back with
each service's own API, and Cost Explorer answers from the estate's definition."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from services.demo.aws import DemoAws
from services.demo.estate import EstateResource
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS, parse_arn

TagReader = Callable[[Any, str, EstateResource], list[dict[str, str]] | dict[str, str]]


def _last(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _bucket_tags(s3: Any, arn: str, resource: EstateResource) -> list[dict[str, str]]:
    try:
        return s3.get_bucket_tagging(Bucket=resource.name)["TagSet"]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "NoSuchTagSet"
        return []


# Each type's own API, by ARN or id: (boto3 client name, reader returning tags as a list or a dict).
TAG_READERS: dict[str, tuple[str, TagReader]] = {
    "ec2:instance": (
        "ec2",
        lambda c, arn, r: c.describe_instances(InstanceIds=[_last(arn)])["Reservations"][0]["Instances"][
            0
        ].get("Tags", []),
    ),
    "ec2:volume": (
        "ec2",
        lambda c, arn, r: c.describe_volumes(VolumeIds=[_last(arn)])["Volumes"][0].get("Tags", []),
    ),
    "ec2:snapshot": (
        "ec2",
        lambda c, arn, r: c.describe_snapshots(SnapshotIds=[_last(arn)])["Snapshots"][0].get("Tags", []),
    ),
    "ec2:natgateway": (
        "ec2",
        lambda c, arn, r: c.describe_nat_gateways(NatGatewayIds=[_last(arn)])["NatGateways"][0].get(
            "Tags", []
        ),
    ),
    "rds:db": ("rds", lambda c, arn, r: c.list_tags_for_resource(ResourceName=arn)["TagList"]),
    "rds:cluster": ("rds", lambda c, arn, r: c.list_tags_for_resource(ResourceName=arn)["TagList"]),
    "s3:bucket": ("s3", _bucket_tags),
    "lambda:function": ("lambda", lambda c, arn, r: c.list_tags(Resource=arn)["Tags"]),
    "ecs:cluster": (
        "ecs",
        lambda c, arn, r: [
            {"Key": t["key"], "Value": t["value"]}
            for t in c.list_tags_for_resource(resourceArn=arn).get("tags", [])
        ],
    ),
    "ecs:service": (
        "ecs",
        lambda c, arn, r: [
            {"Key": t["key"], "Value": t["value"]}
            for t in c.list_tags_for_resource(resourceArn=arn).get("tags", [])
        ],
    ),
    "eks:cluster": ("eks", lambda c, arn, r: c.list_tags_for_resource(resourceArn=arn)["tags"]),
    "dynamodb:table": ("dynamodb", lambda c, arn, r: c.list_tags_of_resource(ResourceArn=arn)["Tags"]),
    "elasticache:cluster": (
        "elasticache",
        lambda c, arn, r: c.list_tags_for_resource(ResourceName=arn)["TagList"],
    ),
    "elasticfilesystem:file-system": (
        "efs",
        lambda c, arn, r: c.describe_file_systems(FileSystemId=_last(arn))["FileSystems"][0]["Tags"],
    ),
    "opensearch:domain": ("opensearch", lambda c, arn, r: c.list_tags(ARN=arn)["TagList"]),
    "sns:topic": ("sns", lambda c, arn, r: c.list_tags_for_resource(ResourceArn=arn)["Tags"]),
    "sqs:queue": (
        "sqs",
        lambda c, arn, r: c.list_queue_tags(QueueUrl=c.get_queue_url(QueueName=r.name)["QueueUrl"]).get(
            "Tags", {}
        ),
    ),
    "elasticloadbalancing:loadbalancer": (
        "elbv2",
        lambda c, arn, r: c.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"],
    ),
    "kinesis:stream": ("kinesis", lambda c, arn, r: c.list_tags_for_stream(StreamName=r.name)["Tags"]),
    "secretsmanager:secret": (
        "secretsmanager",
        lambda c, arn, r: c.describe_secret(SecretId=arn).get("Tags", []),
    ),
}


def as_dict(tags: list[dict[str, str]] | dict[str, str]) -> dict[str, str]:
    # S3 omits Value for an empty value.
    return tags if isinstance(tags, dict) else {tag["Key"]: tag.get("Value", "") for tag in tags}


def test_every_type_has_a_reader() -> None:
    assert set(TAG_READERS) == set(RESOURCE_TYPE_IDS)


@pytest.mark.parametrize("resource_type", RESOURCE_TYPE_IDS)
def test_resources_exist_with_exactly_their_tags(demo_aws: DemoAws, resource_type: str) -> None:
    service, read = TAG_READERS[resource_type]
    resources = demo_aws.estate.by_type()[resource_type]
    for resource in resources:
        arn = demo_aws.arns[resource.key]
        parsed = parse_arn(arn)  # the registry's ARN format
        assert parsed.resource_type == resource_type
        assert parsed.region == ("" if REGISTRY[resource_type].global_arn else resource.region)
        tags = as_dict(read(demo_aws.client(service, resource.region), arn, resource))
        assert tags == (resource.tags or {}), resource.key
    assert {r.region for r in resources} <= set(demo_aws.regions)


def test_never_tagged_resources_carry_no_tags(demo_aws: DemoAws) -> None:
    never_tagged = [r for r in demo_aws.estate.resources if r.tags is None]
    assert len({r.resource_type for r in never_tagged}) >= 5
    for resource in never_tagged:
        service, read = TAG_READERS[resource.resource_type]
        assert (
            as_dict(read(demo_aws.client(service, resource.region), demo_aws.arns[resource.key], resource))
            == {}
        )


def test_resources_sit_in_their_named_vpcs(demo_aws: DemoAws) -> None:
    for region in demo_aws.regions:
        ec2 = demo_aws.client("ec2", region)
        vpc_names = {
            vpc["VpcId"]: tag["Value"]
            for vpc in ec2.describe_vpcs()["Vpcs"]
            for tag in vpc.get("Tags", [])
            if tag["Key"] == "Name"
        }
        instances = {
            instance["InstanceId"]: instance["VpcId"]
            for reservation in ec2.describe_instances()["Reservations"]
            for instance in reservation["Instances"]
        }
        balancers = {
            lb["LoadBalancerArn"]: lb["VpcId"]
            for lb in demo_aws.client("elbv2", region).describe_load_balancers()["LoadBalancers"]
        }
        for resource in demo_aws.estate.select(["ec2:instance"], [region]):
            assert vpc_names[instances[parse_arn(demo_aws.arns[resource.key]).resource_id]] == resource.vpc
        for resource in demo_aws.estate.select(["elasticloadbalancing:loadbalancer"], [region]):
            assert vpc_names[balancers[demo_aws.arns[resource.key]]] == resource.vpc


def test_environment_points_plain_boto3_at_the_demo(
    demo_aws: DemoAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in demo_aws.environment.items():
        monkeypatch.setenv(name, value)
    queues = boto3.session.Session().client("sqs", region_name="eu-west-1").list_queues()["QueueUrls"]
    assert len(queues) == len(demo_aws.estate.select(["sqs:queue"], ["eu-west-1"]))


# --- Cost Explorer ---------------------------------------------------------------------------------


def cost_pages(ce: Any, **request: Any) -> list[dict[str, Any]]:
    pages = [ce.get_cost_and_usage(**request)]
    while "NextPageToken" in pages[-1]:
        pages.append(ce.get_cost_and_usage(**request, NextPageToken=pages[-1]["NextPageToken"]))
    return pages


def grouped(
    pages: list[dict[str, Any]], metric: str = "UnblendedCost"
) -> dict[tuple[str, tuple[str, ...]], Decimal]:
    amounts: dict[tuple[str, tuple[str, ...]], Decimal] = defaultdict(Decimal)
    for page in pages:
        for result in page["ResultsByTime"]:
            for group in result["Groups"]:
                assert group["Metrics"][metric]["Unit"] == "USD"
                amounts[(result["TimePeriod"]["Start"], tuple(group["Keys"]))] += Decimal(
                    group["Metrics"][metric]["Amount"]
                )
    return dict(amounts)


def test_cost_by_service_for_a_month(demo_aws: DemoAws) -> None:
    response = demo_aws.client("ce").get_cost_and_usage(
        TimePeriod={"Start": "2025-03-01", "End": "2025-04-01"},
        Granularity="MONTHLY",
        Metrics=["UnblendedCost", "AmortizedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    assert "NextPageToken" not in response
    assert response["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    expected = demo_aws.estate.expected_cost(date(2025, 3, 1), date(2025, 4, 1))
    assert grouped([response]) == {("2025-03-01", (service,)): amount for service, amount in expected.items()}
    assert grouped([response], "AmortizedCost") == grouped([response])
    assert "EC2 - Other" in expected


def test_cost_by_cost_center_per_day_including_the_empty_group(demo_aws: DemoAws) -> None:
    pages = cost_pages(
        demo_aws.client("ce"),
        TimePeriod={"Start": "2025-01-30", "End": "2025-02-02"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "TAG", "Key": "CostCenter"}],
    )
    expected = demo_aws.estate.expected_cost(date(2025, 1, 30), date(2025, 1, 31), tag_key="CostCenter")
    assert "" in expected and expected[""] > 0
    days = ("2025-01-30", "2025-01-31", "2025-02-01")
    assert grouped(pages) == {
        (day, (f"CostCenter${value}",)): amount for day in days for value, amount in expected.items()
    }


def test_total_with_filters_and_monthly_split(demo_aws: DemoAws) -> None:
    ce = demo_aws.client("ce")
    response = ce.get_cost_and_usage(
        TimePeriod={"Start": "2025-01-15", "End": "2025-03-10"},
        Granularity="MONTHLY",
        Metrics=["BlendedCost"],
        Filter={
            "And": [
                {"Dimensions": {"Key": "REGION", "Values": ["eu-west-1", "us-west-2"]}},
                {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Simple Storage Service", "AWS Lambda"]}},
            ]
        },
    )
    periods = [(r["TimePeriod"]["Start"], r["TimePeriod"]["End"]) for r in response["ResultsByTime"]]
    assert periods == [
        ("2025-01-15", "2025-02-01"),
        ("2025-02-01", "2025-03-01"),
        ("2025-03-01", "2025-03-10"),
    ]
    daily = sum(
        (
            r.daily_cost_usd
            for r in demo_aws.estate.select(["s3:bucket", "lambda:function"], ["eu-west-1", "us-west-2"])
        ),
        Decimal(0),
    )
    for result, days in zip(response["ResultsByTime"], (17, 28, 9), strict=True):
        assert result["Groups"] == []
        assert Decimal(result["Total"]["BlendedCost"]["Amount"]) == daily * days

    untagged = ce.get_cost_and_usage(
        TimePeriod={"Start": "2025-01-01", "End": "2025-01-02"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        Filter={"Tags": {"Key": "Owner", "Values": [""]}},
    )
    expected = demo_aws.estate.expected_cost(date(2025, 1, 1), date(2025, 1, 2), tag_key="Owner")[""]
    assert Decimal(untagged["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == expected


def test_inactive_tag_puts_all_spend_in_the_empty_group(demo_aws: DemoAws) -> None:
    response = demo_aws.client("ce").get_cost_and_usage(
        TimePeriod={"Start": "2025-01-01", "End": "2025-01-02"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "TAG", "Key": "Application"}],
    )
    total = sum((r.daily_cost_usd for r in demo_aws.estate.resources), Decimal(0))
    assert grouped([response]) == {("2025-01-01", ("Application$",)): total}


def test_pagination_and_request_counting(demo_aws: DemoAws) -> None:
    model, ce = demo_aws.cost_model, demo_aws.client("ce")
    request = {
        "TimePeriod": {"Start": "2025-01-01", "End": "2025-01-03"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "REGION"}],
    }
    whole = cost_pages(ce, **request)
    groups = len(grouped(whole))
    assert len(whole) == math.ceil(groups / 50)  # the default page size
    model.reset_request_counts()
    model.page_size = 7
    try:
        pages = cost_pages(ce, **request)
        foreign = {**request, "GroupBy": request["GroupBy"][:1], "NextPageToken": pages[0]["NextPageToken"]}
        with pytest.raises(ClientError, match="belongs to a different request"):
            ce.get_cost_and_usage(**foreign)
    finally:
        model.page_size = 50
    assert len(pages) == math.ceil(groups / 7)
    assert all(sum(len(r["Groups"]) for r in page["ResultsByTime"]) <= 7 for page in pages)
    assert grouped(pages) == grouped(whole)
    assert model.request_counts() == {"GetCostAndUsage": len(pages) + 1}  # every page is a billed request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "GroupBy": [
                    {"Type": "DIMENSION", "Key": "SERVICE"},
                    {"Type": "DIMENSION", "Key": "REGION"},
                    {"Type": "TAG", "Key": "Owner"},
                ]
            },
            "up to 2",
        ),
        ({"TimePeriod": {"Start": "2025-02-30", "End": "2025-03-01"}}, "not a date"),
        ({"TimePeriod": {"Start": "2025-03-01", "End": "2025-03-01"}}, "before end date"),
        ({"NextPageToken": "bm90LWEtdG9rZW4="}, "Invalid NextPageToken"),
        ({"Filter": {"Dimensions": {"Key": "USAGE_TYPE", "Values": ["x"]}}}, "not supported"),
    ],
)
def test_invalid_requests_get_a_validation_error(
    demo_aws: DemoAws, change: dict[str, Any], message: str
) -> None:
    request = {
        "TimePeriod": {"Start": "2025-01-01", "End": "2025-01-02"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        **change,
    }
    with pytest.raises(ClientError) as raised:
        demo_aws.client("ce").get_cost_and_usage(**request)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]


def test_list_cost_allocation_tags(demo_aws: DemoAws) -> None:
    ce = demo_aws.client("ce")
    listed = {t["TagKey"]: t for t in ce.list_cost_allocation_tags()["CostAllocationTags"]}
    assert listed["Application"]["Status"] == "Inactive"
    assert listed["CostCenter"] == {"TagKey": "CostCenter", "Type": "UserDefined", "Status": "Active"}
    assert "environment" in listed  # wrong-cased keys show up as tags of their own
    active = ce.list_cost_allocation_tags(Status="Active")["CostAllocationTags"]
    assert {t["TagKey"] for t in active} == {"CostCenter", "Environment", "Owner"}
    chosen = ce.list_cost_allocation_tags(TagKeys=["Application", "Owner"])["CostAllocationTags"]
    assert Counter(t["Status"] for t in chosen) == {"Active": 1, "Inactive": 1}


@pytest.mark.slow
def test_reset_and_reseed_restores_the_estate(demo_aws: DemoAws) -> None:
    bucket = next(r for r in demo_aws.estate.by_type()["s3:bucket"] if r.tags)
    s3 = demo_aws.client("s3", bucket.region)
    s3.delete_bucket_tagging(Bucket=bucket.name)
    old_arns = dict(demo_aws.arns)
    demo_aws.reset_and_reseed()  # verifies every resource again
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket.name)["TagSet"]) == bucket.tags
    assert demo_aws.arns.keys() == old_arns.keys()

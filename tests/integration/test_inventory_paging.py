"""Listings page through everything: no type is cut off at a service's default page (moto in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from tagcompliance.aws import AwsClients
from tagcompliance.inventory import collect_inventory
from tagcompliance.settings import Settings

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def test_more_than_a_thousand_queues_are_all_found(aws: None) -> None:
    # ListQueues without MaxResults stops at 1,000 queues and gives no NextToken (AWS and moto alike).
    sqs = boto3.client("sqs", region_name=REGION)
    names = {f"q-{index:05d}" for index in range(1_050)}
    for name in names:
        sqs.create_queue(QueueName=name)
    inventory = collect_inventory(AwsClients(Settings(AWS_REGION=REGION)), [REGION], ["sqs:queue"])
    assert not inventory.failed_shards
    assert {resource.resource_id for resource in inventory.resources} == names


def test_more_than_ten_file_systems_are_all_found_in_few_pages(aws: None) -> None:
    efs = boto3.client("efs", region_name=REGION)
    for index in range(25):
        efs.create_file_system(CreationToken=f"fs-{index}", Tags=[{"Key": "Name", "Value": f"fs-{index}"}])
    clients = AwsClients(Settings(AWS_REGION=REGION))
    inventory = collect_inventory(clients, [REGION], ["elasticfilesystem:file-system"])
    assert len(inventory.resources) == 25 and not inventory.failed_shards
    assert {resource.tags["Name"] for resource in inventory.resources} == {f"fs-{i}" for i in range(25)}
    # One DescribeFileSystems page of up to 100 (moto's default page is 10) plus the identity call.
    assert inventory.api_requests <= 2

"""Listings page through everything: no type is cut off at a service's default page.

Runs on the session's moto server (an in-process ``mock_aws`` would reset the shared estate), in a
region the estate does not use, and removes what it creates.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.demo.aws import DemoAws
from tagcompliance.aws import AwsClients
from tagcompliance.inventory import collect_inventory
from tagcompliance.settings import Settings

REGION = "ap-southeast-2"


@pytest.fixture
def aws(demo_aws: DemoAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoAws]:
    assert REGION not in demo_aws.regions, "the paging tests need a region the estate leaves empty"
    for name, value in demo_aws.environment.items():
        monkeypatch.setenv(name, value)
    yield demo_aws


def test_more_than_a_thousand_queues_are_all_found(aws: DemoAws) -> None:
    # ListQueues without MaxResults stops at 1,000 queues and gives no NextToken (AWS and moto alike).
    sqs = aws.client("sqs", REGION)
    names = {f"q-{index:05d}" for index in range(1_050)}
    urls = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in sorted(names)]
    try:
        inventory = collect_inventory(AwsClients(Settings(AWS_REGION=REGION)), [REGION], ["sqs:queue"])
        assert not inventory.failed_shards
        assert {resource.resource_id for resource in inventory.resources} == names
    finally:
        for url in urls:
            sqs.delete_queue(QueueUrl=url)


def test_more_than_ten_file_systems_are_all_found_in_few_pages(aws: DemoAws) -> None:
    efs = aws.client("efs", REGION)
    ids = [
        efs.create_file_system(CreationToken=f"fs-{index}", Tags=[{"Key": "Name", "Value": f"fs-{index}"}])[
            "FileSystemId"
        ]
        for index in range(25)
    ]
    try:
        clients = AwsClients(Settings(AWS_REGION=REGION))
        inventory = collect_inventory(clients, [REGION], ["elasticfilesystem:file-system"])
        assert len(inventory.resources) == 25 and not inventory.failed_shards
        assert {resource.tags["Name"] for resource in inventory.resources} == {f"fs-{i}" for i in range(25)}
        # One DescribeFileSystems page of up to 100 (moto's default page is 10) plus the identity call.
        assert inventory.api_requests <= 2
    finally:
        for file_system_id in ids:
            efs.delete_file_system(FileSystemId=file_system_id)

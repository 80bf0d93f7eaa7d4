"""Tag policy import against the demo's moto: a real Organizations API (ListPolicies,
DescribePolicy, ListPoliciesForTarget, ListParents) through the boto3 adapter.

The organization lives in the demo account's moto state: the module creates what it needs (the
organization only when the account has none), and deletes what it created at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from services.demo.aws import DemoAws
from services.demo.seed import CREDENTIALS
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.policy_import import (
    OrganizationsTagPolicySource,
    TagPolicyNotFoundError,
    detect_policy_at_startup,
    fetch_tag_policy,
    import_tag_policy,
    list_tag_policies,
)
from tagcompliance.settings import Settings
from tests.conftest import tag_policies_in_organization

ATTACHED_DOCUMENT = {
    "tags": {
        "costcenter": {
            "tag_key": {"@@assign": "CostCenter"},
            "tag_value": {"@@assign": ["CC-1*", "CC-2001"]},
            "enforced_for": {"@@assign": ["ec2:instance"]},
            "report_required_tag_for": {"@@assign": ["ec2:instance", "s3:ALL_SUPPORTED"]},
        },
        "project": {"tag_key": {"@@assign": "Project"}},
    }
}
OTHER_DOCUMENT = {
    "tags": {"owner": {"tag_key": {"@@assign": "Owner"}, "report_required_tag_for": {"@@assign": ["rds:db"]}}}
}


@dataclass
class Organization:
    attached_id: str
    other_id: str
    account_id: str
    root_id: str


@pytest.fixture(scope="module")
def clients(demo_aws: DemoAws) -> AwsClients:
    session = boto3.session.Session(**CREDENTIALS, region_name="us-east-1")
    return AwsClients(Settings(AWS_ENDPOINT_URL=demo_aws.endpoint_url, AWS_REGION="us-east-1"), session)


@pytest.fixture(scope="module")
def organization(clients: AwsClients, demo_aws: DemoAws) -> Iterator[Organization]:
    account_id = clients.account_id
    assert account_id == demo_aws.account_id
    suffix = uuid.uuid4().hex[:8]
    documents = [(f"test-attached-{suffix}", ATTACHED_DOCUMENT), (f"test-other-{suffix}", OTHER_DOCUMENT)]
    with tag_policies_in_organization(clients.client("organizations"), account_id, documents) as (
        ids,
        root_id,
    ):
        yield Organization(ids[0], ids[1], account_id, root_id)


def test_list_and_fetch(clients: AwsClients, organization: Organization) -> None:
    policies = {policy.id: policy for policy in list_tag_policies(clients)}
    assert {organization.attached_id, organization.other_id} <= set(policies)
    attached = policies[organization.attached_id]
    assert (
        attached.name.startswith("test-attached-")
        and attached.description == f"test {attached.name} tag policy"
    )
    assert attached.arn and attached.arn.endswith(f"/tag_policy/{organization.attached_id}")

    summary, document = fetch_tag_policy(clients, organization.other_id)
    assert summary.id == organization.other_id and document == OTHER_DOCUMENT
    with pytest.raises(TagPolicyNotFoundError):
        fetch_tag_policy(clients, "p-00000000")


def test_import_lists_then_imports_and_saves(
    clients: AwsClients, organization: Organization, tmp_path: Path
) -> None:
    source = OrganizationsTagPolicySource(clients)
    listed = import_tag_policy(source, None, False, True, None, tmp_path)
    assert listed.status == "choose_policy" and listed.saved_to is None
    assert {organization.attached_id, organization.other_id} <= {p.id for p in listed.available_policies}

    result = import_tag_policy(source, organization.attached_id, False, True, "imported.json", tmp_path)
    assert result.status == "success" and result.saved_to == str(tmp_path.resolve() / "imported.json")
    policy = load_policy(Path(result.saved_to)).policy
    assert policy == result.policy
    (cost_center,) = policy.required_tags
    assert cost_center.allowed_values == ["CC-1*", "CC-2001"]
    assert cost_center.applies_to == ["ec2:instance", "s3:bucket"]
    assert cost_center.enforced_for == ["ec2:instance"]
    assert [tag.name for tag in policy.optional_tags] == ["Project"]
    assert policy.imported_from.policy_id == organization.attached_id
    assert result.summary.enforced_services == ["ec2"]

    with pytest.raises(TagPolicyNotFoundError, match=organization.attached_id):
        import_tag_policy(source, "p-00000000", False, False, None, tmp_path)


def test_detection_picks_the_policy_attached_to_the_account(
    clients: AwsClients, organization: Organization, tmp_path: Path
) -> None:
    path = tmp_path / "policies" / "tagging_policy.json"
    outcome = detect_policy_at_startup(
        OrganizationsTagPolicySource(clients),
        auto_import=True,
        policy_id=None,
        fallback_to_default=False,
        policy_path=path,
    )
    assert outcome.source == "aws_tag_policy"
    assert outcome.source_policy.id == organization.attached_id
    assert f"attached to {organization.account_id}" in outcome.reason
    loaded = load_policy(path)
    assert loaded.source == "file" and loaded.policy == outcome.policy
    assert "imported from AWS Organizations tag policy" in loaded.description

    # Next start: the file exists, so AWS is not asked again.
    counted = clients.total_requests()
    again = detect_policy_at_startup(
        OrganizationsTagPolicySource(clients),
        auto_import=True,
        policy_id=None,
        fallback_to_default=False,
        policy_path=path,
    )
    assert again.source == "file" and clients.total_requests() == counted


def test_detection_with_a_configured_policy_id(
    clients: AwsClients, organization: Organization, tmp_path: Path
) -> None:
    path = tmp_path / "tagging_policy.json"
    outcome = detect_policy_at_startup(
        OrganizationsTagPolicySource(clients),
        auto_import=True,
        policy_id=organization.other_id,
        fallback_to_default=True,
        policy_path=path,
    )
    assert outcome.source == "aws_tag_policy" and outcome.source_policy.id == organization.other_id
    assert [tag.name for tag in load_policy(path).policy.required_tags] == ["Owner"]


def test_detection_walks_up_to_the_root(
    clients: AwsClients, organization: Organization, tmp_path: Path
) -> None:
    """No policy on the account itself: the one attached to its parent (the root) is chosen."""
    org = clients.client("organizations")
    assert org.list_policies_for_target(TargetId=organization.root_id, Filter="TAG_POLICY")["Policies"] == []
    org.detach_policy(PolicyId=organization.attached_id, TargetId=organization.account_id)
    org.attach_policy(PolicyId=organization.other_id, TargetId=organization.root_id)
    try:
        outcome = detect_policy_at_startup(
            OrganizationsTagPolicySource(clients),
            auto_import=True,
            policy_id=None,
            fallback_to_default=False,
            policy_path=tmp_path / "tagging_policy.json",
        )
    finally:
        org.detach_policy(PolicyId=organization.other_id, TargetId=organization.root_id)
        org.attach_policy(PolicyId=organization.attached_id, TargetId=organization.account_id)
    assert outcome.source_policy.id == organization.other_id
    assert f"attached to {organization.root_id}" in outcome.reason

"""The organization in the conversation (issue 20): questions about one, several or all accounts,
through the official MCP client against the gateway on the demo moto server.

Three accounts besides the credentials' own (the demo estate's) are configured in ``AUDIT_ACCOUNTS``:
``a`` and ``b`` hold queues created here through AssumeRole (moto gives each assumed account id its
own backend), and AssumeRole into ``denied`` is refused, as a missing role or trust policy does.
Expected figures are worked out by hand from each queue's tags and policies/tagging_policy.json
(CostCenter CC-nnnn, Owner an email, Environment one of production/staging/development/test are
required on queues), and from the demo estate's own definition for the credentials' account.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from mcp import Client

from services.demo.aws import DemoAws
from services.mcp_gateway.runtime import Runtime, build_runtime
from services.mcp_gateway.server import build_server
from tests.pipeline.faults import DenyAssumeRole

from .helpers import call, call_error, gateway_settings

pytestmark = pytest.mark.anyio

ROLE = "TagComplianceAuditRole"
TYPE = "sqs:queue"
COMPLIANT = {"CostCenter": "CC-2001", "Owner": "team@example.com", "Environment": "production"}
QUEUES = {
    "a": {
        "org-a-orders": {"Environment": "prod"},  # CostCenter, Owner missing; "prod" invalid: 3
        "org-a-billing": {"Environment": "production", "Owner": "billing@example.com"},  # CostCenter: 1
        "org-a-ledger": COMPLIANT,
    },
    "b": {"org-b-reports": COMPLIANT, "org-b-logs": {**COMPLIANT, "CostCenter": "CC-3001"}},
}
# name -> (total, compliant, violations, untagged: missing a required tag)
EXPECTED = {"a": (3, 1, 4, 2), "b": (2, 2, 0, 0)}


@dataclass
class Organization:
    own: str
    members: dict[str, str]  # "a", "b", "denied" -> account id
    region: str
    deny: DenyAssumeRole

    @property
    def configured(self) -> list[str]:
        return sorted([self.own, *self.members.values()])


def _account_id(prefix: str) -> str:
    return prefix + "".join(str(secrets.randbelow(10)) for _ in range(12 - len(prefix)))


@pytest.fixture(scope="module")
def members(aws_env: DemoAws) -> dict[str, str]:
    """Fresh account ids (the session's moto server is shared), with the queues created in a and b."""
    ids = {name: _account_id(prefix) for name, prefix in (("a", "41"), ("b", "42"), ("denied", "43"))}
    sts = aws_env.client("sts")
    for name, queues in QUEUES.items():
        credentials = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ids[name]}:role/{ROLE}", RoleSessionName="seed"
        )["Credentials"]
        sqs = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        ).client("sqs", region_name=aws_env.regions[0], endpoint_url=aws_env.endpoint_url)
        for queue, tags in queues.items():
            sqs.create_queue(QueueName=queue, tags=tags)
    return ids


def _runtime(
    aws_env: DemoAws, data_dir: Path, members: dict[str, str], **overrides: str
) -> tuple[Runtime, Organization]:
    accounts = [aws_env.account_id, *members.values()]
    settings = gateway_settings(
        aws_env, data_dir, AUDIT_ACCOUNTS=",".join(accounts), AUDIT_ROLE_NAME=ROLE, **overrides
    )
    runtime = build_runtime(settings, "memory")
    deny = DenyAssumeRole(members["denied"])
    # The client the gateway's AssumeRole calls go through (AwsClients.for_account).
    runtime.service.clients.client("sts").meta.events.register("before-call.sts.AssumeRole", deny)
    return runtime, Organization(aws_env.account_id, members, aws_env.regions[0], deny)


@pytest.fixture(scope="module")
def org_runtime(
    aws_env: DemoAws, members: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, Organization]]:
    runtime, organization = _runtime(aws_env, tmp_path_factory.mktemp("org"), members)
    yield runtime, organization
    runtime.close()


@pytest.fixture
async def org_client(org_runtime: tuple[Runtime, Organization]) -> AsyncIterator[Client]:
    async with Client(build_server(org_runtime[0])) as connected:
        yield connected


def _own_expected(aws_env: DemoAws, region: str) -> tuple[int, int, int, int]:
    selected = aws_env.estate.select([TYPE], [region])
    summary = aws_env.estate.expected_summary([TYPE], [region])
    untagged = sum(
        1
        for resource in selected
        if any(v.violation_type == "missing_tag" for v in resource.expected_violations)
    )
    return summary.total, summary.compliant, sum(summary.violations_by_type.values()), untagged


def _by_account(org: Organization, own: tuple[int, int, int, int], names: list[str]) -> dict[str, dict]:
    """The expected by_account: every queue type has requirements, so each score is compliant / total."""
    figures = {org.own: own} if "own" in names else {}
    figures.update({org.members[name]: EXPECTED[name] for name in names if name != "own"})
    return {
        account: {
            "total": total,
            "compliant": compliant,
            "violations": violations,
            "compliance_score": round(compliant / total, 4) if total else None,
        }
        for account, (total, compliant, violations, _) in figures.items()
        if total
    }


async def test_all_accounts_are_checked_through_assume_role_with_exact_per_account_figures(
    org_client: Client, org_runtime: tuple[Runtime, Organization], aws_env: DemoAws
) -> None:
    _, org = org_runtime
    own = _own_expected(aws_env, org.region)
    denied_before = org.deny.denied
    result = await call(
        org_client, "check_tag_compliance", resource_types=[TYPE], regions=[org.region], accounts=["all"]
    )
    assert result.get("job") is None
    assert result["scope"]["accounts"] == org.configured
    assert result["scope"]["account_id"] == org.own
    expected = _by_account(org, own, ["own", "a", "b"])
    assert result["by_account"] == expected
    # Worst account first: a (1 of 3) before the others.
    scores = [entry["compliance_score"] for entry in result["by_account"].values()]
    assert scores == sorted(scores) and next(iter(result["by_account"])) == org.members["a"]
    total = sum(entry["total"] for entry in expected.values())
    compliant = sum(entry["compliant"] for entry in expected.values())
    assert (result["total_resources"], result["compliant_resources"]) == (total, compliant)
    assert result["violation_count"] == sum(entry["violations"] for entry in expected.values())
    assert result["compliance_score"] == round(compliant / total, 4)
    # The denied account is disclosed, named, and counted nowhere.
    denied = org.members["denied"]
    assert [(f["account_id"], f["region"], f["resource_type"]) for f in result["failed_shards"]] == [
        (denied, org.region, TYPE)
    ]
    assert "AccessDenied" in result["failed_shards"][0]["error"]
    assert denied in result["score_note"] and "not read" in result["score_note"]
    assert org.deny.denied > denied_before

    untagged = await call(
        org_client, "find_untagged_resources", resource_types=[TYPE], regions=[org.region], accounts=["all"]
    )
    assert untagged["cached"] is True and untagged["snapshot_id"] == result["snapshot_id"]
    expected_untagged = {org.own: own[3], org.members["a"]: EXPECTED["a"][3]}
    assert untagged["untagged_by_account"] == {k: v for k, v in expected_untagged.items() if v}
    assert untagged["total_untagged"] == sum(expected_untagged.values())
    listed = {item["resource_arn"].rsplit(":", 1)[1] for item in untagged["resources"]}
    assert {"org-a-orders", "org-a-billing"} <= listed and not listed & {"org-a-ledger", "org-b-reports"}


async def test_a_chosen_account_is_answered_alone(
    org_client: Client, org_runtime: tuple[Runtime, Organization]
) -> None:
    _, org = org_runtime
    b = org.members["b"]
    result = await call(
        org_client, "check_tag_compliance", resource_types=[TYPE], regions=[org.region], accounts=[b]
    )
    assert result["scope"]["accounts"] == [b]
    assert result["by_account"] == _by_account(org, (0, 0, 0, 0), ["b"])
    assert result["total_resources"] == 2 and result["compliance_score"] == 1.0
    assert result["failed_shards"] == []


async def test_invalid_account_ids_get_a_specific_error(
    org_client: Client, org_runtime: tuple[Runtime, Organization]
) -> None:
    _, org = org_runtime
    for accounts in (["12345"], ["all", org.members["a"]], ["12345678901a"]):
        message = await call_error(
            org_client, "check_tag_compliance", resource_types=[TYPE], regions=[org.region], accounts=accounts
        )
        assert "12-digit AWS account ids" in message
        assert repr(accounts[0] if accounts[0] != "all" else "all") in message


async def test_validate_reads_each_arn_in_its_own_account(
    org_client: Client, org_runtime: tuple[Runtime, Organization]
) -> None:
    _, org = org_runtime
    a, denied = org.members["a"], org.members["denied"]
    arns = [
        f"arn:aws:sqs:{org.region}:{a}:org-a-ledger",
        f"arn:aws:sqs:{org.region}:{a}:org-a-orders",
        f"arn:aws:sqs:{org.region}:{denied}:anything",
    ]
    result = await call(org_client, "validate_resource_tags", resource_arns=arns)
    statuses = {item["resource_arn"].rsplit(":", 1)[1]: item["status"] for item in result["results"]}
    assert statuses == {
        "org-a-ledger": "compliant",
        "org-a-orders": "non_compliant",
        "anything": "not_scanned",
    }
    assert {f["account_id"] for f in result["failed_shards"]} == {denied}


async def test_an_omitted_account_is_asked_for_with_per_account_options(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    runtime, org = _runtime(aws_env, tmp_path, members)
    try:
        async with Client(build_server(runtime)) as client:
            # A stored organization-wide snapshot sizes the options.
            await call(
                client, "check_tag_compliance", resource_types=[TYPE], regions=[org.region], accounts=["all"]
            )
            asked = await call(client, "check_tag_compliance", resource_types=[TYPE], regions=[org.region])
        assert asked["safety"] == "clarification_needed"
        (ambiguity,) = [item for item in asked["ambiguities"] if item["parameter"] == "accounts"]
        options = {str(option["value"]): option for option in ambiguity["options"]}
        assert list(options)[:2] == [str([org.own]), "all"]
        assert "all 4 configured accounts" in options["all"]["note"]
        for name in ("a", "b", "denied"):
            assert str([org.members[name]]) in options
        own = _own_expected(aws_env, org.region)
        assert options[str([org.own])]["estimated_resources"] == own[0]
        assert options[str([org.members["a"]])]["estimated_resources"] == 3
        # The denied account was never read: its size is unknown, and said so.
        denied = options[str([org.members["denied"]])]
        assert denied["estimated_resources"] is None and "never scanned" in denied["note"]
        assert options["all"]["estimated_resources"] == own[0] + 3 + 2
        assert "accounts" in asked["proceed"]
    finally:
        runtime.close()

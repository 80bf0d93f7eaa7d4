"""The organization in the conversation (issue 20): questions about one, several or all accounts,
through the official MCP client against the gateway on the demo moto server.

Three accounts besides the credentials' own (the demo estate's) are configured in ``AUDIT_ACCOUNTS``:
``a`` and ``b`` hold queues created here through AssumeRole (moto gives each assumed account id its
own backend), and AssumeRole into ``denied`` is refused, as a missing role or trust policy does.
Expected figures are worked out by hand from each queue's tags and policies/tagging_policy.json
(CostCenter CC-nnnn, Owner an email, Environment one of production/staging/development/test are
required on queues), and from the demo estate's own definition for the credentials' account.
Remediations across accounts write SNS topics created per test (moto's Tagging API writes SNS tags,
not SQS ones) through each member account's remediation role.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.audits.notify import build_message
from tagcompliance.audits.steps import run_outcome
from tagcompliance.requests import ApplyRemediationRequest, TagChange
from tagcompliance.resources import REGISTRY
from tagcompliance.safety.tokens import Caller
from tagcompliance.tagging.service import TagRemediation
from tests.conftest import create_organization
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
    for name, queues in QUEUES.items():
        sqs = _client_in(aws_env, ids[name], "sqs")
        for queue, tags in queues.items():
            sqs.create_queue(QueueName=queue, tags=tags)
    return ids


def _client_in(aws_env: DemoAws, account_id: str, service: str) -> Any:
    """A client acting in ``account_id`` (the credentials' own, or another through the audit role),
    straight to moto: what the gateway does with its credentials does not reach it."""
    if account_id == aws_env.account_id:
        return aws_env.client(service)
    credentials = aws_env.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{ROLE}", RoleSessionName="seed"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).client(service, region_name=aws_env.regions[0], endpoint_url=aws_env.endpoint_url)


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
    # The text a model reads says the same: worst account first, the unread one named.
    text = (
        (
            await org_client.call_tool(
                "check_tag_compliance",
                {"resource_types": [TYPE], "regions": [org.region], "accounts": ["all"]},
            )
        )
        .content[0]
        .text
    )
    assert f"By account (worst first): {org.members['a']} 33.3% (1/3 ok, 4 violations)" in text
    assert denied in text

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


async def test_suggestions_come_from_the_resources_own_account(
    org_client: Client, org_runtime: tuple[Runtime, Organization]
) -> None:
    _, org = org_runtime
    arn = f"arn:aws:sqs:{org.region}:{org.members['a']}:org-a-billing"
    result = await call(org_client, "suggest_tags", resource_arn=arn)
    assert result["resource_arn"] == arn
    # Owner and Environment are right already; only CostCenter is missing.
    assert sorted(result["compliant_tags"]) == ["Environment", "Owner"]
    assert [s["tag_key"] for s in result["suggestions"]] + [
        n["tag_key"] for n in result["no_suggestion"]
    ] == ["CostCenter"]
    # A queue of the refused account cannot be read: the answer says why, naming no other account's data.
    message = await call_error(
        org_client, "suggest_tags", resource_arn=f"arn:aws:sqs:{org.region}:{org.members['denied']}:x"
    )
    assert "AccessDenied" in message


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


async def test_the_report_and_the_export_cover_the_chosen_accounts_worst_first(
    org_client: Client, org_runtime: tuple[Runtime, Organization], aws_env: DemoAws
) -> None:
    _, org = org_runtime
    scope = {"resource_types": [TYPE], "regions": [org.region]}
    report = await call(org_client, "generate_compliance_report", format="json", **scope, accounts=["all"])
    summary = report["summary"]
    assert summary["accounts"] == org.configured
    assert summary["by_account"] == _by_account(org, _own_expected(aws_env, org.region), ["own", "a", "b"])
    assert next(iter(summary["by_account"])) == org.members["a"]  # the worst account leads
    markdown = await call(
        org_client, "generate_compliance_report", format="markdown", **scope, accounts=["all"]
    )
    section = markdown["content"].split("## By account (worst first)", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows[0] == f"| {org.members['a']} | 3 | 1 | 33.3% | 4 | 0 |"
    assert rows[-1] == f"| {org.members['denied']} | 0 | 0 | n/a | 0 | 1 |"  # unread, still listed

    export = await call(
        org_client, "export_violations_csv", filters={**scope, "accounts": [org.members["a"]]}
    )
    assert export["row_count"] == 4 and export["rows_by_account"] == {org.members["a"]: 4}
    assert export["failed_shards"] == []


@pytest.fixture(scope="module")
def member_c(aws_env: DemoAws) -> tuple[str, Any]:
    """A fourth account (its own, so that changing its tags disturbs no other test) and its SQS client."""
    account = _account_id("44")
    credentials = aws_env.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seed"
    )["Credentials"]
    sqs = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).client("sqs", region_name=aws_env.regions[0], endpoint_url=aws_env.endpoint_url)
    sqs.create_queue(QueueName="org-c-app", tags={"Environment": "prod"})  # 3 violations
    sqs.create_queue(QueueName="org-c-db", tags=COMPLIANT)
    return account, sqs


async def test_s3_drift_counts_under_the_account_it_was_read_in(aws_env: DemoAws, tmp_path: Path) -> None:
    """A bucket's ARN names no account: its drift is counted under the account it was read in."""
    account = _account_id("55")
    credentials = aws_env.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seed"
    )["Credentials"]
    s3 = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    ).client("s3", region_name="us-east-1", endpoint_url=aws_env.endpoint_url)
    bucket = f"org-d-logs-{account}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "Environment", "Value": "prod"}]})
    settings = gateway_settings(aws_env, tmp_path, AUDIT_ACCOUNTS=account, AUDIT_ROLE_NAME=ROLE)
    scope = {"resource_types": ["s3:bucket"], "regions": ["us-east-1"], "accounts": [account]}
    runtime = build_runtime(settings, "memory")
    try:
        async with Client(build_server(runtime)) as client:
            first = await call(client, "check_tag_compliance", **scope)
            assert first["by_account"][account]["total"] == 1, first["by_account"]
            tags = [{"Key": key, "Value": value} for key, value in COMPLIANT.items()]
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
            drift = await call(client, "detect_tag_drift", **scope)
    finally:
        runtime.close()
        s3.delete_bucket(Bucket=bucket)  # bucket names are global in moto as in AWS
    assert drift["baseline_snapshot_id"] == first["snapshot_id"]
    assert drift["by_account"] == {account: 3}  # CostCenter and Owner added, Environment changed
    assert {d["resource_arn"] for d in drift["drift_detected"]} == {f"arn:aws:s3:::{bucket}"}


async def test_drift_and_history_per_account(
    aws_env: DemoAws, member_c: tuple[str, Any], tmp_path: Path
) -> None:
    c, sqs = member_c
    settings = gateway_settings(
        aws_env, tmp_path, AUDIT_ACCOUNTS=f"{aws_env.account_id},{c}", AUDIT_ROLE_NAME=ROLE
    )
    runtime = build_runtime(settings, "memory")
    region = aws_env.regions[0]
    scope = {"resource_types": [TYPE], "regions": [region], "accounts": ["all"]}
    try:
        async with Client(build_server(runtime)) as client:
            first = await call(client, "check_tag_compliance", **scope)
            assert first["by_account"][c] == {
                "total": 2,
                "compliant": 1,
                "violations": 3,
                "compliance_score": 0.5,
            }
            # The same scan, a day earlier: the series gets a point before today's.
            store = runtime.store
            stored = store.get_snapshot(first["snapshot_id"])
            assert stored is not None
            earlier_id = str(uuid.uuid4())
            store.save_snapshot(
                replace(stored, snapshot_id=earlier_id, created_at=stored.created_at - timedelta(days=1)),
                [
                    replace(state, snapshot_id=earlier_id)
                    for state in store.iter_resource_states(stored.snapshot_id)
                ],
            )
            # Account c's application queue gets its tags fixed.
            url = sqs.get_queue_url(QueueName="org-c-app")["QueueUrl"]
            sqs.tag_queue(QueueUrl=url, Tags=COMPLIANT)

            drift = await call(client, "detect_tag_drift", **scope)
            assert drift["baseline_snapshot_id"] == first["snapshot_id"]
            assert drift["by_account"] == {c: 3}  # CostCenter and Owner added, Environment changed
            assert {d["resource_arn"].rsplit(":", 1)[1] for d in drift["drift_detected"]} == {"org-c-app"}

            history = await call(
                client,
                "get_violation_history",
                days_back=3,
                resource_types=[TYPE],
                regions=[region],
                accounts=[c],
            )
        assert [point["snapshots"] for point in history["points"]] == [1, 2]
        # Asked about c alone, every point's figures are c's, from the organization-wide snapshots.
        assert [
            (p["total_resources"], p["compliant_resources"], p["violation_count"], p["compliance_score"])
            for p in history["points"]
        ] == [
            (2, 1, 3, 0.5),
            (2, 2, 0, 1.0),
        ]
        assert [p["by_account"] for p in history["points"]] == [
            {c: {"total": 2, "compliant": 1, "violations": 3, "compliance_score": 0.5}},
            {c: {"total": 2, "compliant": 2, "violations": 0, "compliance_score": 1.0}},
        ]
        assert history["by_account"] == {c: {"trend": "improving", "score_change": 0.5, "last_score": 1.0}}
        assert history["trend"] == "improving"

        # Without accounts: the whole organization's series, each account with its own trend.
        async with Client(build_server(runtime)) as client:
            everything = await call(
                client, "get_violation_history", days_back=3, resource_types=[TYPE], regions=[region]
            )
        own = aws_env.account_id
        assert set(everything["by_account"]) == {own, c}
        assert everything["by_account"][own]["trend"] == "stable"
        assert everything["by_account"][c]["trend"] == "improving"
        assert everything["points"][-1]["total_resources"] == _own_expected(aws_env, region)[0] + 2
    finally:
        runtime.close()


async def test_a_large_multi_account_scope_becomes_a_pipeline_job(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    # Any estimate is "too long" with this threshold: the scope must run as an audit job.
    runtime, org = _runtime(aws_env, tmp_path, members, AUDIT_ASYNC_THRESHOLD_SECONDS="0.000001")
    scope = {"resource_types": [TYPE], "regions": [org.region], "accounts": ["all"]}
    try:
        async with Client(build_server(runtime)) as client:
            first = await call(client, "check_tag_compliance", **scope)
            job = first["job"]
            assert job is not None and job["status"] == "running"
            assert first["scope"]["accounts"] == org.configured
            runner = runtime.service.large_scan_jobs.runner  # type: ignore[attr-defined]
            runner.wait(job["run_id"], timeout=120)
            status = await call(client, "get_audit_status", run_id=job["run_id"])
            assert status["status"] == "succeeded", status
            result = status["result"]
            assert result["accounts"] == org.configured
            expected = _by_account(org, _own_expected(aws_env, org.region), ["own", "a", "b"])
            assert result["by_account"] == expected and next(iter(result["by_account"])) == org.members["a"]
            assert [(f["account_id"], f["resource_type"]) for f in result["failed_shard_details"]] == [
                (org.members["denied"], TYPE)
            ]
            # The job's snapshot answers the scope from now on, within the call.
            again = await call(client, "check_tag_compliance", **scope)
            assert again["job"] is None and again["cached"] is True
            assert again["snapshot_id"] == first["snapshot_id"] and again["by_account"] == expected
        # The notification leads with the worst accounts.
        _, outcome = run_outcome(job["run_id"], runner.ledger, runtime.store)
        message = build_message(runner.ledger.run(job["run_id"])["plan"], outcome, None).text
        listed = message.split("Accounts, worst first:\n", 1)[1].splitlines()
        assert listed[0].startswith(f"  - {org.members['a']}: score 33.3%, 4 violations, 3 resources")
    finally:
        runtime.close()


async def test_an_organization_snapshot_answers_questions_about_some_of_its_accounts(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    """One path for any size: the org-wide scope runs as a job; within the cache TTL its snapshot
    answers a question about two of its accounts, in the call and without calling AWS."""
    runtime, org = _runtime(aws_env, tmp_path, members, AUDIT_ASYNC_THRESHOLD_SECONDS="0.000001")
    region = org.region
    try:
        async with Client(build_server(runtime)) as client:
            first = await call(
                client, "check_tag_compliance", resource_types=[TYPE], regions=[region], accounts=["all"]
            )
            runner = runtime.service.large_scan_jobs.runner  # type: ignore[attr-defined]
            assert runner.wait(first["job"]["run_id"], timeout=120).status == "succeeded"
            requests_before = runtime.service.clients.total_requests()
            a, b = org.members["a"], org.members["b"]
            two = await call(
                client, "check_tag_compliance", resource_types=[TYPE], regions=[region], accounts=[b, a]
            )
            assert runtime.service.clients.total_requests() == requests_before  # no AWS call, no job
            assert two["job"] is None and two["cached"] is True
            assert two["scope"]["accounts"] == sorted([a, b]) and two["failed_shards"] == []
            assert two["by_account"] == _by_account(org, (0, 0, 0, 0), ["a", "b"])
            assert (two["total_resources"], two["compliant_resources"], two["violation_count"]) == (5, 3, 4)
            assert two["compliance_score"] == 0.6
            # Its pages and the next question about the same accounts come from that answer.
            untagged = await call(
                client, "find_untagged_resources", resource_types=[TYPE], regions=[region], accounts=[a, b]
            )
            assert untagged["snapshot_id"] == two["snapshot_id"] and untagged["total_untagged"] == 2
            # The refused account is not covered: asking about it alone is a new scan (here, a job).
            denied = await call(
                client,
                "check_tag_compliance",
                resource_types=[TYPE],
                regions=[region],
                accounts=[org.members["denied"]],
            )
            assert denied["job"] is not None and denied["scope"]["accounts"] == [org.members["denied"]]
            runner.wait(denied["job"]["run_id"], timeout=120)
    finally:
        runtime.close()


def _cost_period() -> dict[str, str]:
    end = date.today()
    return {"start_date": (end - timedelta(days=30)).isoformat(), "end_date": end.isoformat()}


def _expected_account_gaps(
    aws_env: DemoAws, regions: list[str], billed_to: dict[str, str]
) -> dict[str, tuple]:
    """Per account (estate key -> account, else the demo account): spend of ec2:instance's Cost
    Explorer service and the part without a valid CostCenter, from the estate's definition."""
    service = REGISTRY["ec2:instance"].cost_explorer_service
    period = _cost_period()
    days = (date.fromisoformat(period["end_date"]) - date.fromisoformat(period["start_date"])).days
    totals: dict[str, list[Decimal]] = {}
    for resource in aws_env.estate.resources:
        if resource.cost_explorer_service != service or resource.region not in regions:
            continue
        account = billed_to.get(resource.key, aws_env.account_id)
        spend = resource.daily_cost_usd * days
        gap = any(v.tag_key == "CostCenter" for v in resource.expected_violations) or not (
            aws_env.estate.cost_tag_value(resource, "CostCenter")
        )
        entry = totals.setdefault(account, [Decimal(0), Decimal(0)])
        entry[0] += spend
        entry[1] += spend if gap else Decimal(0)
    return {account: (float(total), float(gap)) for account, (total, gap) in totals.items()}


async def _all_accounts_gap(client: Client, regions: list[str]) -> dict[str, Any]:
    """The CostCenter gap of EC2 spend over ``regions`` and every configured account."""
    return await call(
        client,
        "get_cost_attribution_gap",
        resource_types=["ec2:instance"],
        regions=regions,
        accounts=["all"],
        tag_keys=["CostCenter"],
        **_cost_period(),
    )


@pytest.fixture
def management_account(aws_env: DemoAws) -> Iterator[None]:
    """The demo account as its organization's management (payer) account."""
    org = aws_env.client("organizations")
    created = create_organization(org)
    assert org.describe_organization()["Organization"]["MasterAccountId"] == aws_env.account_id
    yield
    if created:
        org.delete_organization()


async def test_the_management_account_reports_the_gap_per_account_without_assuming_roles(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path, management_account: None
) -> None:
    regions = list(aws_env.regions)
    # The management account's billing data: the second region's spend is a's, the third's b's.
    billed_to = {
        resource.key: members["a"] if resource.region == regions[1] else members["b"]
        for resource in aws_env.estate.resources
        if resource.region in regions[1:]
    }
    aws_env.cost_model.linked_accounts = billed_to
    runtime, org = _runtime(aws_env, tmp_path, members)
    try:
        async with Client(build_server(runtime)) as client:
            gap = await _all_accounts_gap(client, regions)
        expected = _expected_account_gaps(aws_env, regions, billed_to)
        assert set(expected) == {org.own, members["a"], members["b"]}
        assert gap["accounts"] == org.configured
        assert {account: (e["total_spend"], e["gap_spend"]) for account, e in gap["by_account"].items()} == {
            account: (pytest.approx(total, abs=0.01), pytest.approx(missing, abs=0.01))
            for account, (total, missing) in expected.items()
        }
        gaps = [entry["gap_spend"] for entry in gap["by_account"].values()]
        assert gaps == sorted(gaps, reverse=True)  # the largest gap first
        assert gap["total_spend"] == pytest.approx(sum(total for total, _ in expected.values()), abs=0.02)
        assert gap["attribution_gap"]["gap_spend"] == pytest.approx(
            sum(g for _, g in expected.values()), abs=0.02
        )
        # Billing data answered: no role was assumed, not even into the refused account.
        assert org.deny.denied == 0
        assert not any("AssumeRole" in name for name in runtime.service.clients.request_counts)
    finally:
        aws_env.cost_model.linked_accounts = {}
        runtime.close()


async def test_a_member_account_counts_its_own_spend_only_and_says_so(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    org_client = aws_env.client("organizations")
    with pytest.raises(ClientError):  # the demo account is in no organization here: not a payer
        org_client.describe_organization()
    regions = list(aws_env.regions)
    runtime, org = _runtime(aws_env, tmp_path, members)
    try:
        async with Client(build_server(runtime)) as client:
            gap = await _all_accounts_gap(client, regions)
        expected = _expected_account_gaps(aws_env, regions, {})
        assert gap["accounts"] == [org.own] and list(gap["by_account"]) == [org.own]
        assert gap["by_account"][org.own]["gap_spend"] == pytest.approx(expected[org.own][1], abs=0.01)
        assert gap["total_spend"] == pytest.approx(expected[org.own][0], abs=0.01)
        note = gap["notes"][0]
        assert f"Only account {org.own}'s own spend" in note and "management (payer)" in note
        assert all(members[name] in note for name in ("a", "b", "denied"))
    finally:
        runtime.close()


REMEDIATION_ROLE = "TagComplianceRemediationRole"
BEFORE = {"Environment": "prod", "Keep": "me"}


_TOPICS_CREATED: list[str] = []


@pytest.fixture(autouse=True)
def _delete_created_topics(aws_env: DemoAws) -> Iterator[None]:
    """Topics a test creates are deleted after it: those in the credentials' account belong to the
    session's demo estate, whose exact figures later tests check."""
    yield
    while _TOPICS_CREATED:
        arn = _TOPICS_CREATED.pop()
        _client_in(aws_env, arn.split(":")[4], "sns").delete_topic(TopicArn=arn)


def _new_topic(aws_env: DemoAws, account_id: str) -> str:
    """A topic of its own in ``account_id`` (an SNS topic: moto's Tagging API writes SNS tags, not
    SQS ones; the module's queues keep their designed tags), deleted after the test; its ARN."""
    name = f"xacct-{uuid.uuid4().hex[:12]}"
    arn = _client_in(aws_env, account_id, "sns").create_topic(
        Name=name, Tags=[{"Key": k, "Value": v} for k, v in BEFORE.items()]
    )["TopicArn"]
    _TOPICS_CREATED.append(arn)
    return arn


def _tags(aws_env: DemoAws, arn: str) -> dict[str, str]:
    """The topic's tags as its own account sees them."""
    sns = _client_in(aws_env, arn.split(":")[4], "sns")
    return {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}


def _change(arn: str, owner: str) -> dict[str, Any]:
    return {
        "resource_arn": arn,
        "set_tags": {"CostCenter": "CC-2001", "Owner": owner, "Environment": "production"},
        "remove_tags": ["Keep"],
    }


def _after(owner: str) -> dict[str, str]:
    return {"CostCenter": "CC-2001", "Owner": owner, "Environment": "production"}


@dataclass
class AssumedRoles:
    """Every ``sts:AssumeRole`` the gateway sends: (role ARN, session name)."""

    calls: list[tuple[str, str]]

    def __call__(self, params: dict[str, Any] | None = None, **_: Any) -> None:
        body = (params or {}).get("body") or {}
        self.calls.append((str(body.get("RoleArn")), str(body.get("RoleSessionName"))))


async def test_a_remediation_across_accounts_writes_each_through_its_remediation_role_and_undo_restores(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    runtime, org = _runtime(aws_env, tmp_path, members, REMEDIATION_ENABLED="true")
    assumed = AssumedRoles([])
    runtime.service.clients.client("sts").meta.events.register("before-call.sts.AssumeRole", assumed)
    a, b = org.members["a"], org.members["b"]
    arns = {"own": _new_topic(aws_env, org.own), "a": _new_topic(aws_env, a), "b": _new_topic(aws_env, b)}
    owners = {name: f"{name}@example.com" for name in arns}
    changes = [_change(arns[name], owners[name]) for name in arns]
    try:
        async with Client(build_server(runtime)) as client:
            commit = await call(client, "apply_tag_remediation", changes=changes)
            assert commit["safety"] == "intent_commit"
            details = commit["intent_commit"]["details"]
            assert details["to_write"] == 3 and details["refused_accounts"] == {}
            assert details["by_account"] == dict.fromkeys(sorted([org.own, a, b]), 1)
            # Before-tags read in each queue's own account: none of them is "not found".
            diffs = {d["resource_arn"]: d for d in details["diffs"]}
            for name, arn in arns.items():
                assert diffs[arn]["before"] == BEFORE and diffs[arn]["after"] == _after(owners[name])
                assert diffs[arn]["removed"] == {"Keep": "me"}
            # Per account: one TagResources and one UntagResources each.
            assert details["write_requests"] == 6
            assert all(_tags(aws_env, arn) == BEFORE for arn in arns.values()), "the commit wrote"

            result = await call(
                client,
                "apply_tag_remediation",
                changes=changes,
                confirmation_token=commit["confirmation_token"],
            )
            assert (result["status"], result["applied"], result["failed"]) == ("completed", 3, 0), [
                r["error"] for r in result["resources"]
            ]
            assert result["write_requests"] == 6
            for name, arn in arns.items():
                assert _tags(aws_env, arn) == _after(owners[name]), name

            # Only the member accounts' remediation role was assumed to write, under its own session
            # name; the credentials' own account was written with the server's credentials.
            remediation = {role for role, session in assumed.calls if session == "tag-compliance-remediation"}
            assert remediation == {f"arn:aws:iam::{account}:role/{REMEDIATION_ROLE}" for account in (a, b)}
            assert not [role for role, _ in assumed.calls if f"::{org.own}:" in role]

            undo_commit = await call(client, "undo_tag_remediation", remediation_id=result["remediation_id"])
            undo_diffs = {d["resource_arn"]: d for d in undo_commit["intent_commit"]["details"]["diffs"]}
            assert {arn: d["after"] for arn, d in undo_diffs.items()} == dict.fromkeys(arns.values(), BEFORE)
            undone = await call(
                client,
                "undo_tag_remediation",
                remediation_id=result["remediation_id"],
                confirmation_token=undo_commit["confirmation_token"],
            )
            assert (undone["applied"], undone["failed"], undone["skipped"]) == (3, 0, 0)
        assert {name: _tags(aws_env, arn) for name, arn in arns.items()} == dict.fromkeys(arns, BEFORE)
    finally:
        runtime.close()


async def test_an_account_whose_remediation_role_is_missing_is_refused_by_name_the_others_written(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    runtime, org = _runtime(aws_env, tmp_path, members, REMEDIATION_ENABLED="true")
    b = org.members["b"]
    # b's audit role is there (b is read), its remediation role is not.
    missing = DenyAssumeRole(b, REMEDIATION_ROLE)
    runtime.service.clients.client("sts").meta.events.register("before-call.sts.AssumeRole", missing)
    own_arn, b_arn = _new_topic(aws_env, org.own), _new_topic(aws_env, b)
    changes = [_change(own_arn, "own@example.com"), _change(b_arn, "b@example.com")]
    try:
        async with Client(build_server(runtime)) as client:
            commit = await call(client, "apply_tag_remediation", changes=changes)
            details = commit["intent_commit"]["details"]
            (reason,) = details["refused_accounts"].values()
            assert list(details["refused_accounts"]) == [b]
            assert (
                f"account {b} refused" in reason and REMEDIATION_ROLE in reason and "AccessDenied" in reason
            )
            assert details["to_write"] == 1 and details["skipped"] == 0
            diffs = {d["resource_arn"]: d for d in details["diffs"]}
            assert diffs[b_arn]["note"] == reason and diffs[b_arn]["after"] == {}

            result = await call(
                client,
                "apply_tag_remediation",
                changes=changes,
                confirmation_token=commit["confirmation_token"],
            )
            assert (result["applied"], result["failed"]) == (1, 1)
            outcomes = {r["resource_arn"]: r for r in result["resources"]}
            assert outcomes[own_arn]["status"] == "applied"
            assert outcomes[b_arn]["status"] == "failed" and outcomes[b_arn]["error"] == reason
            assert _tags(aws_env, own_arn) == _after("own@example.com")
            assert _tags(aws_env, b_arn) == BEFORE

            # Nothing but the refused account: refused outright, naming it.
            message = await call_error(client, "apply_tag_remediation", changes=[changes[1]])
            assert "refused, nothing was written" in message and f"account {b} refused" in message

            # The undo restores the own account's queue; b's never-written item is not touched.
            undo_commit = await call(client, "undo_tag_remediation", remediation_id=result["remediation_id"])
            undone = await call(
                client,
                "undo_tag_remediation",
                remediation_id=result["remediation_id"],
                confirmation_token=undo_commit["confirmation_token"],
            )
            assert [r["resource_arn"] for r in undone["resources"]] == [own_arn]
            assert _tags(aws_env, own_arn) == BEFORE and _tags(aws_env, b_arn) == BEFORE
        assert missing.denied >= 2
    finally:
        runtime.close()


def test_a_role_refused_during_the_writes_fails_that_accounts_resources_with_the_reason(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    """b's remediation role goes away between the plan and the writes (the confirmed plan is executed
    by another gateway process, whose AssumeRole into b is refused): b's resource fails with the reason
    and the journal says exactly what was written in each account."""
    (tmp_path / "plan").mkdir()
    (tmp_path / "write").mkdir()
    planner, org = _runtime(aws_env, tmp_path / "plan", members, REMEDIATION_ENABLED="true")
    executor, _ = _runtime(aws_env, tmp_path / "write", members, REMEDIATION_ENABLED="true")
    a, b = org.members["a"], org.members["b"]
    executor.service.clients.client("sts").meta.events.register(
        "before-call.sts.AssumeRole", DenyAssumeRole(b, REMEDIATION_ROLE)
    )
    arns = {"own": _new_topic(aws_env, org.own), "a": _new_topic(aws_env, a), "b": _new_topic(aws_env, b)}
    changes = [TagChange(**_change(arn, f"{name}@example.com")) for name, arn in arns.items()]
    try:
        plan = TagRemediation(planner.service).plan_apply(ApplyRemediationRequest(changes=changes))
        assert plan.refused_accounts() == {}
        result = TagRemediation(executor.service).execute(plan, Caller(user_id="local:test"))
        outcome = {r.resource_arn: r for r in result.resources}
        assert (result.applied, result.failed) == (2, 1)
        error = outcome[arns["b"]].error or ""
        assert (
            error.startswith(f"not written: account {b} refused: cannot assume ") and "AccessDenied" in error
        )
        assert REMEDIATION_ROLE in error
        for name in ("own", "a"):
            assert _tags(aws_env, arns[name]) == _after(f"{name}@example.com"), name
        assert _tags(aws_env, arns["b"]) == BEFORE
        journal = executor.store.list_remediation_items(result.remediation_id)
        assert {item.resource_arn: item.status for item in journal} == {
            arns["own"]: "applied",
            arns["a"]: "applied",
            arns["b"]: "failed",
        }
    finally:
        planner.close()
        executor.close()


async def test_suggestions_are_planned_in_the_accounts_asked_about(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    """from_suggestions over accounts a and b: a's orders queue gets its Environment value corrected
    (b's queues are compliant). A dry run: moto's Tagging API cannot write SQS tags (the writes across
    accounts are the SNS tests above)."""
    runtime, org = _runtime(aws_env, tmp_path, members, REMEDIATION_ENABLED="true")
    assumed = AssumedRoles([])
    runtime.service.clients.client("sts").meta.events.register("before-call.sts.AssumeRole", assumed)
    a, b = org.members["a"], org.members["b"]
    source = {"resource_types": [TYPE], "regions": [org.region], "min_confidence": 0}
    try:
        async with Client(build_server(runtime)) as client:
            planned = await call(
                client, "apply_tag_remediation", from_suggestions={**source, "accounts": [a, b]}, dry_run=True
            )
            message = await call_error(
                client, "apply_tag_remediation", from_suggestions={**source, "accounts": ["12345"]}
            )
        assert planned["safety"] == "dry_run"
        assert planned["intent_commit"]["parameters"]["from_suggestions"]["accounts"] == [a, b]
        details = planned["intent_commit"]["details"]
        assert [(d["resource_arn"], d["before"], d["after"]) for d in details["diffs"]] == [
            (
                f"arn:aws:sqs:{org.region}:{a}:org-a-orders",
                {"Environment": "prod"},
                {"Environment": "production"},
            )
        ]
        # Scanned through the audit roles, its before-tags read again through a's remediation role.
        roles = {role.split(":")[4] + "/" + role.rsplit("/", 1)[1] for role, _ in assumed.calls}
        assert {f"{a}/{ROLE}", f"{b}/{ROLE}", f"{a}/{REMEDIATION_ROLE}"} <= roles
        assert f"{b}/{REMEDIATION_ROLE}" not in roles  # nothing to change in b
        assert _tags_of_queue(aws_env, a, "org-a-orders") == QUEUES["a"]["org-a-orders"]  # nothing written
        assert "12-digit AWS account ids" in message
    finally:
        runtime.close()


async def test_suggestions_to_another_accounts_bucket_are_refused_by_name(
    aws_env: DemoAws, members: dict[str, str], tmp_path: Path
) -> None:
    """A bucket's ARN names no account: a suggested change to one read in account a is refused by
    name, never planned against the credentials' own account."""
    runtime, org = _runtime(aws_env, tmp_path, members, REMEDIATION_ENABLED="true")
    a = org.members["a"]
    s3 = _client_in(aws_env, a, "s3")
    bucket = f"org-a-media-{a}"
    location = (
        {} if org.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": org.region}}
    )
    s3.create_bucket(Bucket=bucket, **location)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "Environment", "Value": "prod"}]})
    source = {"resource_types": ["s3:bucket"], "regions": [org.region], "min_confidence": 0, "accounts": [a]}
    try:
        async with Client(build_server(runtime)) as client:
            message = await call_error(client, "apply_tag_remediation", from_suggestions=source, dry_run=True)
    finally:
        runtime.close()
        s3.delete_bucket(Bucket=bucket)
    assert "names no account" in message and f"arn:aws:s3:::{bucket}" in message, message


def _tags_of_queue(aws_env: DemoAws, account_id: str, name: str) -> dict[str, str]:
    sqs = _client_in(aws_env, account_id, "sqs")
    return sqs.list_queue_tags(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"]).get("Tags", {})


async def test_history_of_some_accounts_is_not_partial_for_another_accounts_gap(
    org_client: Client, org_runtime: tuple[Runtime, Organization]
) -> None:
    _, org = org_runtime
    scope = {"resource_types": [TYPE], "regions": [org.region]}
    await call(org_client, "check_tag_compliance", **scope, accounts=["all"])
    a = org.members["a"]
    history = await call(org_client, "get_violation_history", days_back=1, **scope, accounts=[a])
    last = history["points"][-1]
    assert last["coverage"] == {
        "shards_total": 1,
        "shards_ok": 1,
        "shards_failed": 0,
        "resources_unreadable": 0,
        "partial": False,
    }
    assert (last["total_resources"], last["compliant_resources"], last["violation_count"]) == (3, 1, 4)
    assert last["by_account"] == _by_account(org, (0, 0, 0, 0), ["a"])
    # The whole organization's points are partial: the refused account was not read.
    everything = await call(org_client, "get_violation_history", days_back=1, **scope, accounts=["all"])
    assert everything["points"][-1]["coverage"]["partial"] is True
    assert everything["points"][-1]["coverage"]["shards_failed"] == 1

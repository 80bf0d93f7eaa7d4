"""apply_tag_remediation then undo_tag_remediation, through the official mcp client against moto:
the intent commit shows the exact diff, only the confirmed call writes, and undo restores every tag
set exactly (EC2 instance and volume, S3, DynamoDB, SNS, Secrets Manager, RDS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tests.e2e.helpers import call, call_error

from .conftest import FaultyAwsProcess, settings_for
from .estate import seed, tags_now

pytestmark = pytest.mark.anyio

GOOD = {"CostCenter": "CC-1001", "Owner": "ana@example.com", "Environment": "production"}


async def test_apply_then_undo_restores_every_tag_set_exactly(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    names = ["instance", "volume", "bucket", "table", "topic", "secret", "db"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    changes = [
        {"resource_arn": arns[name], "set_tags": GOOD, "remove_tags": ["Keep"] if name == "bucket" else []}
        for name in names
    ]
    changes[0]["remove_tags"] = ["Name"]  # the instance loses a key the undo must put back

    commit = await call(client, "apply_tag_remediation", changes=changes)
    assert commit["safety"] == "intent_commit" and commit["confirmation_token"]
    details = commit["intent_commit"]["details"]
    diffs = {diff["resource_arn"]: diff for diff in details["diffs"]}
    assert diffs[arns["instance"]]["removed"] == {"Name": "web-01"}
    assert diffs[arns["instance"]]["changed"] == {"Environment": ["prod", "production"]}
    assert diffs[arns["bucket"]]["changed"] == {"Owner": ["old@example.com", "ana@example.com"]}
    assert diffs[arns["bucket"]]["removed"] == {"Keep": "me"}
    assert details["by_region"] == {"us-east-1": 7} and details["to_write"] == 7
    assert details["policy_after"]["compliant_after"] > details["policy_after"]["compliant_before"]
    assert any("overwrites Owner='old@example.com'" in regret for regret in details["regrets"])
    assert all(tags_now(aws, arns[name]) == before[name] for name in names), "the commit wrote something"

    result = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    assert result["status"] == "completed" and result["applied"] == 7 and result["failed"] == 0
    for name in names:
        expected = {k: v for k, v in before[name].items() if k not in ("Keep",) or name != "bucket"}
        if name == "instance":
            expected.pop("Name")
        expected.update(GOOD)
        assert tags_now(aws, arns[name]) == expected, name
    outcome = {r["resource_arn"]: r for r in result["resources"]}
    assert outcome[arns["bucket"]]["before_tags"] == before["bucket"]

    undo_commit = await call(client, "undo_tag_remediation", remediation_id=result["remediation_id"])
    assert undo_commit["safety"] == "intent_commit"
    undone = await call(
        client,
        "undo_tag_remediation",
        remediation_id=result["remediation_id"],
        confirmation_token=undo_commit["confirmation_token"],
    )
    assert undone["kind"] == "undo" and undone["undoes"] == result["remediation_id"]
    assert undone["applied"] == 7 and undone["skipped"] == 0
    assert {name: tags_now(aws, arns[name]) for name in names} == before

    again = await call_error(client, "undo_tag_remediation", remediation_id=result["remediation_id"])
    assert "already undone" in again


async def test_refusals_write_nothing(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    aws.reset_counts()
    bad = [
        ({"aws:createdBy": "me"}, "aws: prefix is reserved"),
        ({"CostCenter": "CC-9"}, "the policy rejects CostCenter"),
        ({"Owner": "x" * 300}, "AWS allows 256"),
        ({f"k{i}": "v" for i in range(49)}, "AWS allows 50 on a resource"),
        ({"Bad{key}": "v"}, "characters AWS does not allow"),
    ]
    for set_tags, expected in bad:
        message = await call_error(
            client,
            "apply_tag_remediation",
            changes=[{"resource_arn": arns["instance"], "set_tags": set_tags}],
        )
        assert expected in message and "nothing was written" in message, message
    unsupported = "arn:aws:iam::123456789012:role/admin"
    message = await call_error(
        client, "apply_tag_remediation", changes=[{"resource_arn": unsupported, "set_tags": {"a": "b"}}]
    )
    assert "not supported" in message
    allowed = await call(
        client,
        "apply_tag_remediation",
        changes=[{"resource_arn": arns["instance"], "set_tags": {"CostCenter": "CC-9"}}],
        allow_policy_violations=True,
    )
    assert any("rejects CostCenter" in r for r in allowed["intent_commit"]["details"]["regrets"])
    writes = {name: n for name, n in aws.requests().items() if "TagResources" in name or "Tagging" in name}
    assert writes == {}


async def test_a_write_is_committed_first_even_with_safety_turned_off(
    aws: FaultyAwsProcess, tmp_path: Path
) -> None:
    arns = seed(aws)
    runtime = build_runtime(settings_for(aws.endpoint_url, tmp_path, SAFETY_ENABLED="false"), "memory")
    try:
        async with Client(build_server(runtime)) as client:
            changes = [{"resource_arn": arns["table"], "set_tags": GOOD}]
            answer = await call(client, "apply_tag_remediation", changes=changes)
            assert answer["safety"] == "intent_commit"
            assert tags_now(aws, arns["table"]) == {}
    finally:
        runtime.close()

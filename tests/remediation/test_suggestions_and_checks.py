"""from_suggestions applies suggest_tags' values only at or above min_confidence; after a remediation
the next check (forced or cached) shows the improvement and the history marks it; the tools refuse
when remediation is disabled. Against a moto server process, through the official client."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tests.e2e.helpers import call, call_error

from .conftest import ACCOUNT, REGIONS, FaultyAwsProcess, settings_for
from .estate import tags_now

pytestmark = pytest.mark.anyio

TEAM = {
    "CostCenter": "CC-2001",
    "Owner": "billing@example.com",
    "Environment": "production",
    "Application": "billing",
}
SCOPE = {"resource_types": ["ec2:instance"], "regions": [REGIONS[0]]}


def billing_fleet(aws: FaultyAwsProcess) -> str:
    """Three well-tagged billing-api instances and a fourth missing most of its tags; its ARN."""
    ec2 = aws.client("ec2")
    for index in (1, 2, 3):
        tags = [{"Key": "Name", "Value": f"billing-api-{index}"}] + [
            {"Key": k, "Value": v} for k, v in TEAM.items()
        ]
        ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
    target = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": "billing-api-4"}, {"Key": "Environment", "Value": "prod"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    return f"arn:aws:ec2:{REGIONS[0]}:{ACCOUNT}:instance/{target}"


async def confirmed(client: Client, tool: str, **arguments: object) -> dict:
    answer = await call(client, tool, **arguments)
    if answer.get("safety") == "intent_commit":
        answer = await call(client, tool, **arguments, confirmation_token=answer["confirmation_token"])
    return answer


async def test_from_suggestions_respects_min_confidence(aws: FaultyAwsProcess, client: Client) -> None:
    target = billing_fleet(aws)
    suggested = await confirmed(client, "suggest_tags", resource_arn=target, force_refresh=True)
    confidences = {s["tag_key"]: s["confidence"] for s in suggested["suggestions"]}
    assert len(set(confidences.values())) >= 2, confidences
    ordered = sorted(confidences.values())
    threshold = (ordered[0] + ordered[-1]) / 2
    expected = {key for key, confidence in confidences.items() if confidence >= threshold}
    values = {s["tag_key"]: s["suggested_value"] for s in suggested["suggestions"]}
    source = {**SCOPE, "min_confidence": threshold}

    commit = await call(client, "apply_tag_remediation", from_suggestions=source)
    diffs = {d["resource_arn"]: d for d in commit["intent_commit"]["details"]["diffs"]}
    assert set(diffs) == {target}
    written = {**diffs[target]["added"], **{k: v[1] for k, v in diffs[target]["changed"].items()}}
    assert set(written) == expected and all(written[k] == values[k] for k in expected)

    before = tags_now(aws, target)
    result = await call(
        client,
        "apply_tag_remediation",
        from_suggestions=source,
        confirmation_token=commit["confirmation_token"],
    )
    assert result["applied"] == 1
    assert tags_now(aws, target) == {**before, **{k: values[k] for k in expected}}

    everything = await call(
        client, "apply_tag_remediation", from_suggestions={**SCOPE, "min_confidence": 0.0}, dry_run=True
    )
    rest = everything["intent_commit"]["details"]["diffs"]
    assert [d["resource_arn"] for d in rest] == [target]
    assert set(rest[0]["added"]) | set(rest[0]["changed"]) == set(confidences) - expected


async def test_next_check_shows_the_improvement_and_history_marks_it(
    aws: FaultyAwsProcess, client: Client
) -> None:
    target = billing_fleet(aws)
    first = await confirmed(client, "check_tag_compliance", **SCOPE, force_refresh=True)
    assert first["compliant_resources"] == 3 and first["total_resources"] == 4
    cached = await confirmed(client, "check_tag_compliance", **SCOPE)
    assert cached["compliant_resources"] == 3

    changes = [{"resource_arn": target, "set_tags": TEAM}]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    result = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    assert result["cache_invalidated"] is True

    # The cached answer is gone: even an unforced check reads AWS again.
    after = await confirmed(client, "check_tag_compliance", **SCOPE)
    assert after["compliant_resources"] == 4 and after["compliance_score"] == 1.0
    forced = await confirmed(client, "check_tag_compliance", **SCOPE, force_refresh=True)
    assert forced["compliance_score"] > first["compliance_score"]

    history = await call(client, "get_violation_history", days_back=1, **SCOPE)
    marks = {mark["remediation_id"]: mark for mark in history["remediations"]}
    assert marks[result["remediation_id"]]["applied"] == 1
    assert marks[result["remediation_id"]]["resource_types"] == ["ec2:instance"]
    assert any(result["remediation_id"] in point["remediations"] for point in history["points"])


async def test_disabled_by_default_with_a_clear_error(aws: FaultyAwsProcess, tmp_path: Path) -> None:
    runtime = build_runtime(settings_for(aws.endpoint_url, tmp_path, REMEDIATION_ENABLED="false"), "memory")
    try:
        async with Client(build_server(runtime)) as client:
            arn = f"arn:aws:ec2:{REGIONS[0]}:{ACCOUNT}:instance/i-0123456789abcdef0"
            message = await call_error(
                client, "apply_tag_remediation", changes=[{"resource_arn": arn, "set_tags": {"a": "b"}}]
            )
            assert "REMEDIATION_ENABLED=true" in message
            message = await call_error(client, "undo_tag_remediation", remediation_id="rem_" + "0" * 32)
            assert "REMEDIATION_ENABLED=true" in message
    finally:
        runtime.close()

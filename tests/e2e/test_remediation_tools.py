"""The remediation tools (Custodian, OpenOps) through the MCP client."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from mcp import Client

from tagcompliance.remediation.openops import load_flow_template_schema

from .helpers import call, call_error

pytestmark = pytest.mark.anyio


async def test_openops_workflow_is_an_importable_template(client: Client) -> None:
    result = await call(
        client,
        "generate_openops_workflow",
        resource_types=["ec2:instance"],
        trigger="compliance_score_below",
        threshold=0.8,
    )
    template = json.loads(result["content"])
    jsonschema.validate(template, load_flow_template_schema())
    assert (
        template["name"]
        and template["template"]["trigger"]["settings"]["blockName"] == "@openops/block-schedule"
    )
    tagging = await call(
        client,
        "generate_openops_workflow",
        remediation_strategy="auto_tag",
        resource_arns=[f"arn:aws:ec2:us-east-1:123456789012:instance/i-{n:017x}" for n in range(25)],
        tag_values={"CostCenter": "CC-1001"},
    )
    text = tagging["content"]
    assert '"add_tags_to_resources"' in text and '"dryRun": true' in text
    jsonschema.validate(json.loads(text), load_flow_template_schema())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"remediation_strategy": "auto_tag"}, "tag_values"),
        ({"remediation_strategy": "auto_tag", "tag_values": {"Environment": "prod"}}, "Environment"),
        ({"trigger": "compliance_score_below"}, "threshold"),
        ({"threshold": 1.5, "trigger": "compliance_score_below"}, "threshold"),
        ({"cron_expression": "every day"}, "cron"),
        ({"resource_types": ["ec2:vpc"]}, "unknown resource type"),
        ({"output_format": "xml"}, "output_format"),
    ],
)
async def test_openops_bad_input(client: Client, arguments: dict, message: str) -> None:
    assert message in await call_error(client, "generate_openops_workflow", **arguments)


async def test_custodian_policy_validates_with_the_real_cli(client: Client, tmp_path) -> None:
    result = await call(
        client,
        "generate_custodian_policy",
        resource_types=["ec2:instance", "s3:bucket"],
        violation_types=["missing_tag", "invalid_value"],
    )
    assert [p["resource"].removeprefix("aws.") for p in result["policies"]] == ["ec2", "s3"]
    path = tmp_path / "policy.yml"
    path.write_text(result["yaml"])
    completed = subprocess.run(
        [sys.executable, "-m", "c7n.cli", "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    mutating = await call(
        client,
        "generate_custodian_policy",
        resource_types=["ec2:instance"],
        dry_run=False,
        placeholder_values={"Owner": "unassigned@example.com"},
        mark_for_op_days=7,
    )
    assert "mark-for-op" in mutating["yaml"] and "unassigned@example.com" in mutating["yaml"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"resource_types": ["ec2:vpc"]}, "unknown resource type"),
        ({"violation_types": ["typo"]}, "violation_types"),
        ({"target_tags": ["Colour"]}, "Colour"),
        ({"dry_run": False, "placeholder_values": {"Environment": "prod"}}, "Environment"),
        ({"mark_for_op_days": 400}, "mark_for_op_days"),
        ({"mode": "hourly"}, "mode"),
    ],
)
async def test_custodian_bad_input(client: Client, arguments: dict, message: str) -> None:
    assert message in await call_error(client, "generate_custodian_policy", **arguments)

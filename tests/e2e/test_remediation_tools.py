"""The remediation tools (Custodian, OpenOps) through the MCP client."""

from __future__ import annotations

import json

import jsonschema
import pytest
from mcp import Client

from tagcompliance.remediation.openops import load_flow_template_schema

from .helpers import call, call_error

pytestmark = pytest.mark.anyio


async def test_openops_workflow_is_an_importable_template(client: Client) -> None:
    result = await call(client, "generate_openops_workflow", resource_types=["ec2:instance"],
                        trigger="compliance_score_below", threshold=0.8)
    template = json.loads(result["content"])
    jsonschema.validate(template, load_flow_template_schema())
    assert template["name"] and template["template"]["trigger"]["settings"]["blockName"] == "@openops/block-schedule"
    tagging = await call(
        client, "generate_openops_workflow", remediation_strategy="auto_tag",
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

"""Bad input to every tool gets a clear, specific error: never a traceback or a partial answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.errors import PolicyError

from .helpers import DEMO_REGIONS, call_error, gateway_settings

pytestmark = pytest.mark.anyio
# An explicit scan scope, so that the call reaches the validation under test (not a clarification).
EXPLICIT_SCOPE = {"resource_types": ["all"], "regions": DEMO_REGIONS}


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("check_tag_compliance", {"resource_types": ["ec2:vpc"]}, "unknown resource type"),
        ("check_tag_compliance", {"regions": ["moon-1"]}, "not AWS region names"),
        ("check_tag_compliance", {"regions": ["all", "us-east-1"]}, "cannot be combined"),
        ("check_tag_compliance", {"page_size": 0}, "page_size"),
        ("check_tag_compliance", {"page_size": 501}, "page_size"),
        ("check_tag_compliance", {"severity": "fatal"}, "severity"),
        ("check_tag_compliance", {"cursor": "not-a-cursor!"}, "cursor is not valid"),
        ("check_tag_compliance", {"resource_types": ["ec2:instance"] * 30}, "resource_types"),
        ("check_tag_compliance", {"regions": ["us-east-1"] * 41}, "regions"),
        ("find_untagged_resources", {"resource_types": ["s3"]}, "unknown resource type"),
        ("find_untagged_resources", {"page_size": -3}, "page_size"),
        ("validate_resource_tags", {"resource_arns": []}, "resource_arns"),
        ("validate_resource_tags", {"resource_arns": ["arn:aws:s3:::ok-bucket"] * 101}, "resource_arns"),
        ("validate_resource_tags", {"resource_arns": ["i-0123456789abcdef0"]}, "is not an ARN"),
        (
            "validate_resource_tags",
            {"resource_arns": ["arn:aws:ec2:us-east-1:1234:instance/i-0123456789abcdef0"]},
            "invalid account id",
        ),
        ("get_cost_attribution_gap", {"resource_types": ["ec2:vpc"]}, "unknown resource type"),
        ("get_cost_attribution_gap", {"start_date": "2025-13-01"}, "start_date"),
        (
            "get_cost_attribution_gap",
            {**EXPLICIT_SCOPE, "start_date": "2025-03-01", "end_date": "2025-02-01"},
            "before",
        ),
        (
            "get_cost_attribution_gap",
            {**EXPLICIT_SCOPE, "start_date": "2020-01-01", "end_date": "2025-01-01"},
            "12 months",
        ),
        (
            "get_cost_attribution_gap",
            {**EXPLICIT_SCOPE, "start_date": "2025-01-01", "end_date": "2025-02-01", "tag_keys": ["Colour"]},
            "Colour",
        ),
        ("get_cost_attribution_gap", {"tag_keys": ["Owner"] * 21}, "tag_keys"),
        (
            "suggest_tags",
            {"resource_arn": "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1"},
            "not a supported ec2",
        ),
        ("suggest_tags", {"resource_arn": ""}, "resource_arn"),
        ("get_tagging_policy", {"unexpected": 1}, "unexpected"),
        ("generate_compliance_report", {"format": "pdf"}, "format"),
        ("generate_compliance_report", {"resource_types": ["rds"]}, "unknown resource type"),
        ("get_violation_history", {"days_back": 0}, "days_back"),
        ("get_violation_history", {"days_back": 366}, "days_back"),
        ("get_violation_history", {"group_by": "year"}, "group_by"),
    ],
)
async def test_bad_arguments(client: Client, tool: str, arguments: dict, message: str) -> None:
    text = await call_error(client, tool, **arguments)
    assert message in text


async def test_cursor_of_another_tool_is_refused(client: Client) -> None:
    result = await client.call_tool(
        "find_untagged_resources", {"resource_types": ["all"], "regions": DEMO_REGIONS, "page_size": 1}
    )
    cursor = result.structured_content["next_cursor"]
    assert "does not belong to check" in await call_error(client, "check_tag_compliance", cursor=cursor)


def test_invalid_policy_file_stops_start_up(aws_env, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"required_tags": [{"name": "Owner", "validation_regex": "(unclosed"}]}))
    with pytest.raises(PolicyError, match=r"required_tags\[0\]\.validation_regex"):
        build_runtime(gateway_settings(aws_env, tmp_path, POLICY_PATH=str(policy)), "memory")


async def test_policy_broken_while_running_gives_clear_errors(aws_env, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"required_tags": [{"name": "Owner"}]}))
    runtime: Runtime = build_runtime(gateway_settings(aws_env, tmp_path, POLICY_PATH=str(policy)), "memory")
    try:
        async with Client(build_server(runtime)) as connected:
            policy.write_text(json.dumps({"required_tags": [{"name": "Owner", "applies_to": ["ec2:vpc"]}]}))
            import os

            os.utime(policy, (1, 1))  # a different mtime, as an edit would give
            text = await call_error(
                connected, "check_tag_compliance", resource_types=["sqs:queue"], regions=DEMO_REGIONS
            )
            assert "required_tags[0].applies_to" in text and "ec2:vpc" in text
    finally:
        runtime.close()

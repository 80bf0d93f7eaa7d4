"""Every tool through the official MCP client against the seeded estate.

Expected values come from the estate's definition (services/demo/estate.py): which defects were
injected into which resource, never from the product's own output.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import Runtime
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS

from .helpers import DEMO_REGIONS, call, call_error

pytestmark = pytest.mark.anyio

CORE_TOOLS = {
    "check_tag_compliance",
    "find_untagged_resources",
    "validate_resource_tags",
    "get_cost_attribution_gap",
    "suggest_tags",
    "get_tagging_policy",
    "generate_compliance_report",
    "get_violation_history",
}


def expected_violation_set(demo: DemoAws, types: list[str] | None = None, regions: list[str] | None = None):
    return {
        (demo.arns[resource.key], violation.violation_type, violation.tag_key)
        for resource in demo.estate.select(resource_types=types, regions=regions)
        for violation in resource.expected_violations
    }


async def all_violations(client: Client, **arguments: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first = await call(client, "check_tag_compliance", page_size=100, **arguments)
    violations = list(first["violations"])
    cursor = first["next_cursor"]
    while cursor:
        page = await call(client, "check_tag_compliance", cursor=cursor)
        assert page["snapshot_id"] == first["snapshot_id"]
        violations.extend(page["violations"])
        cursor = page["next_cursor"]
    return first, violations


async def test_lists_the_core_tools_with_descriptions(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= CORE_TOOLS
    for name in CORE_TOOLS:
        assert tools[name].description and len(tools[name].description) > 40
        assert tools[name].output_schema is not None


async def test_full_estate_check_matches_the_definition(client: Client, aws_env: DemoAws) -> None:
    expected = aws_env.estate.expected_summary()
    first, violations = await all_violations(
        client, resource_types=["all"], regions=DEMO_REGIONS, force_refresh=True
    )
    assert first["total_resources"] == len(aws_env.estate.resources) == expected.total
    assert first["compliant_resources"] == expected.compliant
    assert first["compliance_score"] == pytest.approx(expected.compliance_score, abs=1e-4)
    assert first["violations_by_type"] == expected.violations_by_type
    assert first["failed_shards"] == []
    assert set(first["scope"]["regions"]) == set(aws_env.regions)
    assert {(v["resource_arn"], v["violation_type"], v["tag_key"]) for v in violations} == (
        expected_violation_set(aws_env)
    )
    assert len(violations) == sum(expected.violations_by_type.values())
    never_tagged = [r for r in aws_env.estate.resources if r.tags is None]
    assert never_tagged, "the estate must hold never-tagged resources"
    flagged = {v["resource_arn"] for v in violations}
    assert {aws_env.arns[r.key] for r in never_tagged} <= flagged
    per_type = Counter(r.resource_type for r in aws_env.estate.resources)
    assert {k: v["total"] for k, v in first["by_resource_type"].items() if v["total"]} == dict(per_type)
    # The demo estate lives in one account: its per-account counts are the estate's.
    assert first["scope"]["accounts"] == [aws_env.account_id]
    assert first["by_account"] == {
        aws_env.account_id: {
            "total": expected.total,
            "compliant": expected.total - expected.noncompliant,
            "violations": sum(expected.violations_by_type.values()),
            "compliance_score": first["compliance_score"],  # one account: its score is the headline's
        }
    }


async def test_filtered_check_by_type_and_region(client: Client, aws_env: DemoAws) -> None:
    types, regions = ["ec2:instance", "rds:db", "s3:bucket"], ["us-west-2"]
    expected = aws_env.estate.expected_summary(resource_types=types, regions=regions)
    first, violations = await all_violations(client, resource_types=types, regions=regions)
    assert first["total_resources"] == expected.total > 0
    assert first["compliant_resources"] == expected.compliant
    assert {(v["resource_arn"], v["violation_type"], v["tag_key"]) for v in violations} == (
        expected_violation_set(aws_env, types, regions)
    )
    assert {v["region"] for v in violations} <= {"us-west-2"}
    assert first["by_account"] == {
        aws_env.account_id: {
            "total": expected.total,
            "compliant": expected.total - expected.noncompliant,
            "violations": sum(expected.violations_by_type.values()),
            "compliance_score": first["compliance_score"],  # one account: its score is the headline's
        }
    }


async def test_second_check_is_served_from_the_snapshot(client: Client) -> None:
    first = await call(
        client, "check_tag_compliance", resource_types=["sqs:queue"], regions=DEMO_REGIONS, force_refresh=True
    )
    again = await call(client, "check_tag_compliance", resource_types=["sqs:queue"], regions=DEMO_REGIONS)
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["snapshot_id"] == first["snapshot_id"]
    assert again["compliance_score"] == first["compliance_score"]


async def test_severity_filter(client: Client) -> None:
    warnings = await call(
        client, "check_tag_compliance", resource_types=["all"], regions=DEMO_REGIONS, severity="warnings_only"
    )
    assert warnings["violations"] == [] and warnings["violation_count"] == 0


async def test_find_untagged_resources(client: Client, aws_env: DemoAws) -> None:
    expected: dict[str, set[str]] = defaultdict(set)
    for resource in aws_env.estate.resources:
        for violation in resource.expected_violations:
            if violation.violation_type == "missing_tag":
                expected[aws_env.arns[resource.key]].add(violation.tag_key)
    found: dict[str, set[str]] = {}
    result = await call(
        client, "find_untagged_resources", resource_types=["all"], regions=DEMO_REGIONS, page_size=500
    )
    assert result["next_cursor"] is None
    for item in result["resources"]:
        found[item["resource_arn"]] = set(item["missing_tags"])
    assert found == dict(expected)
    assert result["total_untagged"] == len(expected)
    assert result["never_tagged"] == sum(1 for r in aws_env.estate.resources if r.tags is None)
    paged = await call(
        client, "find_untagged_resources", resource_types=["all"], regions=DEMO_REGIONS, page_size=7
    )
    assert len(paged["resources"]) == 7 and paged["next_cursor"]
    second = await call(client, "find_untagged_resources", cursor=paged["next_cursor"], page_size=7)
    assert {r["resource_arn"] for r in paged["resources"]}.isdisjoint(
        r["resource_arn"] for r in second["resources"]
    )


async def test_validate_resource_tags(client: Client, aws_env: DemoAws) -> None:
    estate = aws_env.estate
    good = next(r for r in estate.resources if r.compliant and r.resource_type == "ec2:instance")
    bad = next(r for r in estate.resources if not r.compliant and r.resource_type == "rds:db")
    bucket = next(r for r in estate.resources if r.resource_type == "s3:bucket" and r.region == "eu-west-1")
    ghost = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    result = await call(
        client,
        "validate_resource_tags",
        resource_arns=[
            aws_env.arns[good.key],
            aws_env.arns[bad.key],
            aws_env.arns[bucket.key],
            ghost,
        ],
    )
    by_arn = {item["resource_arn"]: item for item in result["results"]}
    assert by_arn[aws_env.arns[good.key]]["status"] == "compliant"
    bad_result = by_arn[aws_env.arns[bad.key]]
    assert bad_result["status"] == "non_compliant"
    assert {(v["violation_type"], v["tag_key"]) for v in bad_result["violations"]} == {
        (v.violation_type, v.tag_key) for v in bad.expected_violations
    }
    assert by_arn[aws_env.arns[bucket.key]]["region"] == "eu-west-1"
    assert by_arn[aws_env.arns[bucket.key]]["status"] == (
        "compliant" if bucket.compliant else "non_compliant"
    )
    assert by_arn[ghost]["status"] == "not_found"
    assert result["not_found"] == 1


async def test_get_tagging_policy(client: Client) -> None:
    result = await call(client, "get_tagging_policy")
    assert result["source"] == "file"
    assert [t["name"] for t in result["policy"]["required_tags"]] == [
        "CostCenter",
        "Owner",
        "Environment",
        "Application",
    ]
    assert result["resource_types"]["rds:db"][-1] == "Application"
    assert "Application" not in result["resource_types"]["s3:bucket"]
    assert set(result["resource_types"]) == set(RESOURCE_TYPE_IDS)


async def test_reports_in_three_formats(client: Client, aws_env: DemoAws) -> None:
    expected = aws_env.estate.expected_summary()
    markdown = await call(
        client, "generate_compliance_report", format="markdown", resource_types=["all"], regions=DEMO_REGIONS
    )
    assert f"{expected.compliance_score * 100:.1f}%" in markdown["content"]
    assert markdown["summary"]["total_resources"] == expected.total
    # One account: it is named in the header, and there is no per-account section.
    assert markdown["summary"]["accounts"] == [aws_env.account_id]
    full = markdown["content"] if not markdown["truncated"] else Path(markdown["file_path"]).read_text()
    assert f"- Account: {aws_env.account_id}\n" in full and "## By region" in full
    assert "## By account" not in full
    csv_report = await call(
        client, "generate_compliance_report", format="csv", resource_types=["all"], regions=DEMO_REGIONS
    )
    text = csv_report["content"] if not csv_report["truncated"] else Path(csv_report["file_path"]).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("resource_arn,resource_type,region,violation_type")
    assert len(lines) - 1 == sum(expected.violations_by_type.values())
    json_report = await call(
        client,
        "generate_compliance_report",
        format="json",
        include_violations=False,
        resource_types=["all"],
        regions=DEMO_REGIONS,
    )
    assert '"violation_count": ' + str(sum(expected.violations_by_type.values())) in json_report["content"]


async def test_violation_history_after_checks(client: Client, runtime: Runtime) -> None:
    await call(
        client, "check_tag_compliance", resource_types=["all"], regions=DEMO_REGIONS, force_refresh=True
    )
    await call(
        client, "check_tag_compliance", resource_types=["all"], regions=DEMO_REGIONS, force_refresh=True
    )
    history = await call(client, "get_violation_history", days_back=7, group_by="day")
    assert history["snapshot_count"] >= 2
    assert len(history["points"]) == 1 and history["points"][0]["snapshots"] >= 2
    assert history["trend"] == "insufficient_data"
    weekly = await call(
        client, "get_violation_history", days_back=30, group_by="week", resource_types=["all"]
    )
    assert weekly["points"]


async def test_every_call_is_audited(client: Client, runtime: Runtime) -> None:
    await call(client, "get_tagging_policy")
    await call_error(  # refused by the core
        client, "check_tag_compliance", resource_types=["ec2:vpc"], regions=DEMO_REGIONS
    )
    await call_error(client, "check_tag_compliance", page_size=0)  # refused by the schema, before the tool
    await call_error(client, "no_such_tool")
    logs = runtime.store.list_calls(limit=4)
    assert [(log.tool_name, log.status) for log in logs] == [
        ("no_such_tool", "error"),
        ("check_tag_compliance", "error"),
        ("check_tag_compliance", "error"),
        ("get_tagging_policy", "success"),
    ]
    assert "page_size" in (logs[1].error_message or "")
    assert "ec2:vpc" in (logs[2].error_message or "")
    assert logs[2].parameters == {"resource_types": ["ec2:vpc"], "regions": DEMO_REGIONS}
    assert logs[3].result_summary["source"] == "file" and logs[3].duration_ms >= 0


async def test_scans_report_progress(client: Client) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    result = await client.call_tool(
        "check_tag_compliance",
        {"resource_types": ["all"], "regions": DEMO_REGIONS, "force_refresh": True},
        progress_callback=on_progress,
    )
    assert not result.is_error
    assert updates, "a full scan must report progress"
    assert all(total and 0 < progress <= total for progress, total, _ in updates)
    assert any("listed in" in (message or "") for _, _, message in updates)


async def test_cost_attribution_gap_matches_the_seeded_costs(client: Client, aws_env: DemoAws) -> None:
    types, start, end = ["ec2:instance", "rds:db"], date(2025, 10, 1), date(2025, 11, 1)
    result = await call(
        client,
        "get_cost_attribution_gap",
        resource_types=types,
        regions=DEMO_REGIONS,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
    )
    estate = aws_env.estate
    # Cost Explorer reports whole services: RDS spend includes rds:cluster, which was not asked for.
    services = {REGISTRY[t].cost_explorer_service for t in types}
    sharing = [t for t in RESOURCE_TYPE_IDS if REGISTRY[t].cost_explorer_service in services]
    assert "rds:cluster" in sharing
    by_service = estate.expected_cost(start, end, sharing)
    assert result["total_spend"] == pytest.approx(float(sum(by_service.values())), abs=0.01)
    cost_center = next(tag for tag in result["by_tag"] if tag["tag_key"] == "CostCenter")
    by_value = estate.expected_cost(start, end, sharing, tag_key="CostCenter")
    allowed = {"CC-1001", "CC-1002", "CC-2001", "CC-3001"}
    assert cost_center["unattributed_spend"] == pytest.approx(float(by_value.get("", 0)), abs=0.01)
    assert cost_center["invalid_value_spend"] == pytest.approx(
        float(sum(v for k, v in by_value.items() if k and k not in allowed)), abs=0.01
    )
    assert cost_center["attributed_spend"] == pytest.approx(
        float(sum(v for k, v in by_value.items() if k in allowed)), abs=0.01
    )
    assert cost_center["method"] == "cost_explorer_tag_group" and cost_center["tag_activated"] is True
    application = next(tag for tag in result["by_tag"] if tag["tag_key"] == "Application")
    assert application["tag_activated"] is False
    assert any("Application" in note for note in result["notes"])
    assert any("rds:cluster" in note for note in result["notes"])
    requests_made = result["cost_explorer_requests"]
    assert requests_made <= len(result["by_tag"]) + 1 + 2  # one per tag, the activation check, extra pages
    again = await call(
        client,
        "get_cost_attribution_gap",
        resource_types=types,
        regions=DEMO_REGIONS,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
    )
    assert again["cached"] is True and again["total_spend"] == result["total_spend"]
    with_estimates = await call(
        client,
        "get_cost_attribution_gap",
        resource_types=types,
        regions=DEMO_REGIONS,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        include_resource_estimates=True,
    )
    assert with_estimates["estimates"] and all(
        e["method"] == "service_average_estimate" for e in with_estimates["estimates"]
    )


async def test_suggest_tags_recovers_intended_values(client: Client, aws_env: DemoAws) -> None:
    estate = aws_env.estate
    target = next(
        r
        for r in estate.resources
        if r.tags is not None
        and ("missing", "CostCenter") in r.defects
        and "aws:cloudformation:stack-name" in r.tags
    )
    result = await call(client, "suggest_tags", resource_arn=aws_env.arns[target.key])
    by_key = {s["tag_key"]: s for s in result["suggestions"]}
    assert by_key["CostCenter"]["suggested_value"] == target.intended_tags["CostCenter"]
    assert 0 < by_key["CostCenter"]["confidence"] < 1 and by_key["CostCenter"]["reasons"]
    bucket = next(
        r for r in estate.resources if r.resource_type == "s3:bucket" and not r.compliant and r.tags
    )
    bucket_result = await call(client, "suggest_tags", resource_arn=aws_env.arns[bucket.key])
    assert bucket_result["resource_arn"] == aws_env.arns[bucket.key]
    for suggestion in bucket_result["suggestions"]:
        if suggestion["tag_key"] == "Environment":
            assert suggestion["suggested_value"] in {"production", "staging", "development", "test"}
    ghost = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    assert "was not found" in await call_error(client, "suggest_tags", resource_arn=ghost)

"""The answer text (services/mcp_gateway/rendering.py): it leads with the decision, never hides what
could not be read, keeps to ten examples, and ``detail="full"`` gives the whole answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tag_compliance_mcp.rendering import MAX_EXAMPLES, answer
from tagcompliance.models import (
    ComplianceCheckResult,
    FailedShard,
    HistoryResult,
    ScopeInfo,
    TypeCounts,
    Violation,
    ViolationPattern,
)


def check_result(violations: int, failed: list[FailedShard]) -> ComplianceCheckResult:
    page = [
        Violation(
            resource_arn=f"arn:aws:ec2:us-east-1:123456789012:instance/i-{n:04d}",
            resource_type="ec2:instance",
            region="us-east-1",
            violation_type="missing_tag",
            tag_key="CostCenter",
            current_value=None,
            severity="error",
        )
        for n in range(violations)
    ]
    return ComplianceCheckResult(
        compliance_score=0.25,
        total_resources=80,
        compliant_resources=20,
        violation_count=120,
        scanned_resources=80,
        violations_by_type={"missing_tag": 120},
        by_resource_type={"ec2:instance": TypeCounts(total=80, compliant=20, violations=120)},
        by_region={"us-east-1": TypeCounts(total=80, compliant=20, violations=120)},
        violation_patterns=[
            ViolationPattern(
                tag_key="CostCenter",
                violation_type="missing_tag",
                resource_type="ec2:instance",
                region="us-east-1",
                count=120,
            )
        ],
        violations=page,
        next_cursor="abc",
        failed_shards=failed,
        scope=ScopeInfo(account_id="123456789012", regions=["us-east-1"], resource_types=["ec2:instance"]),
        snapshot_id="snap-1",
        scanned_at=datetime(2026, 12, 3, tzinfo=UTC),
        cached=False,
        policy_source="file",
    )


def test_summary_leads_with_the_score_and_lists_ten_examples_and_the_way_to_the_rest() -> None:
    result = answer(check_result(50, []), "summary")
    text = result.content[0].text
    assert text.startswith("Compliance score 25.0%: 20 of 80 resources")
    assert "- CostCenter missing: 120 ec2:instance in us-east-1" in text
    assert text.count("\n- arn:aws:ec2") == MAX_EXAMPLES
    assert "Shown 10 of 50 on this page (120 in all)" in text and "cursor='abc'" in text
    assert len(result.structured_content["violations"]) == 50  # the page stays whole


def test_failed_shards_come_before_the_breakdown_and_are_never_called_complete() -> None:
    failed = [
        FailedShard(region="eu-west-1", resource_type="rds:db", error="AccessDenied: not authorized"),
        FailedShard(region="us-west-2", resource_type="s3:bucket", error="timed out", reason="deadline"),
    ]
    text = answer(check_result(3, failed), "summary").content[0].text
    assert "FAILED SHARDS: 2 - not in the figures" in text and "Failed shards: none" not in text
    assert "eu-west-1 rds:db: AccessDenied: not authorized" in text
    assert "us-west-2 s3:bucket: [deadline] timed out" in text
    assert text.index("FAILED SHARDS") < text.index("By type")


def test_full_detail_and_tools_without_detail_answer_the_whole_result_as_json() -> None:
    full = answer(check_result(50, []), "full")
    assert json.loads(full.content[0].text) == full.structured_content
    history = HistoryResult(
        group_by="day",
        days_back=30,
        points=[],
        trend="insufficient_data",
        score_change=None,
        snapshot_count=0,
    )
    plain = answer(history, None)
    assert json.loads(plain.content[0].text) == plain.structured_content

"""detect_tag_drift and export_violations_csv through the MCP client against the moto estate."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.drift import TagChangeEvent

from .helpers import DEMO_REGIONS, call, call_error, gateway_settings

pytestmark = pytest.mark.anyio


class RecordedEvents:
    """A stand-in for CloudTrail (moto lacks LookupEvents): the changes this test made."""

    def __init__(self) -> None:
        self.events: list[TagChangeEvent] = []

    def lookup(self, region, resource_arns_or_ids, start, end) -> list[TagChangeEvent]:
        return [event for event in self.events if start <= event.event_time <= end]


async def test_drift_since_the_last_snapshot(aws_env: DemoAws, tmp_path: Path) -> None:
    runtime = build_runtime(gateway_settings(aws_env, tmp_path), "memory")
    events = RecordedEvents()
    runtime.service.tag_events = events
    table = next(
        r
        for r in aws_env.estate.resources
        if r.resource_type == "dynamodb:table" and r.compliant and r.region == "us-east-1"
    )
    arn = aws_env.arns[table.key]
    try:
        async with Client(build_server(runtime)) as client:
            first = await call(
                client, "detect_tag_drift", resource_types=["dynamodb:table"], regions=["us-east-1"]
            )
            assert first["total_drifts"] == 0 and "baseline" in first["notes"][0]
            aws_env.client("dynamodb", "us-east-1").untag_resource(ResourceArn=arn, TagKeys=["Owner"])
            events.events.append(
                TagChangeEvent(
                    event_id="e1",
                    event_name="UntagResource",
                    event_time=datetime.now(UTC),
                    actor="arn:aws:iam::123456789012:user/jane",
                    resources=[arn],
                    tag_keys=["Owner"],
                )
            )
            second = await call(
                client,
                "detect_tag_drift",
                resource_types=["dynamodb:table"],
                regions=["us-east-1"],
                threshold=1,
            )
            assert second["total_drifts"] == 1 and second["threshold_exceeded"] is True
            [drift] = second["drift_detected"]
            assert (drift["resource_arn"], drift["tag"], drift["change"], drift["severity"]) == (
                arn,
                "Owner",
                "removed",
                "critical",
            )
            assert drift["changed_by"] == "arn:aws:iam::123456789012:user/jane"
            assert drift["attribution"] == "cloudtrail"
            assert "lookback_days" in await call_error(client, "detect_tag_drift", lookback_days=0)
    finally:
        runtime.close()
        aws_env.reset_and_reseed()


async def test_export_violations_csv(client: Client, aws_env: DemoAws) -> None:
    expected = aws_env.estate.expected_summary(resource_types=["sqs:queue", "sns:topic"])
    total = sum(expected.violations_by_type.values())
    page = await call(
        client,
        "export_violations_csv",
        filters={"resource_types": ["sqs:queue", "sns:topic"], "regions": DEMO_REGIONS},
        columns=["resource_arn", "violation", "severity", "current_value"],
        limit=10,
    )
    assert page["row_count"] == total and page["rows_written"] == 10 and page["next_cursor"]
    rows = list(csv.reader(io.StringIO(page["data"])))
    assert rows[0] == ["resource_arn", "violation", "severity", "current_value"] and len(rows) == 11
    seen = [tuple(r) for r in rows[1:]]
    cursor = page["next_cursor"]
    while cursor:
        more = await call(client, "export_violations_csv", cursor=cursor)
        seen.extend(tuple(r) for r in list(csv.reader(io.StringIO(more["data"])))[1:])
        cursor = more["next_cursor"]
    assert len(seen) == total
    whole = await call(
        client,
        "export_violations_csv",
        filters={"resource_types": ["sqs:queue", "sns:topic"], "regions": DEMO_REGIONS},
        to_file=True,
    )
    assert whole["row_count"] == total and Path(whole["file_path"]).exists()
    assert (
        "unknown column"
        in (
            await call_error(
                client,
                "export_violations_csv",
                filters={"resource_types": ["all"], "regions": DEMO_REGIONS},
                columns=["colour"],
            )
        ).lower()
    )
    assert "severity" in await call_error(client, "export_violations_csv", filters={"severity": "fatal"})

"""With one region's APIs failing, results name that region instead of silently shrinking the scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.aws import AwsClients
from tagcompliance.resources import RESOURCE_TYPE_IDS

from .helpers import DEMO_REGIONS, call, gateway_settings

pytestmark = pytest.mark.anyio
BROKEN_REGION = "eu-west-1"


class OneRegionUnreachable(AwsClients):
    """Clients for one region talk to a port where nothing listens: every request really fails."""

    def client(self, service: str, region: str | None = None) -> Any:
        if region != BROKEN_REGION:
            return super().client(service, region)
        return boto3.session.Session().client(
            service,
            region_name=region,
            endpoint_url="http://127.0.0.1:9",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
        )


async def test_failed_region_is_named_in_every_result(aws_env: DemoAws, tmp_path: Path) -> None:
    settings = gateway_settings(aws_env, tmp_path)
    runtime = build_runtime(settings, "memory")
    runtime.service.clients = OneRegionUnreachable(settings)
    try:
        async with Client(build_server(runtime)) as client:
            check = await call(
                client, "check_tag_compliance", resource_types=["all"], regions=DEMO_REGIONS, page_size=1
            )
            failed = {(shard["region"], shard["resource_type"]) for shard in check["failed_shards"]}
            assert failed == {(BROKEN_REGION, type_id) for type_id in RESOURCE_TYPE_IDS}
            assert all(
                "127.0.0.1:9" in shard["error"] or "connect" in shard["error"].lower()
                for shard in check["failed_shards"]
            )
            reachable = [r for r in aws_env.estate.resources if r.region != BROKEN_REGION]
            expected = aws_env.estate.expected_summary(
                regions=[r for r in aws_env.regions if r != BROKEN_REGION]
            )
            assert check["total_resources"] == len(reachable) == expected.total
            assert check["compliant_resources"] == expected.compliant
            assert "Partial coverage" in check["score_note"]
            assert BROKEN_REGION in check["scope"]["regions"]

            untagged = await call(
                client, "find_untagged_resources", resource_types=["all"], regions=DEMO_REGIONS
            )
            assert {s["region"] for s in untagged["failed_shards"]} == {BROKEN_REGION}

            report = await call(
                client,
                "generate_compliance_report",
                format="markdown",
                resource_types=["all"],
                regions=DEMO_REGIONS,
            )
            assert "Incomplete" in report["content"] and BROKEN_REGION in report["content"]

            bucket = next(
                r
                for r in aws_env.estate.resources
                if r.resource_type == "sqs:queue" and r.region == BROKEN_REGION
            )
            validation = await call(
                client, "validate_resource_tags", resource_arns=[aws_env.arns[bucket.key]]
            )
            assert validation["results"][0]["status"] == "not_scanned"
    finally:
        runtime.close()

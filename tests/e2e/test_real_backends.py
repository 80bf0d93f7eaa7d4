"""The gateway on its production backends: the real PostgreSQL store and the real Redis cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tests.conftest import REDIS_TEST_URL

from .helpers import DEMO_REGIONS, call, gateway_settings

pytestmark = pytest.mark.anyio


async def test_postgres_store_and_redis_cache(aws_env: DemoAws, postgres_url: str, tmp_path: Path) -> None:
    settings = gateway_settings(aws_env, tmp_path, DATABASE_URL=postgres_url, REDIS_URL=REDIS_TEST_URL)
    runtime = build_runtime(settings, "memory")
    try:
        health = runtime.health()
        assert health["store"]["backend"] == "postgresql" and health["cache"]["backend"] == "redis"
        assert health["cache"]["note"] is None
        async with Client(build_server(runtime)) as client:
            types = ["lambda:function", "s3:bucket"]
            first = await call(
                client, "check_tag_compliance", resource_types=types, regions=DEMO_REGIONS, force_refresh=True
            )
            expected = aws_env.estate.expected_summary(resource_types=types)
            assert (first["total_resources"], first["compliant_resources"]) == (
                expected.total,
                expected.compliant,
            )
            again = await call(client, "check_tag_compliance", resource_types=types, regions=DEMO_REGIONS)
            assert again["cached"] is True and again["snapshot_id"] == first["snapshot_id"]
            history = await call(client, "get_violation_history", resource_types=types)
            assert history["snapshot_count"] == 1
        stored = runtime.store.get_snapshot(first["snapshot_id"])
        assert stored is not None and stored.total_resources == expected.total
        assert [log.tool_name for log in runtime.store.list_calls(limit=3)] == [
            "get_violation_history",
            "check_tag_compliance",
            "check_tag_compliance",
        ]
    finally:
        runtime.close()
        # Leave the shared Redis as found: remove the scan keys this test wrote to its test database.
        with redis.Redis.from_url(REDIS_TEST_URL) as connection:
            for key in connection.scan_iter("tagcompliance:scan:*"):
                connection.delete(key)

"""One check_tag_compliance call resolves its scope once: the large-scan job check, the cache key and
the observation share one ``Scope``, and "all" regions asks EC2 for the enabled regions at most once
an hour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.audits.jobs import LargeScanJobs

from .helpers import call, gateway_settings

pytestmark = pytest.mark.anyio


def counting(calls: list[str], name: str, function: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return function(*args, **kwargs)

    return counted


async def test_one_check_resolves_its_scope_once_and_enabled_regions_are_cached(
    aws_env: DemoAws, tmp_path: Path
) -> None:
    settings = gateway_settings(aws_env, tmp_path, SAFETY_ENABLED="false")
    runtime = build_runtime(settings, "memory")
    try:
        service = runtime.service
        assert isinstance(service.large_scan_jobs, LargeScanJobs)  # the job check runs on this path
        calls: list[str] = []
        service.scopes.resolve = counting(calls, "resolve", service.scopes.resolve)  # type: ignore[method-assign]
        service.clients.enabled_regions = counting(  # type: ignore[method-assign]
            calls, "describe_regions", service.clients.enabled_regions
        )
        async with Client(build_server(runtime)) as client:
            first = await call(client, "check_tag_compliance", resource_types=["sqs:queue"], regions=["all"])
            assert first["job"] is None and first["cached"] is False
            assert set(aws_env.regions) <= set(first["scope"]["regions"])
            assert calls == ["resolve", "describe_regions"]

            again = await call(client, "check_tag_compliance", resource_types=["sqs:queue"], regions=["all"])
            assert again["cached"] is True and again["snapshot_id"] == first["snapshot_id"]
            assert calls == [
                "resolve",
                "describe_regions",
                "resolve",
            ]  # enabled regions from the hour's cache
    finally:
        runtime.close()

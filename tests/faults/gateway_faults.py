"""What the deadline, cancellation and shutdown fault tests share: a gateway whose AWS traffic goes
through a fault proxy, and one timed ``check_tag_compliance`` call (confirmed when the safety gate
asks, so the timing is the scan's)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tests.e2e.helpers import gateway_settings
from tests.faults.awsproxy import AwsFaultProxy

# Two types x three regions, as in the measurement; one type is read per resource in some
# regions (ElastiCache), one from its listing (EC2), so both tag paths meet the fault.
SCAN_TYPES = ["ec2:instance", "s3:bucket", "elasticache:cluster"]
# Scope-independent parts of an answer: which snapshot, when, and whether from the cache.
VOLATILE = {"snapshot_id", "scanned_at", "cached", "next_cursor"}


@contextmanager
def proxied_runtime(
    demo: DemoAws, data_dir: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> Iterator[tuple[Runtime, AwsFaultProxy]]:
    """An in-process gateway runtime reaching the demo estate only through an ``AwsFaultProxy``."""
    target = urlparse(demo.endpoint_url)
    with AwsFaultProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy:
        for name, value in {**demo.environment, "AWS_ENDPOINT_URL": proxy.endpoint_url}.items():
            monkeypatch.setenv(name, value)
        runtime = build_runtime(
            gateway_settings(demo, data_dir, AWS_ENDPOINT_URL=proxy.endpoint_url, **settings), "memory"
        )
        try:
            yield runtime, proxy
        finally:
            runtime.close()


async def timed_check(client: Client, **arguments: Any) -> tuple[float, dict[str, Any]]:
    """Seconds a ``check_tag_compliance`` call took to answer, and its structured answer."""
    arguments.setdefault("page_size", 500)
    started = time.monotonic()
    result = await client.call_tool("check_tag_compliance", arguments)
    assert not result.is_error, f"check failed: {result.content}"
    answer = result.structured_content or {}
    if answer.get("safety") == "intent_commit":  # a large scan: confirmed as a user would
        started = time.monotonic()
        result = await client.call_tool(
            "check_tag_compliance", {**arguments, "confirmation_token": answer["confirmation_token"]}
        )
        assert not result.is_error, f"check failed: {result.content}"
        answer = result.structured_content or {}
    assert answer.get("safety") is None, f"unexpected safety answer: {answer}"
    return time.monotonic() - started, answer


def stable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what differs between two scans of an unchanged estate."""
    return {key: value for key, value in answer.items() if key not in VOLATILE}

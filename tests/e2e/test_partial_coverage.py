"""Issue 15, coverage everywhere: a scan with failed shards is flagged partial in history and drift.

One region's endpoints really fail (a port where nothing listens, as in ``test_partial_failure``).
Figures: a full scan and then a partial one on the same day; before the fix the day's history point
was the partial one (fewer resources, another score) and moved the trend, and drift against the
full baseline reported the unread region's resources as removed.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.store import SnapshotRecord, Store

from .helpers import DEMO_REGIONS, call, gateway_settings
from .test_partial_failure import BROKEN_REGION, OneRegionUnreachable

pytestmark = pytest.mark.anyio
TYPES = ["dynamodb:table", "sqs:queue", "sns:topic"]  # each has resources in the broken region
SCOPE = {"resource_types": TYPES, "regions": DEMO_REGIONS}


def backdated_copy(store: Store, snapshot: SnapshotRecord, days: int) -> SnapshotRecord:
    """The snapshot stored again as if taken ``days`` earlier (snapshots are immutable: a new id)."""
    copy = replace(
        snapshot,
        snapshot_id=str(uuid.uuid4()),
        created_at=snapshot.created_at - timedelta(days=days),
    )
    states = [
        replace(state, snapshot_id=copy.snapshot_id)
        for state in store.iter_resource_states(snapshot.snapshot_id)
    ]
    store.save_snapshot(copy, states)
    return copy


async def test_partial_scans_are_flagged_in_history_and_drift(aws_env: DemoAws, tmp_path: Path) -> None:
    settings = gateway_settings(aws_env, tmp_path)
    runtime = build_runtime(settings, "memory")
    store = runtime.store
    try:
        async with Client(build_server(runtime)) as client:
            full = await call(client, "check_tag_compliance", **SCOPE, page_size=1)
            assert full["failed_shards"] == []
            full_snapshot = store.get_snapshot(full["snapshot_id"])
            assert full_snapshot is not None

            runtime.service.clients = OneRegionUnreachable(settings)
            drift = await call(client, "detect_tag_drift", **SCOPE, limit=1000)
            in_broken_region = sorted(
                aws_env.arns[r.key]
                for r in aws_env.estate.resources
                if r.region == BROKEN_REGION and r.resource_type in TYPES
            )
            assert in_broken_region
            # Figure: resources reported removed because their region could not be read: 0 (they were
            # all "removed" before); every one of them is listed as unobserved in the current scan.
            assert drift["baseline_snapshot_id"] == full["snapshot_id"]
            assert drift["total_resources_removed"] == 0 and drift["resources_removed"] == []
            assert drift["total_resources_unobserved"] == len(in_broken_region)
            assert sorted(r["resource_arn"] for r in drift["resources_unobserved"]) == in_broken_region
            assert {r["unobserved_in"] for r in drift["resources_unobserved"]} == {"current"}
            assert drift["baseline_coverage"]["partial"] is False
            current = drift["current_coverage"]
            shards = len(DEMO_REGIONS) * len(TYPES)
            assert current == {
                "shards_total": shards,
                "shards_ok": shards - len(TYPES),
                "shards_failed": len(TYPES),
                "resources_unreadable": 0,
                "partial": True,
            }

            partial = await call(client, "check_tag_compliance", **SCOPE, force_refresh=True, page_size=1)
            assert partial["failed_shards"]
            partial_snapshot = store.get_snapshot(partial["snapshot_id"])
            assert partial_snapshot is not None
            # The partial scan's score differs: a point made of it would move the score change.
            assert partial["compliance_score"] != full["compliance_score"]
            assert partial["total_resources"] < full["total_resources"]

            backdated_copy(store, full_snapshot, days=2)
            backdated_copy(store, partial_snapshot, days=1)
            history = await call(client, "get_violation_history", days_back=7, **SCOPE)

        points = history["points"]
        assert [p["coverage"]["partial"] for p in points] == [False, True, False]
        # Today: a full scan, then two partial ones (drift, check). The point is the full one.
        today = points[-1]
        assert today["snapshots"] == 3
        assert (today["total_resources"], today["compliance_score"]) == (
            full["total_resources"],
            full["compliance_score"],
        )
        assert points[1]["total_resources"] == partial["total_resources"]  # shown, flagged
        assert points[1]["coverage"]["shards_failed"] == len(TYPES)
        # Figure: trend over full points only: "stable", score change exactly 0 (with today's point
        # made of the latest, partial, snapshot it was the difference asserted above).
        assert (history["trend"], history["score_change"], history["partial_points"]) == ("stable", 0.0, 1)
        assert "partial" in history["note"]
    finally:
        runtime.close()

"""Cost Explorer economy: requests per ``get_cost_attribution_gap`` question, counted by the demo cost
model (the Cost Explorer stand-in in the moto server's process counts every request it serves).

Target: at most one request per required tag in scope plus one (``ListCostAllocationTags``), and
zero for the same question again within the cache TTL.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from .common import POLICY_PATH, figure


def run(demo: Any | None = None) -> dict[str, Any]:
    from services.demo.aws import start_demo_aws
    from services.mcp_gateway.runtime import build_runtime
    from tagcompliance.settings import Settings

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    saved = {name: os.environ.get(name) for name in demo.environment}
    os.environ.update(demo.environment)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                AWS_ENDPOINT_URL=demo.endpoint_url,
                AWS_REGION=demo.regions[0],
                SCAN_REGIONS=",".join(demo.regions),
                POLICY_PATH=str(POLICY_PATH),
                DATA_DIR=data_dir,
                LOCAL_SCHEDULER_INTERVAL_SECONDS=0,
            )
            runtime = build_runtime(settings, "bench")
            try:
                service = runtime.service
                policy = service.loaded_policy.policy
                required = {tag.name for tag in policy.required_tags}
                model = demo.cost_model
                model.reset_request_counts()
                first = service.cost_gap(resource_types=["all"])
                first_counts = model.request_counts()
                model.reset_request_counts()
                again = service.cost_gap(resource_types=["all"])
                again_counts = model.request_counts()
            finally:
                runtime.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if own:
            demo.stop()
    page_size = demo.cost_model.page_size
    first_total = sum(first_counts.values())
    again_total = sum(again_counts.values())
    limit = len(required) + 1
    return {
        "name": "6. Cost Explorer economy",
        "figures": [
            figure(
                f"Cost Explorer requests for one gap question ({len(required)} required tags, all types)",
                first_total,
                "requests",
                op="<=",
                target=limit,
                reason=f"requests by operation: {first_counts}. Beyond one GetCostAndUsage per tag the "
                f"rest are NextPageToken pages: the Cost Explorer model serves {page_size} groups a "
                "page, and a MONTHLY question over the default 30-day window usually spans two calendar "
                "months, so each tag's answer holds 2 periods x services x tag values groups",
                to_close="fewer groups per answer: one period (a window inside one calendar month, or one "
                "request per month cached separately), or split services only when the answer would page; "
                "GetCostAndUsage has no page-size parameter, so pages are the only lever",
            ),
            figure(
                "Cost Explorer requests for the same question again within the cache TTL",
                again_total,
                "requests",
                op="<=",
                target=0,
                reason=f"requests by operation: {again_counts}; cached={again.cached}",
                to_close="serve the repeated question from the cache (ComplianceService.cost_gap)",
            ),
            figure("cost of the first question at $0.01 a request", round(first_total * 0.01, 2), "USD"),
        ],
        "details": {
            "first": first_counts,
            "again": again_counts,
            "first_reported_requests": first.cost_explorer_requests,
            "again_cached": again.cached,
            "required_tags": sorted(required),
        },
    }

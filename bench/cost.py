"""Cost Explorer economy: requests per ``get_cost_attribution_gap`` question, counted by the demo cost
model (the Cost Explorer stand-in in the moto server's process counts every request it serves).

Target: at most one request per required tag in scope plus one (``ListCostAllocationTags``), and
zero for the same question again within the cache TTL.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Any

from .common import POLICY_PATH, environment, figure


def _groups_per_tag(service: Any, answer: Any) -> dict[str, int]:
    """Per tag: the distinct (service, tag value) groups its answer holds, i.e. why its
    GetCostAndUsage answer takes the pages it does (asked again here, outside the counts)."""
    from tagcompliance.cost.explorer import cost_explorer, request_filter, tag_stream

    ce = cost_explorer(service.clients)
    start, end = answer.period.start, answer.period.end
    services = [entry.service for entry in answer.services]
    return {
        gap.tag_key: len(tag_stream(ce, gap.tag_key, start, end, request_filter(services, None)).spend)
        for gap in answer.by_tag
    }


def run(demo: Any | None = None) -> dict[str, Any]:
    from services.demo.aws import start_demo_aws
    from tag_compliance_mcp.runtime import build_runtime
    from tagcompliance.settings import Settings

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    try:
        with environment(demo.environment), tempfile.TemporaryDirectory() as data_dir:
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
                groups = _groups_per_tag(service, first)
            finally:
                runtime.close()
    finally:
        if own:
            demo.stop()
    page_size = demo.cost_model.page_size
    first_total = sum(first_counts.values())
    again_total = sum(again_counts.values())
    limit = len(required) + 1
    start, end = first.period.start, first.period.end
    answer_days = (end - start).days
    last_day = end - timedelta(days=1)
    periods = (last_day.year - start.year) * 12 + last_day.month - start.month + 1
    return {
        "name": "6. Cost Explorer economy",
        "figures": [
            figure(
                f"Cost Explorer requests for one gap question ({len(required)} required tags, all types)",
                first_total,
                "requests",
                op="<=",
                target=limit,
                reason=f"requests by operation: {first_counts}. The answer needs, per tag, the spend of "
                "every (service, tag value) pair (the per-service gap and the spend per invalid value), "
                "so each tag is one GetCostAndUsage grouped by SERVICE and TAG; the answers hold "
                f"{groups} distinct (service, value) groups per period, times {periods} monthly "
                f"period(s) in the {answer_days}-day window, and the Cost Explorer stand-in serves "
                f"{page_size} groups a page: the extra requests are NextPageToken pages of those answers, "
                "and GetCostAndUsage has no page-size parameter to avoid them",
                to_close="a default window inside one calendar month (one MONTHLY period instead of "
                "two halves the groups), or dropping the per-service split of each tag's gap (grouping "
                "by TAG alone); both change the answer, so neither was done here",
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
            "groups_per_tag": groups,
        },
    }

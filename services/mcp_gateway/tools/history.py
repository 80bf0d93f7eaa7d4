"""Change over time and its cost: the compliance trend, tag drift between snapshots, and the spend
that cannot be attributed."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.runtime import run_tool
from tag_compliance_mcp.safety import SafetyResponse
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.cost import CostAttributionGap
from tagcompliance.drift import DriftResult
from tagcompliance.models import HistoryResult
from tagcompliance.requests import CostGapRequest, DriftRequest, HistoryRequest


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    @request_tool(mcp, CostGapRequest)
    async def get_cost_attribution_gap(
        ctx: Context, request: CostGapRequest
    ) -> CostAttributionGap | SafetyResponse:
        """Spend that cannot be attributed: per required tag, Cost Explorer spend without
        the tag or with an invalid value, per service and account, and the headline gap with its method.
        Cost Explorer: $0.01 a request (one per tag); cached."""
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: service.cost_gap(**request.parameters(), progress=progress),
            scope=gate.scope(request, (request.start_date, request.end_date), period_matters=True),
            cost_explorer=gate.cost_estimate(
                request.resource_types, request.tag_keys, request.include_resource_estimates, request.accounts
            ),
        )

    @request_tool(mcp, HistoryRequest)
    async def get_violation_history(ctx: Context, request: HistoryRequest) -> HistoryResult:
        """Compliance trend from stored snapshots of the same scope: score and counts per day,
        week or month, and whether it improves. Calls no AWS API."""
        return await run_tool(ctx, lambda progress: service.violation_history(**request.parameters()))

    @request_tool(mcp, DriftRequest)
    async def detect_tag_drift(ctx: Context, request: DriftRequest) -> DriftResult | SafetyResponse:
        """Tags added, removed or changed since an earlier snapshot of the same scope (a fresh scan
        against it). critical: a required tag removed or made invalid; warning: its value changed;
        info: other tags. Who and when: CloudTrail, if available."""
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: service.tag_drift(**request.parameters(), progress=progress),
            scope=gate.scope(request),
        )

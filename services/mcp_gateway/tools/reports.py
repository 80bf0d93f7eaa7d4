"""Reports and exports of the estate's violations: the executive report and the CSV export."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from services.mcp_gateway.safety import SafetyResponse
from services.mcp_gateway.sdk_adapter import request_tool
from services.mcp_gateway.tools.common import ToolDeps, guarded
from tagcompliance.models import ExportResult, ReportResult
from tagcompliance.requests import ExportRequest, ReportRequest


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    @request_tool(mcp, ReportRequest)
    async def generate_compliance_report(
        ctx: Context, request: ReportRequest
    ) -> ReportResult | SafetyResponse:
        """An executive compliance report (score, coverage, worst types and regions, top violations,
        recommendations). Small reports come inline; large ones are written to a file whose path is
        returned."""
        return await guarded(
            deps,
            ctx,
            "generate_compliance_report",
            request,
            lambda progress: service.compliance_report(**request.parameters(), progress=progress),
            scope=gate.scope(request.resource_types, request.regions),
        )

    @request_tool(mcp, ExportRequest)
    async def export_violations_csv(ctx: Context, request: ExportRequest) -> ExportResult | SafetyResponse:
        """Violations as CSV for spreadsheets (RFC 4180; cells that a spreadsheet would run as formulas are
        neutralised). Pages with next_cursor, or writes all rows to a file with to_file."""
        chosen = request.chosen_filters
        return await guarded(
            deps,
            ctx,
            "export_violations_csv",
            request,
            lambda progress: service.export_violations(
                **chosen.model_dump(),
                columns=request.columns,
                limit=request.limit,
                cursor=request.cursor,
                to_file=request.to_file,
                force_refresh=request.force_refresh,
                progress=progress,
            ),
            scope=gate.scope(chosen.resource_types, chosen.regions),
        )

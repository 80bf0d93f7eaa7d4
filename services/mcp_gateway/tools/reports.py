"""Reports and exports of the estate's violations: the executive report and the CSV export."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.safety import SafetyResponse
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.models import ExportResult, ReportResult
from tagcompliance.requests import ExportRequest, ReportRequest


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    @request_tool(mcp, ReportRequest)
    async def generate_compliance_report(
        ctx: Context, request: ReportRequest
    ) -> ReportResult | SafetyResponse:
        """An executive report (score, coverage, worst accounts, types and regions, top issues,
        recommendations) as markdown, json or csv; large ones are files."""
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: service.compliance_report(**request.parameters(), progress=progress),
            scope=gate.scope(request),
        )

    @request_tool(mcp, ExportRequest)
    async def export_violations_csv(ctx: Context, request: ExportRequest) -> ExportResult | SafetyResponse:
        """Violations as CSV (RFC 4180; formula cells neutralised): pages with cursor, or to_file
        writes every row."""
        chosen = request.chosen_filters
        return await guarded(
            deps,
            ctx,
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
            scope=gate.scope(chosen),
        )

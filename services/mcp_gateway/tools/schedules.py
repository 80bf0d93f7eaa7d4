"""Recurring compliance audits: create, list, update, pause, resume and delete schedules."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.safety import SafetyResponse, current_caller
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.models import ScheduleAction
from tagcompliance.requests import ScheduleRequest
from tagcompliance.schedules import ScheduleSpec


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    @request_tool(mcp, ScheduleRequest)
    async def schedule_compliance_audit(
        ctx: Context, request: ScheduleRequest
    ) -> ScheduleAction | SafetyResponse:
        """Manage recurring audits (daily, weekly, monthly or cron, at a local time in an
        IANA zone; DST-correct). Results go to history and to the recipients."""
        action, schedule_id, fields = request.action, request.schedule_id, request.schedule_fields()
        writes = {
            "create": "creates a recurring audit that scans on every run",
            "update": f"changes schedule {schedule_id}",
            "delete": f"deletes schedule {schedule_id}",
        }.get(action)
        # created_by: the caller the call log names (the token's user), not a fixed placeholder
        caller = current_caller(deps.runtime)

        def precheck() -> None:  # refuse invalid changes before committing to them
            if action == "create" and not schedule_id:
                ScheduleSpec.model_validate(dict(fields))
            elif action in ("update", "delete") and schedule_id:
                service.schedules.get(schedule_id)  # refuses an unknown schedule_id

        await gate.require_call_log(ctx, writes, bool(getattr(request, "dry_run", False)))
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: service.manage_schedule(action, schedule_id, fields, caller.user_id),
            fixed_estimate=gate.schedule_run_estimate(request.resource_types, request.regions)
            if request.scans()
            else None,
            writes=writes,
            caller=caller,
            precheck=precheck,
        )

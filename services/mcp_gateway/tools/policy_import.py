"""Importing an AWS Organizations tag policy as this server's tagging policy."""

from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.safety import SafetyResponse
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.policy_import import (
    ImportResult,
    OrganizationsTagPolicySource,
    import_tag_policy,
    resolve_output_path,
)
from tagcompliance.requests import ImportPolicyRequest


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    gate = deps.gate

    @request_tool(mcp, ImportPolicyRequest)
    async def import_aws_tag_policy(
        ctx: Context, request: ImportPolicyRequest
    ) -> ImportResult | SafetyResponse:
        """Convert an AWS Organizations tag policy to this server's format
        (report_required_tag_for: required; enforced_for: enforcement; the rest in warnings). Without
        policy_id: lists the policies. Saving replaces the active policy at once."""
        saved_as = request.output_path or "the default file"
        policies_dir = Path(deps.runtime.settings.policy_path).resolve().parent

        def check_output_path() -> None:
            resolve_output_path(request.output_path, policies_dir)  # refuses a path outside the directory

        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: import_tag_policy(
                OrganizationsTagPolicySource(deps.service.clients),
                **request.parameters(),
                policies_dir=policies_dir,
            ),
            fixed_estimate=gate.organizations_estimate(request.policy_id, request.use_effective),
            writes=f"saves the converted policy as {saved_as} (policies directory)"
            if request.save_to_file
            else None,
            # A path outside the policies directory is refused before any commit.
            precheck=check_output_path if request.save_to_file else None,
        )

"""Remediation as code: Cloud Custodian policies and OpenOps workflows generated from the policy."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.runtime import run_tool
from tag_compliance_mcp.safety import SafetyResponse
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.remediation.custodian import CustodianPolicies, generate_custodian_policies
from tagcompliance.remediation.openops import OpenOpsWorkflow
from tagcompliance.remediation.openops import generate_openops_workflow as build_openops_workflow
from tagcompliance.requests import CustodianRequest, OpenOpsRequest


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    @request_tool(mcp, CustodianRequest)
    async def generate_custodian_policy(ctx: Context, request: CustodianRequest) -> CustodianPolicies:
        """Cloud Custodian YAML (one policy per type) selecting resources that violate the
        policy. dry_run (default) only selects; otherwise placeholders go only where a tag is absent and
        invalid values get mark-for-op."""
        return await run_tool(
            ctx,
            lambda progress: generate_custodian_policies(
                service.loaded_policy.policy, **request.parameters()
            ),
        )

    @request_tool(mcp, OpenOpsRequest)
    async def generate_openops_workflow(
        ctx: Context, request: OpenOpsRequest
    ) -> OpenOpsWorkflow | SafetyResponse:
        """An importable OpenOps workflow (JSON) that reports or remediates violations on a
        schedule, optionally only below a score. Steps use dryRun unless dry_run is false; auto_tag needs
        explicit policy-valid tag_values."""
        overwriting = request.overwrites_tags()
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: build_openops_workflow(service.loaded_policy.policy, request),
            tag_values=request.tag_values if overwriting else None,
            current_tags=gate.stored_tags(request.resource_arns or []) if overwriting else None,
        )

"""Compliance questions about the live estate: check, untagged, validate by ARN, suggestions, and
the policy in force."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.runtime import run_tool
from tag_compliance_mcp.safety import ResultT, SafetyResponse, scan_outcome
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps, guarded
from tagcompliance.models import ComplianceCheckResult, FindUntaggedResult, PolicyResult, ValidateResult
from tagcompliance.requests import (
    CheckComplianceRequest,
    FindUntaggedRequest,
    PolicyRequest,
    SuggestTagsRequest,
    ValidateTagsRequest,
)
from tagcompliance.suggest import TagSuggestions


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    service, gate = deps.service, deps.gate

    async def paged_scan(
        ctx: Context,
        request: CheckComplianceRequest | FindUntaggedRequest,
        query: Callable[..., ResultT],
    ) -> ResultT | SafetyResponse:
        """A scan answered one page at a time (``query`` takes the request's parameters and cursor)."""
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: query(**request.parameters(), cursor=request.cursor, progress=progress),
            scope=gate.scope(request),
            outcome=scan_outcome,
        )

    async def by_arn(
        ctx: Context,
        request: ValidateTagsRequest | SuggestTagsRequest,
        arns: list[str],
        query: Callable[..., ResultT],
    ) -> ResultT | SafetyResponse:
        """A look at named resources (``query`` takes the request's parameters); the estimate is fixed
        by the ARNs."""
        return await guarded(
            deps,
            ctx,
            request,
            lambda progress: query(**request.parameters(), progress=progress),
            fixed_estimate=gate.arn_estimate(arns, request.regions),
        )

    @request_tool(mcp, CheckComplianceRequest)
    async def check_tag_compliance(
        ctx: Context, request: CheckComplianceRequest
    ) -> ComplianceCheckResult | SafetyResponse:
        """Score resources against the tagging policy: counts by type, region and violation, top
        patterns, a page of violations. find_untagged_resources is narrower; validate_resource_tags takes
        ARNs. Checks are stored (history, drift)."""
        return await paged_scan(ctx, request, service.check_compliance)

    @request_tool(mcp, FindUntaggedRequest)
    async def find_untagged_resources(
        ctx: Context, request: FindUntaggedRequest
    ) -> FindUntaggedResult | SafetyResponse:
        """Resources missing required tags (an empty value counts as missing), never-tagged ones
        included, with the missing keys of each."""
        return await paged_scan(ctx, request, service.find_untagged)

    @request_tool(mcp, ValidateTagsRequest)
    async def validate_resource_tags(
        ctx: Context, request: ValidateTagsRequest
    ) -> ValidateResult | SafetyResponse:
        """Validate named resources (ARNs) against the policy. An ARN that does not exist is
        not_found, one whose tags could not be read not_scanned: neither is ever compliant."""
        return await by_arn(ctx, request, request.resource_arns, service.validate_resources)

    @request_tool(mcp, SuggestTagsRequest)
    async def suggest_tags(ctx: Context, request: SuggestTagsRequest) -> TagSuggestions | SafetyResponse:
        """Suggest policy-valid values for one resource's missing, wrong-cased or invalid required tags
        (from its name, siblings and account majorities), each with confidence and reasons."""
        return await by_arn(ctx, request, [request.resource_arn], service.suggest)

    @request_tool(mcp, PolicyRequest)
    async def get_tagging_policy(ctx: Context, request: PolicyRequest) -> PolicyResult:
        """The tagging policy in force: required tags (allowed values, format, types), optional and
        prohibited tags, and its source."""
        return await run_tool(ctx, lambda progress: service.policy_info())

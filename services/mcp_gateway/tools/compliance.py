"""Compliance questions about the live estate: check, untagged, validate by ARN, suggestions, and
the policy in force."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import Context, MCPServer

from services.mcp_gateway.runtime import run_tool
from services.mcp_gateway.safety import ResultT, SafetyResponse, scan_outcome
from services.mcp_gateway.sdk_adapter import request_tool
from services.mcp_gateway.tools.common import ToolDeps, guarded
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
        tool: str,
        request: CheckComplianceRequest | FindUntaggedRequest,
        query: Callable[..., ResultT],
    ) -> ResultT | SafetyResponse:
        """A scan answered one page at a time (``query`` takes the request's parameters and cursor)."""
        return await guarded(
            deps,
            ctx,
            tool,
            request,
            lambda progress: query(**request.parameters(), cursor=request.cursor, progress=progress),
            scope=gate.scope(request.resource_types, request.regions),
            outcome=scan_outcome,
        )

    async def by_arn(
        ctx: Context,
        tool: str,
        request: ValidateTagsRequest | SuggestTagsRequest,
        arns: list[str],
        query: Callable[..., ResultT],
    ) -> ResultT | SafetyResponse:
        """A look at named resources (``query`` takes the request's parameters); the estimate is fixed
        by the ARNs."""
        return await guarded(
            deps,
            ctx,
            tool,
            request,
            lambda progress: query(**request.parameters(), progress=progress),
            fixed_estimate=gate.arn_estimate(arns, request.regions),
        )

    @request_tool(mcp, CheckComplianceRequest)
    async def check_tag_compliance(
        ctx: Context, request: CheckComplianceRequest
    ) -> ComplianceCheckResult | SafetyResponse:
        """Check resources against the tagging policy: compliance score (compliant / scanned), counts by
        type, region and violation type, and one page of violations (missing_tag, wrong_key_case,
        invalid_value, invalid_format, prohibited_tag). Every check is stored as a snapshot for history."""
        return await paged_scan(ctx, "check_tag_compliance", request, service.check_compliance)

    @request_tool(mcp, FindUntaggedRequest)
    async def find_untagged_resources(
        ctx: Context, request: FindUntaggedRequest
    ) -> FindUntaggedResult | SafetyResponse:
        """Find resources missing one or more required tags (empty values count as missing), including
        resources that were never tagged at all, with the missing keys for each."""
        return await paged_scan(ctx, "find_untagged_resources", request, service.find_untagged)

    @request_tool(mcp, ValidateTagsRequest)
    async def validate_resource_tags(
        ctx: Context, request: ValidateTagsRequest
    ) -> ValidateResult | SafetyResponse:
        """Validate specific resources by ARN against the policy. An ARN that does not exist is reported
        as not_found, one whose tags could not be read as not_scanned; neither is ever called compliant."""
        return await by_arn(
            ctx, "validate_resource_tags", request, request.resource_arns, service.validate_resources
        )

    @request_tool(mcp, SuggestTagsRequest)
    async def suggest_tags(ctx: Context, request: SuggestTagsRequest) -> TagSuggestions | SafetyResponse:
        """Suggest values for a resource's missing, wrong-cased or invalid required tags, from its name,
        its siblings (same VPC, CloudFormation stack or name prefix) and account-wide majorities. Each
        suggestion has a confidence and its reasons; only values the policy allows are suggested. Confirm
        with the user before applying any."""
        return await by_arn(ctx, "suggest_tags", request, [request.resource_arn], service.suggest)

    @request_tool(mcp, PolicyRequest)
    async def get_tagging_policy(ctx: Context, request: PolicyRequest) -> PolicyResult:
        """The tagging policy in force: required tags (allowed values, format, which types), optional and
        prohibited tags, and where it was loaded from."""
        return await run_tool(ctx, lambda progress: service.policy_info())

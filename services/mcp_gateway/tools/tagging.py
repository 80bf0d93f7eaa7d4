"""Tag remediation that writes: ``apply_tag_remediation`` and ``undo_tag_remediation``.

Thin: the plan, journal, writes and undo are ``tagcompliance.tagging``. Each call plans first (reading
the resources' tags now), then goes through the safety gate with the plan's digest among the bound
parameters and its exact diff in the intent commit: only a confirmed call, whose plan is the
committed one, writes. Needs the ``tag:write`` scope (``auth/scopes.py``) and REMEDIATION_ENABLED.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from tag_compliance_mcp.safety import SafetyRequest, SafetyResponse, current_caller
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps
from tagcompliance.requests import ApplyRemediationRequest, ToolRequest, UndoRemediationRequest
from tagcompliance.safety.estimates import ScopeEstimate, TypeRegionCount, estimate_seconds
from tagcompliance.safety.tokens import Caller
from tagcompliance.tagging.models import RemediationResult
from tagcompliance.tagging.plan import ChangePlan
from tagcompliance.tagging.service import TagRemediation


def _estimate(plan: ChangePlan) -> ScopeEstimate:
    writing = [change for change in plan.changes if change.writes]
    pairs: dict[tuple[str, str], int] = {}
    for change in writing:
        pairs[(change.resource_type, change.region)] = pairs.get((change.resource_type, change.region), 0) + 1
    requests = plan.write_requests()
    return ScopeEstimate(
        resource_types=sorted({t for t, _ in pairs}),
        regions=sorted({r for _, r in pairs}),
        resources=len(writing),
        api_calls=requests,
        seconds=estimate_seconds(requests, 1),
        by_type_region=[
            TypeRegionCount(resource_type=t, region=r, resources=n) for (t, r), n in sorted(pairs.items())
        ],
        unknown_pairs=0,
        complete=True,
        basis="the change set itself: resources whose tags change, write requests of 20 ARNs",
    )


def _outcome(result: RemediationResult) -> dict[str, Any]:
    return {
        "remediation_id": result.remediation_id,
        "applied": result.applied,
        "failed": result.failed,
        "skipped": result.skipped,
        "unchanged": result.unchanged,
        "write_requests": result.write_requests,
    }


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    remediation = TagRemediation(deps.service)
    gate = deps.gate

    async def run(
        ctx: Context,
        request: ToolRequest,
        plan_of: Callable[[], tuple[ChangePlan, bool]],
        dry_run: bool,
        token: str | None,
    ) -> RemediationResult | SafetyResponse:
        caller: Caller = current_caller(deps.runtime)  # read here: the token lives in this task's context
        planned: dict[str, Any] = {}

        def safety_request() -> SafetyRequest:
            plan, recovered = plan_of()
            planned.update(plan=plan, recovered=recovered)
            preview = plan.preview(deps.service.loaded_policy.policy)
            return SafetyRequest(
                tool=request.tool,
                parameters={**request.parameters(), "change_set_digest": preview.change_set_digest},
                caller=caller,
                fixed_estimate=_estimate(plan),
                writes=f"tags of {preview.to_write} resource(s) in AWS "
                f"({preview.write_requests} write requests)",
                details=preview.model_dump(mode="json"),
                always_commit=True,  # a tag write is confirmed even where SAFETY_ENABLED=false
                dry_run=dry_run,
                confirmation_token=token,
            )

        return await gate.run(
            ctx,
            safety_request,
            lambda progress: remediation.execute(planned["plan"], caller, planned["recovered"]),
            _outcome,
        )

    @request_tool(mcp, ApplyRemediationRequest)
    async def apply_tag_remediation(
        ctx: Context, request: ApplyRemediationRequest
    ) -> RemediationResult | SafetyResponse:
        """Fix tags in AWS, in any account: set/remove tags on up to 1,000 resources (changes), or apply
        suggest_tags' values >= min_confidence (from_suggestions). Always an intent_commit first with
        each resource's tags before -> after, bound by its token. Needs tag:write and
        REMEDIATION_ENABLED=true."""
        return await run(
            ctx,
            request,
            lambda: (remediation.plan_apply(request), False),
            request.dry_run,
            request.confirmation_token,
        )

    @request_tool(mcp, UndoRemediationRequest)
    async def undo_tag_remediation(
        ctx: Context, request: UndoRemediationRequest
    ) -> RemediationResult | SafetyResponse:
        """Take back a remediation: restore each resource's earlier tags exactly; one edited since is
        skipped unless force. Intent commit first."""
        return await run(
            ctx,
            request,
            lambda: remediation.plan_undo(request),
            request.dry_run,
            request.confirmation_token,
        )

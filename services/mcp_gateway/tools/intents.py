"""The admin tool ``get_intent_beliefs``: the intent belief log (what the server understood each
request to mean, and whether the outcome matched) and the regret rules learned from corrections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from tag_compliance_mcp.runtime import run_tool
from tag_compliance_mcp.sdk_adapter import request_tool
from tag_compliance_mcp.tools.common import ToolDeps
from tagcompliance.inventory import ProgressCallback
from tagcompliance.requests import BeliefLogRequest


class BeliefOut(BaseModel):
    belief_id: str
    created_at: datetime
    user_id: str
    client_id: str | None
    tool_name: str
    stage: str
    understood: dict[str, Any]
    assumptions: list[str]
    alternatives: list[dict[str, Any]]
    estimate: dict[str, Any]
    warnings: list[dict[str, Any]]
    outcome: dict[str, Any] | None
    outcome_matched: bool | None
    outcome_notes: str | None
    resolved_at: datetime | None


class BeliefLogResult(BaseModel):
    organization: str
    beliefs: list[BeliefOut]
    mismatched: int = Field(description="Beliefs in this page whose outcome did not match the intent.")
    learned_rules: list[str] = Field(description="Regret rules raised earlier for this organization.")
    correction_counts: dict[str, int]


def register(mcp: MCPServer, deps: ToolDeps) -> None:
    runtime, gate = deps.runtime, deps.gate

    @request_tool(mcp, BeliefLogRequest)
    async def get_intent_beliefs(ctx: Context, request: BeliefLogRequest) -> BeliefLogResult:
        """(admin) The intent belief log: how each request was understood, assumptions,
        alternatives, whether the outcome matched; and regret rules learned from corrections."""

        def work(progress: ProgressCallback) -> BeliefLogResult:
            limit, only_mismatched = request.limit, request.only_mismatched
            organization = gate.policy.organization
            records = runtime.store.list_beliefs(
                organization,
                limit if not only_mismatched else 10_000,
                request.tool_name,
                request.user_id,
                request.stage,
            )
            if only_mismatched:
                records = [record for record in records if record.outcome_matched is False][:limit]
            beliefs = [
                BeliefOut(**{name: getattr(record, name) for name in BeliefOut.model_fields})
                for record in records
            ]
            return BeliefLogResult(
                organization=organization,
                beliefs=beliefs,
                mismatched=sum(1 for belief in beliefs if belief.outcome_matched is False),
                learned_rules=sorted(gate.engine.learner.learned_rules(gate.policy)),
                correction_counts=runtime.store.regret_correction_counts(organization),
            )

        return await run_tool(ctx, work)

"""What every tool module shares: ``ToolDeps`` (what the tools need) and ``guarded`` (one call of a
tool that scans, costs money or writes, through the safety gate)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context

from tag_compliance_mcp.runtime import Runtime, run_tool
from tag_compliance_mcp.safety import ResultT, SafetyGate, SafetyRequest, SafetyResponse, current_caller
from tagcompliance.errors import InvalidInputError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.requests import ToolRequest
from tagcompliance.safety.tokens import Caller
from tagcompliance.service import ComplianceService


@dataclass(frozen=True)
class ToolDeps:
    runtime: Runtime
    gate: SafetyGate

    @property
    def service(self) -> ComplianceService:
        return self.runtime.service


async def guarded(
    deps: ToolDeps,
    ctx: Context,
    request: ToolRequest,
    execute: Callable[[ProgressCallback], ResultT],
    *,
    caller: Caller | None = None,
    outcome: Callable[[ResultT], Mapping[str, Any]] | None = None,
    precheck: Callable[[], None] | None = None,
    **implied: Any,
) -> ResultT | SafetyResponse:
    """One call of a guarded tool: its ``SafetyRequest``, then ``gate.run`` (``execute`` only on proceed).

    The commit binds ``request.parameters()``; ``implied``: what the call implies, as ``SafetyRequest``
    fields (``scope``, ``fixed_estimate``, ``cost_explorer``, ``writes``, ``tag_values``,
    ``current_tags``); ``caller``: default ``current_caller``. A ``cursor`` pages a stored snapshot and
    calls no AWS API: that work runs unguarded (and refuses ``dry_run``)."""
    # dry_run is a safety argument unless the commit binds it (a workflow's own dry_run).
    dry_run = bool(getattr(request, "dry_run", False)) and "dry_run" in request.not_bound
    if getattr(request, "cursor", None):
        if dry_run:
            raise InvalidInputError(
                "dry_run estimates a new scan; a cursor pages a stored snapshot and calls no AWS API"
            )
        return await run_tool(ctx, execute)
    safety_request = SafetyRequest(
        tool=request.tool,
        parameters=request.parameters(),
        caller=caller if caller is not None else current_caller(deps.runtime),
        dry_run=dry_run,
        confirmation_token=getattr(request, "confirmation_token", None),
        **implied,
    )
    return await deps.gate.run(ctx, safety_request, execute, outcome, precheck)

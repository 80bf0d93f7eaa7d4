"""The MCP server: built from the tool modules in ``tools/`` (one per area, each ``register(mcp, deps)``),
behind the call log, scope and tracing middleware, with its health routes (``health.py``)."""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from tagcompliance import __version__
from tagcompliance.resources import RESOURCE_TYPE_IDS

from .auth.config import GatewayAuth, is_loopback
from .auth.scopes import ADMIN_SCOPE, ScopeMiddleware
from .health import LIVENESS_PATH, READINESS_PATH, Readiness
from .runtime import CallLogMiddleware, Runtime
from .safety import SafetyGate
from .sdk_adapter import allow_safety_responses, forbid_unknown_arguments
from .tools import (
    audits,
    compliance,
    history,
    intents,
    policy_import,
    remediation,
    reports,
    schedules,
    tagging,
)
from .tools.common import ToolDeps
from .tracing import ToolTraceMiddleware

INSTRUCTIONS = f"""\
Tag-compliance analyst for AWS. Checks resources against the organisation's tagging policy,
finds untagged resources, quantifies spend that cannot be attributed, suggests tag values and
tracks compliance over time.

Resource types are registry ids: {", ".join(RESOURCE_TYPE_IDS)} (or "all").
Results are summaries plus one page of details; pass next_cursor back for more.
Every figure states its scope (account, regions, types); failed_shards lists what could not be
read: never present a partial scan as complete. When the user's request leaves the resource
types, regions or time period unclear, ask them rather than guessing: such calls answer
clarification_needed with options and estimates. Large, costly or writing calls answer intent_commit:
show it to the user, and only after they confirm call again with its confirmation_token. dry_run
estimates a call without calling AWS.
"""

# A proxy in front adds one of these: the request's loopback peer then is the proxy, not the client.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")

TOOL_AREAS = (compliance, history, reports, remediation, tagging, policy_import, schedules, intents, audits)


def build_server(runtime: Runtime, auth: GatewayAuth | None = None) -> MCPServer:
    """The MCP server; with ``auth`` every HTTP request needs a bearer token with ``tag:read`` and
    each tool call the scope ``auth.scopes.required_scope`` names (audit first, so refusals are logged).
    Tools that scan, cost money or write go through the safety gate (``services/mcp_gateway/safety.py``)."""
    mcp = MCPServer(
        name="tag-compliance",
        version=__version__,
        instructions=INSTRUCTIONS,
        middleware=[ToolTraceMiddleware(), CallLogMiddleware(runtime), ScopeMiddleware()],
        token_verifier=auth.verifier if auth is not None else None,
        auth=auth.settings if auth is not None else None,
    )
    deps = ToolDeps(runtime=runtime, gate=SafetyGate(runtime))
    for area in TOOL_AREAS:
        area.register(mcp, deps)
    forbid_unknown_arguments(mcp)
    allow_safety_responses(mcp)

    readiness = Readiness(runtime)

    @mcp.custom_route(LIVENESS_PATH, methods=["GET"])
    async def live(request: Request) -> JSONResponse:
        """The process serves HTTP: no I/O (the container's health check)."""
        return JSONResponse({"status": "ok"})

    @mcp.custom_route(READINESS_PATH, methods=["GET"])
    async def ready(request: Request) -> JSONResponse:
        """The load balancer's check: 503 while the database does not answer."""
        report = await readiness.report()
        return JSONResponse(
            report if may_see_health_details(request) else {"status": report["status"]},
            status_code=503 if report["status"] == "unavailable" else 200,
        )

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> JSONResponse:
        """The status word for anyone; the configuration and the reasons for an operator."""
        report = await readiness.report()
        return JSONResponse(report if may_see_health_details(request) else {"status": report["status"]})

    return mcp


def may_see_health_details(request: Request) -> bool:
    """An ``admin`` bearer token, or a loopback client no proxy forwarded (an operator on the host)."""
    user = request.scope.get("user")
    if isinstance(user, AuthenticatedUser) and ADMIN_SCOPE in user.scopes:
        return True
    client = request.client
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    return client is not None and is_loopback(client.host) and not forwarded

"""The MCP server: built from the tool modules in ``tools/`` (one per area, each ``register(mcp, deps)``),
behind the call log, scope and tracing middleware, with its health routes (``health.py``)."""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from tagcompliance import __version__
from tagcompliance.resources import RESOURCE_TYPE_IDS

from . import files, prompts
from .auth.config import GatewayAuth, is_loopback
from .auth.scopes import ADMIN_SCOPE, ScopeMiddleware
from .health import LIVENESS_PATH, READINESS_PATH, Readiness
from .runtime import CallLogMiddleware, Runtime
from .safety import SafetyGate
from .sdk_adapter import allow_safety_responses, compact_schemas, forbid_unknown_arguments
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
Tag-compliance analyst for AWS: checks resources against the organisation's tagging policy, finds
untagged resources, quantifies spend that cannot be attributed, suggests tag values and tracks
compliance over time. What every tool shares:

- resource_types are registry ids: {", ".join(RESOURCE_TYPE_IDS)}; ["all"] means every one.
  regions are AWS region names; ["all"] means every enabled region (needs approval). accounts are
  12-digit AWS account ids; ["all"] means every configured account; omitted: this account, or asked
  when others are configured (from_suggestions: this account). by_account splits every figure per account.
- Scope: every figure states its account, regions and types. failed_shards lists what could not be
  read and why (error: AWS answered an error; deadline: not done within the call's deadline;
  cancelled; shutdown: the server stopped; circuit_open: the region was unreachable, not tried). It
  is missing from the figures: never present a partial scan as complete; a new call or an audit job
  reads the rest.
- Safety: a scan without resource_types or regions (or, for costs, a period) answers
  safety=clarification_needed with options and estimates: ask the user, do not guess. Large, costly or
  writing calls answer safety=intent_commit: show it to the user and only after they confirm call
  again with exactly the same arguments plus its confirmation_token. dry_run=true only estimates.
- Answers: the text leads with the decision (score, counts, failed shards, top patterns) and at most
  ten examples; detail="full" gives the whole answer as JSON, next_cursor the next page, and the
  structured content is always complete. Reports and exports written to files come as resource links
  (tagcompliance://files/...), readable with resources/read.
- A flag left out is off unless its schema shows default true. Tags are case-sensitive; suggested
  or remediating values are never applied without the user.
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
    compact_schemas(mcp)
    files.register(mcp, runtime)
    prompts.register(mcp)

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

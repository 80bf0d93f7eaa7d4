"""Which OAuth scope each tool call needs.

``tag:read`` covers every compliance tool (the HTTP layer already refuses a token without it, 403
``insufficient_scope``). ``admin`` is needed on top for calls that change state shared by everyone:

* ``import_aws_tag_policy`` with ``save_to_file=true`` (it can replace the active policy);
* ``schedule_compliance_audit`` with action ``create`` (the default), ``update``, ``pause``,
  ``resume`` or ``delete``; ``list`` and ``get`` only need ``tag:read``.

``tag:write`` is needed on top for the tools that write tags in AWS (``apply_tag_remediation`` and
``undo_tag_remediation``), granted like ``admin``, to ``AUTH_WRITE_USERS`` / ``AUTH_WRITE_GROUPS``.

A call without the scope gets a tool error naming the missing scope and is audited as refused.
Over stdio, or HTTP on loopback explicitly run without auth, there is no token and no check.

Required and advertised differ on purpose: every HTTP request *requires* ``tag:read``
(``config._auth_settings``), while the protected-resource metadata *advertises* ``ALL_SCOPES``
(``config.advertise_all_scopes``), because MCP clients request what discovery lists. The authorization
server then grants ``admin`` only to ``AUTH_ADMIN_USERS`` / ``AUTH_ADMIN_GROUPS`` and ``tag:read`` to
everyone else (``authserver.ScopePolicy``). A refused admin call is a tool error, not an HTTP 403
``insufficient_scope`` step-up challenge: the check runs inside the MCP session, after the HTTP
layer has answered.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, TextContent

from tagcompliance.observability import note

READ_SCOPE = "tag:read"
ADMIN_SCOPE = "admin"
WRITE_SCOPE = "tag:write"
ALL_SCOPES = [READ_SCOPE, ADMIN_SCOPE, WRITE_SCOPE]
WRITING_TOOLS = frozenset({"apply_tag_remediation", "undo_tag_remediation"})
SCHEDULE_READ_ACTIONS = frozenset({"list", "get"})


def required_scope(tool_name: str, arguments: dict[str, Any] | None) -> str:
    arguments = arguments or {}
    if tool_name in WRITING_TOOLS:  # dry runs too: only a writer plans writes
        return WRITE_SCOPE
    if tool_name == "get_intent_beliefs":  # the intent belief log shows every caller's requests
        return ADMIN_SCOPE
    if tool_name == "import_aws_tag_policy" and arguments.get("save_to_file") not in (None, False):
        return ADMIN_SCOPE
    if (
        tool_name == "schedule_compliance_audit"
        and arguments.get("action", "create") not in SCHEDULE_READ_ACTIONS
    ):
        return ADMIN_SCOPE
    return READ_SCOPE


class ScopeMiddleware:
    """Refuses a ``tools/call`` whose bearer token lacks the tool's scope (placed after the audit
    middleware, so refusals are audited too)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        token = get_access_token()
        if token is None:
            return await call_next(ctx)
        params = dict(ctx.params or {})
        arguments = params.get("arguments")
        scope = required_scope(
            str(params.get("name") or ""), arguments if isinstance(arguments, dict) else {}
        )
        if scope not in token.scopes:
            message = (
                f"insufficient_scope: this call needs the '{scope}' scope, which the access token lacks "
                f"(granted: {' '.join(token.scopes) or 'none'})"
            )
            note(refused="insufficient_scope")  # the call's log event says refused, not error
            return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
        return await call_next(ctx)

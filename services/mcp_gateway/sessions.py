"""The gateway's HTTP app: stateless streamable HTTP, so any gateway task answers any request.

The SDK's default streamable HTTP keeps each MCP session (its ``Mcp-Session-Id``) in one process's
memory: behind a load balancer that spreads requests over tasks, the second request of a session
reaches a task that never saw it and gets 404. An ALB can pin a client to a task only with a cookie,
and MCP clients need not keep cookies (the official Python client's httpx client does; a fetch-based
client does not), and a pinned session still dies with its task at every scale-in or deployment.
The gateway therefore runs the SDK's stateless mode (``stateless_http=True``): every POST is served
on its own, and everything a later call needs lives in the shared store (PostgreSQL: confirmation
tokens, intents, OAuth clients, codes and sessions, snapshots that cursors point into) or in Redis
(scan caches, audit jobs by scope, OAuth rate limits, the per-user limit below). It costs nothing
the gateway used: no tool sends the client a request (sampling, elicitation) and progress travels
on the POST's own event stream. See the README's architecture section.

Without sessions, what one user could hold to deny the others is calls in flight (each holds a
worker thread): each user (the token's issuer and subject, else its client) may have
``MCP_MAX_CALLS_IN_FLIGHT_PER_USER`` requests in flight across all tasks, counted in the cache
(Redis when configured, so every task sees the same count); one more gets 429 with ``Retry-After``.
Requests without a token (unauthenticated loopback development only) are not counted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    AuthorizationContext,
    authorization_context,
)
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tagcompliance.cache import Cache

from .auth.config import GatewayAuth, transport_security
from .auth.digests import token_hash
from .auth.logfilter import install_access_log_redaction
from .settings import GatewaySettings

logger = logging.getLogger("tagcompliance.gateway.sessions")
MCP_PATH = "/mcp"
# A count a killed task never released expires after this; no call lasts longer (clients give up
# after about 60 s; long scans run as audit jobs).
IN_FLIGHT_TTL_SECONDS = 300
RETRY_AFTER_SECONDS = 2


def user_key(requestor: AuthorizationContext | None) -> str | None:
    """Who a call belongs to: the token's issuer and subject, else its client; None without a token."""
    if requestor is None:
        return None
    who = requestor["subject"] or f"client:{requestor['client_id']}"
    return f"{requestor['issuer']} {who}"


class CallsInFlightLimit:
    """ASGI wrapper of the ``/mcp`` endpoint: at most ``per_user`` requests in flight per user."""

    def __init__(self, app: ASGIApp, cache: Cache, per_user: int) -> None:
        self.app = app
        self.cache = cache
        self.per_user = per_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        who = user_key(authorization_context(user)) if isinstance(user, AuthenticatedUser) else None
        if scope["type"] != "http" or who is None:
            await self.app(scope, receive, send)
            return
        key = f"mcp:in-flight:{token_hash(who)[:32]}"  # digested: the key holds no e-mail address
        count = await anyio.to_thread.run_sync(self.cache.increment, key, IN_FLIGHT_TTL_SECONDS)
        try:
            # None: Redis is down; calls go on rather than locking every user out.
            if count is not None and count > self.per_user:
                logger.warning("refused a call: %d calls of one user in flight", count - 1)
                await _too_many(self.per_user, scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.cache.decrement, key)


async def _too_many(per_user: int, scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32000,
                "message": f"more than {per_user} calls of this user in flight; retry when one has ended",
            },
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def limit_calls_in_flight(app: Starlette, cache: Cache, per_user: int) -> None:
    """Wrap the app's ``/mcp`` route (inside the authentication middleware, which names the user)."""
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == MCP_PATH:
            route.app = CallsInFlightLimit(route.app, cache, per_user)
            return
    raise RuntimeError(f"the streamable HTTP app has no {MCP_PATH} route")


def http_app(
    server: MCPServer,
    settings: GatewaySettings,
    host: str,
    auth: GatewayAuth | None,
    cache: Cache,
) -> Starlette:
    """The gateway's HTTP app: stateless streamable HTTP, the per-user limit on calls in flight
    (counted in ``cache``: the runtime's, Redis when configured), the OAuth routes when configured,
    and the access log's query strings redacted."""
    app: Any = server.streamable_http_app(
        host=host, transport_security=transport_security(settings), stateless_http=True
    )
    limit_calls_in_flight(app, cache, settings.mcp_max_calls_in_flight_per_user)
    if auth is not None:
        auth.install(app)
    install_access_log_redaction()
    return app

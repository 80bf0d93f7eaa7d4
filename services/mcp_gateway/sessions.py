"""MCP session limits: no single user can deny the others.

The SDK's ``StreamableHTTPSessionManager`` has one global cap (``max_sessions``: at the cap, every
new session gets 503) and an idle timeout. One token could therefore hold every slot. Here each
user (the token's issuer and subject, else its client) may hold ``MCP_MAX_SESSIONS_PER_USER``
sessions: opening one more closes that user's session idle the longest, or is refused (503) when
all of them are busy. At ``MCP_MAX_SESSIONS`` in all, the idle session of the user holding the most
goes first. Sessions without a token (unauthenticated loopback development only) have no user and
count against the total alone.

This hooks the manager's admission (``_admit_session``, called under its creation lock) and reads
each transport's idle state (``idle_scope``, ``_requests_in_flight``): SDK internals, pinned by
``tests/contract/test_mcp_session_internals.py``. A closed session is forgotten at once (its id
answers 404) and its idle scope cancelled, which ends it the way the SDK's own idle timeout does.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette

from .auth.config import GatewayAuth, transport_security
from .auth.logfilter import install_access_log_redaction
from .settings import GatewaySettings

logger = logging.getLogger("tagcompliance.gateway.sessions")
UserKey = tuple[str | None, str]


def user_key(requestor: AuthorizationContext | None) -> UserKey | None:
    """Who a session belongs to: the token's (issuer, subject), else its client; None without a token."""
    if requestor is None:
        return None
    if requestor["subject"]:
        return (requestor["issuer"], requestor["subject"])
    return (requestor["issuer"], f"client:{requestor['client_id']}")


class SessionLimits:
    """Per-user admission for one ``StreamableHTTPSessionManager``."""

    def __init__(self, manager: StreamableHTTPSessionManager, per_user: int, total: int) -> None:
        self.manager = manager
        self.per_user = per_user
        self.total = total
        self.owners: dict[str, UserKey | None] = {}
        self._admit_unlimited = manager._admit_session
        # The SDK's own check (503 at the cap) stays as a backstop: admit frees a slot before it runs.
        manager.max_sessions = total
        manager._admit_session = self.admit  # type: ignore[method-assign]

    def admit(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        """Runs under the manager's session-creation lock; None makes the SDK answer 503."""
        self._forget_ended()
        user = user_key(requestor)
        mine = [sid for sid, owner in self.owners.items() if owner == user]
        if user is not None and len(mine) >= self.per_user and not self._close_longest_idle(mine):
            logger.warning("refused a session for %s: its %d sessions are all busy", user[1], len(mine))
            return None
        total = len(self.manager._server_instances)
        if total >= self.total and not self._close_longest_idle(list(self.owners)):
            logger.warning("refused a session: all %d sessions are busy", total)
            return None
        transport = self._admit_unlimited(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            self.owners[transport.mcp_session_id] = user
        return transport

    def _forget_ended(self) -> None:
        live = self.manager._server_instances
        for session_id in [sid for sid in self.owners if sid not in live]:
            del self.owners[session_id]

    def _close_longest_idle(self, candidates: list[str]) -> bool:
        """Close the idle candidate of the user holding the most sessions (without a token: one
        user), idle the longest; False when every candidate is busy."""
        counts = Counter(self.owners.values())
        idle = [(sid, since) for sid in candidates if (since := self._idle_since(sid)) is not None]
        if not idle:
            return False
        session_id, _ = min(idle, key=lambda item: (-counts[self.owners[item[0]]], item[1]))
        transport = self.manager._server_instances.pop(session_id)
        self.manager._session_owners.pop(session_id, None)
        owner = self.owners.pop(session_id)
        assert transport.idle_scope is not None  # _idle_since checked it
        transport.idle_scope.cancel()  # ends serve_loop; the SDK then terminates the transport
        logger.info(
            "closed the idle session %s of %s to admit a new one",
            session_id[:8],
            owner[1] if owner else "an unauthenticated client",
        )
        return True

    def _idle_since(self, session_id: str) -> float | None:
        """When the session's last request ended (anyio clock), or None while one is in flight."""
        transport = self.manager._server_instances.get(session_id)
        scope: Any = getattr(transport, "idle_scope", None)
        if transport is None or scope is None or scope.cancel_called:
            return None
        if transport._requests_in_flight or math.isinf(scope.deadline):
            return None
        return float(scope.deadline) - float(transport._idle_timeout or 0)


def limit_sessions(server: MCPServer, settings: GatewaySettings) -> SessionLimits:
    """Install the per-user limits on the session manager ``server.streamable_http_app`` created."""
    return SessionLimits(
        server.session_manager, settings.mcp_max_sessions_per_user, settings.mcp_max_sessions
    )


def http_app(server: MCPServer, settings: GatewaySettings, host: str, auth: GatewayAuth | None) -> Starlette:
    """The gateway's HTTP app: streamable HTTP with the session limits and idle timeout, the OAuth
    routes when configured, and the access log's query strings redacted."""
    app = server.streamable_http_app(
        host=host,
        transport_security=transport_security(settings),
        session_idle_timeout=settings.mcp_session_idle_seconds,
    )
    limit_sessions(server, settings)
    if auth is not None:
        auth.install(app)
    install_access_log_redaction()
    return app

"""The mcp SDK internals ``services/mcp_gateway/sessions.py`` relies on. If an SDK upgrade renames or
changes them, this fails before the session limits silently stop limiting.

Relied on: ``StreamableHTTPSessionManager._admit_session(requestor)`` decides admission (None -> 503)
and registers the transport in ``_server_instances`` / ``_session_owners``; a transport's
``idle_scope`` (an anyio CancelScope whose deadline is the end of its last request plus
``_idle_timeout``) and ``_requests_in_flight``; cancelling ``idle_scope`` ends the session and
terminates its transport."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable

import httpx2 as httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from services.mcp_gateway.sessions import SessionLimits
from tests.auth.conftest import ServerThread, free_port
from tests.security.conftest import ACCEPT, INITIALIZE

HEADERS = {"Accept": ACCEPT}


def wait_until(condition: Callable[[], bool], failure: str) -> None:
    """The server thread finishes a request just after its answer reaches the client."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


def test_admission_hook_signature_and_call_site() -> None:
    assert list(inspect.signature(StreamableHTTPSessionManager._admit_session).parameters) == [
        "self",
        "requestor",
    ]
    source = inspect.getsource(StreamableHTTPSessionManager._handle_stateful_request)
    assert "async with self._session_creation_lock:" in source
    assert "self._admit_session(requestor)" in source and "if http_transport is None:" in source
    init = inspect.getsource(StreamableHTTPServerTransport.__init__)
    for attribute in ("self._idle_timeout", "self._requests_in_flight", "self.idle_scope"):
        assert attribute in init, attribute


def test_idle_state_and_closing_through_the_idle_scope() -> None:
    server = MCPServer(name="contract")
    app = server.streamable_http_app(host="127.0.0.1", session_idle_timeout=600)
    manager = server.session_manager
    limits = SessionLimits(manager, per_user=5, total=2)
    port = free_port()
    with ServerThread(app, port), httpx.Client(timeout=10) as http:
        url = f"http://127.0.0.1:{port}/mcp"
        first = http.post(url, json=INITIALIZE, headers=HEADERS).headers["mcp-session-id"]
        transport = manager._server_instances[first]
        assert manager._session_owners.get(first) is None  # no token: no owner recorded by the SDK
        wait_until(lambda: transport._requests_in_flight == 0, "the opening request never left the count")
        assert transport._idle_timeout == 600
        assert transport.idle_scope is not None and not math.isinf(transport.idle_scope.deadline)
        assert limits.owners == {first: None}
        http.post(url, json=INITIALIZE, headers=HEADERS)
        third = http.post(url, json=INITIALIZE, headers=HEADERS).headers["mcp-session-id"]
        # At the total of 2 the longest idle (the first) was closed: forgotten, then terminated.
        assert first not in manager._server_instances and third in manager._server_instances
        wait_until(lambda: transport.is_terminated, "cancelling idle_scope did not end the session")
        assert manager.max_sessions == 2  # the SDK's own 503 cap stays, as a backstop

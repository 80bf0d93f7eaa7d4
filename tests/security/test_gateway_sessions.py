"""Issue 13, attack 3, in the stateless gateway (issue 16): one user's token opened 10,000 MCP
sessions and the next user got 503. The gateway now keeps no session between requests (any task
answers any call), so what one user can hold is calls in flight: ``MCP_MAX_CALLS_IN_FLIGHT_PER_USER``
of them (3 in this stack); one more is refused with 429 and only for that user."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tests.auth.conftest import AuthStack, connect

from .conftest import INITIALIZE, user_token
from .inflight import PING, calls_held_in_flight, headers

pytestmark = pytest.mark.anyio


async def test_a_user_at_the_cap_is_refused_and_only_that_user(capped_stack: AuthStack) -> None:
    mallory, bob = (
        user_token(capped_stack, "mallory@example.com"),
        user_token(capped_stack, "bob@example.com"),
    )
    async with httpx.AsyncClient(timeout=20) as http:
        async with calls_held_in_flight(http, capped_stack.mcp_url, mallory, 3) as held:
            refused = await http.post(capped_stack.mcp_url, json=PING, headers=headers(mallory))
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "2"
            assert "calls of this user in flight" in refused.json()["error"]["message"]
            # Another user is not locked out, and works normally through the official client.
            async with connect(capped_stack.mcp_url, token=bob) as client:
                policy = await client.call_tool("get_tagging_policy", {})
                assert not policy.is_error, policy.content
        assert held == [200, 200, 200]
        # The held calls ended: their slots are free again.
        again = await http.post(capped_stack.mcp_url, json=PING, headers=headers(mallory))
        assert again.status_code == 200, again.text


async def test_no_session_is_kept_between_requests(capped_stack: AuthStack) -> None:
    """Stateless: initialize opens no session, and a later request needs none (any task can serve it)."""
    carol = user_token(capped_stack, "carol@example.com")
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(capped_stack.mcp_url, json=INITIALIZE, headers=headers(carol))
        assert opened.status_code == 200, opened.text
        assert "mcp-session-id" not in opened.headers
        listed = await http.post(
            capped_stack.mcp_url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers=headers(carol),
        )
        assert listed.status_code == 200 and "check_tag_compliance" in listed.text

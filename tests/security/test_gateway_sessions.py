"""Issue 13, attack 3: one user's token opened 10,000 MCP sessions and the next user got 503 for the
idle timeout. Each user now has a cap (the oldest idle session closes), idle sessions expire after
``MCP_SESSION_IDLE_SECONDS``, and the gateway's total stays bounded."""

from __future__ import annotations

import anyio
import httpx2 as httpx
import pytest

from tests.auth.conftest import AuthStack, connect

from .conftest import ACCEPT, INITIALIZE, PROTOCOL_VERSION, user_token

pytestmark = pytest.mark.anyio


async def open_session(http: httpx.AsyncClient, stack: AuthStack, token: str) -> str:
    response = await http.post(
        stack.mcp_url, json=INITIALIZE, headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    )
    assert response.status_code == 200, (response.status_code, response.text)
    return response.headers["mcp-session-id"]


async def session_status(http: httpx.AsyncClient, stack: AuthStack, token: str, session_id: str) -> int:
    """200 while the session lives, 404 once the gateway has closed it."""
    response = await http.post(
        stack.mcp_url,
        json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": ACCEPT,
            "mcp-session-id": session_id,
            "mcp-protocol-version": PROTOCOL_VERSION,
        },
    )
    return response.status_code


async def test_one_user_flooding_sessions_keeps_only_its_cap_and_others_get_in(
    capped_stack: AuthStack,
) -> None:
    mallory, bob = (
        user_token(capped_stack, "mallory@example.com"),
        user_token(capped_stack, "bob@example.com"),
    )
    async with httpx.AsyncClient(timeout=10) as http:
        flood = [await open_session(http, capped_stack, mallory) for _ in range(40)]
        statuses = [await session_status(http, capped_stack, mallory, sid) for sid in flood]
    # Memory stays bounded: of 40 sessions opened, the cap (3, the newest) are alive.
    assert statuses.count(200) == 3, statuses
    assert statuses[-3:] == [200, 200, 200] and set(statuses[:-3]) == {404}
    # The next user is not locked out, and works normally.
    async with connect(capped_stack.mcp_url, token=bob) as client:
        policy = await client.call_tool("get_tagging_policy", {})
        assert not policy.is_error, policy.content


async def test_the_oldest_idle_session_of_the_user_is_the_one_closed(capped_stack: AuthStack) -> None:
    carol = user_token(capped_stack, "carol@example.com")
    async with httpx.AsyncClient(timeout=10) as http:
        first, second, third = [await open_session(http, capped_stack, carol) for _ in range(3)]
        await anyio.sleep(0.05)
        assert (
            await session_status(http, capped_stack, carol, first) == 200
        )  # used again: not the oldest idle
        fourth = await open_session(http, capped_stack, carol)
        assert await session_status(http, capped_stack, carol, second) == 404
        for alive in (first, third, fourth):
            assert await session_status(http, capped_stack, carol, alive) == 200


async def test_many_users_cannot_fill_the_gateway_for_a_newcomer(capped_stack: AuthStack) -> None:
    """More users than MCP_MAX_SESSIONS / MCP_MAX_SESSIONS_PER_USER: the gateway's total stays at
    MCP_MAX_SESSIONS (8) by closing idle sessions of the heaviest users, and a newcomer gets in."""
    users = [user_token(capped_stack, f"crowd-{index}@example.com") for index in range(5)]
    async with httpx.AsyncClient(timeout=10) as http:
        opened = [(token, await open_session(http, capped_stack, token)) for token in users for _ in range(3)]
        alive = [await session_status(http, capped_stack, token, sid) for token, sid in opened].count(200)
        assert alive <= 8, alive
        newcomer = user_token(capped_stack, "newcomer@example.com")
        session = await open_session(http, capped_stack, newcomer)
        assert await session_status(http, capped_stack, newcomer, session) == 200


async def test_idle_sessions_expire_after_the_configured_timeout(capped_stack: AuthStack) -> None:
    dave = user_token(capped_stack, "dave@example.com")
    async with httpx.AsyncClient(timeout=10) as http:
        session = await open_session(http, capped_stack, dave)
        assert await session_status(http, capped_stack, dave, session) == 200
        await anyio.sleep(4.5)  # MCP_SESSION_IDLE_SECONDS=3 in this stack; the SDK default is 30 minutes
        assert await session_status(http, capped_stack, dave, session) == 404


async def test_a_user_whose_sessions_are_all_busy_is_refused_and_only_that_user(
    capped_stack: AuthStack,
) -> None:
    """Sessions with a request in flight (here each holds its GET event stream open) are never closed
    for a newcomer: the user at the cap gets 503, anybody else still gets in."""
    erin, frank = user_token(capped_stack, "erin@example.com"), user_token(capped_stack, "frank@example.com")
    async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as streams:
        sessions = [await open_session(http, capped_stack, erin) for _ in range(3)]
        opened = anyio.Event()
        held: list[str] = []

        async def hold_stream(session_id: str) -> None:
            headers = {
                "Authorization": f"Bearer {erin}",
                "Accept": "text/event-stream",
                "mcp-session-id": session_id,
                "mcp-protocol-version": PROTOCOL_VERSION,
            }
            async with http.stream("GET", capped_stack.mcp_url, headers=headers) as response:
                assert response.status_code == 200
                held.append(session_id)
                if len(held) == len(sessions):
                    opened.set()
                await anyio.sleep_forever()

        for session_id in sessions:
            streams.start_soon(hold_stream, session_id)
        with anyio.fail_after(5):
            await opened.wait()
        refused = await http.post(
            capped_stack.mcp_url,
            json=INITIALIZE,
            headers={"Authorization": f"Bearer {erin}", "Accept": ACCEPT},
        )
        assert refused.status_code == 503
        other = await open_session(http, capped_stack, frank)
        assert await session_status(http, capped_stack, frank, other) == 200
        streams.cancel_scope.cancel()

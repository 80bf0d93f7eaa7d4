"""Requests held in flight on purpose: a POST to ``/mcp`` whose body is sent only when released, so
the gateway counts it as a call in flight for as long as the test wants."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2 as httpx

from .conftest import ACCEPT, PROTOCOL_VERSION

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}


def headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "mcp-protocol-version": PROTOCOL_VERSION,
    }


@asynccontextmanager
async def calls_held_in_flight(
    http: httpx.AsyncClient, url: str, token: str, count: int, arrived: list[int] | None = None
) -> AsyncIterator[list[int]]:
    """``count`` pings of ``token``'s user, each held after its headers until the block ends; yields
    the list their HTTP statuses are appended to once released (all ``count`` after the block)."""
    body = json.dumps(PING).encode()
    release = anyio.Event()
    statuses: list[int] = []
    started = 0

    async def stalled_body() -> AsyncIterator[bytes]:
        await release.wait()
        yield body

    async def one() -> None:
        nonlocal started
        request = http.build_request(
            "POST", url, headers={**headers(token), "Content-Length": str(len(body))}, content=stalled_body()
        )
        started += 1
        response = await http.send(request)
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
        await anyio.sleep(2)  # the headers are out, the gateway counted the calls and awaits the bodies
        assert started == count
        try:
            yield statuses
        finally:
            release.set()

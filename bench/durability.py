"""Issue 15: call-log rows lost across a database outage (target 0).

The gateway runs as a real HTTP process on PostgreSQL reached through the fault suite's TCP proxy
(``tests/faults/tcpproxy.py``). Clients call ``get_tagging_policy`` (a read-only call that needs no
database) in a loop; mid-load the proxy refuses new connections and resets the open ones (what a
stopped server looks like) for ``outage_seconds``, then forwards again. Once the gateway's local
spool is replayed, the rows in the database are counted against the calls answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
from mcp import Client
from psycopg import sql

from tests.faults.tcpproxy import TCPProxy

from .common import figure, free_port
from .gateway import _start_gateway

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped afterwards (the server's data is left alone)."""
    name = f"tagcompliance_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_URL, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/health", timeout=10) as response:  # loopback: the details
        return dict(json.loads(response.read()))


async def _load(url: str, stop: asyncio.Event, answers: list[tuple[float, float, bool]]) -> None:
    async with Client(url) as client:
        while not stop.is_set():
            started = time.monotonic()
            result = await client.call_tool("get_tagging_policy", {})
            answers.append((started, time.monotonic() - started, bool(result.is_error)))
            await asyncio.sleep(0.02)


async def _outage(base: str, proxy: TCPProxy, outage_seconds: float, clients: int) -> dict[str, Any]:
    answers: list[tuple[float, float, bool]] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_load(f"{base}/mcp", stop, answers)) for _ in range(clients)]
    deadline = time.monotonic() + 60
    while len(answers) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    proxy.set_mode("refuse")
    proxy.cut()
    down_at = time.monotonic()
    await asyncio.sleep(outage_seconds)
    proxy.set_mode("forward")
    up_at = time.monotonic()
    await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*tasks)
    replayed_after = None
    while time.monotonic() < up_at + 90:
        health = await asyncio.to_thread(_health, base)
        if health["call_log"]["spooled_rows"] == 0 and health["status"] == "ok":
            replayed_after = time.monotonic() - up_at
            break
        await asyncio.sleep(0.5)
    during = [seconds for sent, seconds, _ in answers if down_at <= sent < up_at]
    return {
        "answered": len(answers),
        "errors": sum(1 for *_, error in answers if error),
        "answered_during_outage": len(during),
        "slowest_during_outage_seconds": round(max(during), 2) if during else None,
        "replayed_after_seconds": None if replayed_after is None else round(replayed_after, 1),
    }


def run(demo: Any, outage_seconds: float = 10.0, clients: int = 4) -> dict[str, Any]:
    with (
        scratch_database() as url,
        TCPProxy("127.0.0.1", 5432) as proxy,
        tempfile.TemporaryDirectory() as data,
    ):
        proxied = psycopg.conninfo.make_conninfo(url, host="127.0.0.1", port=str(proxy.port))
        port = free_port()
        process = _start_gateway(demo, data, port, DATABASE_URL=proxied)
        try:
            details = asyncio.run(_outage(f"http://127.0.0.1:{port}", proxy, outage_seconds, clients))
        finally:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(url) as conn:
            rows, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT call_id) FROM call_log"
                " WHERE tool_name = 'get_tagging_policy'"
            ).fetchone() or (0, 0)
    details.update(rows=rows, duplicate_rows=rows - distinct, outage_seconds=outage_seconds)
    lost = details["answered"] - distinct
    return {
        "name": "Durability: call log across a database outage",
        "figures": [
            figure(
                f"call-log rows lost across a {outage_seconds:g} s database outage "
                f"({details['answered']} calls, {details['answered_during_outage']} during it)",
                lost,
                "rows",
                op="==",
                target=0,
                reason="answered calls without a row in the database after the outage",
                to_close="the call-log spool (tagcompliance.store.spool): append + fsync, replay by call_id",
            ),
            figure(
                "duplicate call-log rows after the replay",
                details["duplicate_rows"],
                "rows",
                op="==",
                target=0,
                reason="a replayed row was written twice",
                to_close="insert ON CONFLICT (call_id) DO NOTHING",
            ),
            figure(
                "slowest answer during the outage",
                details["slowest_during_outage_seconds"],
                "s",
                reason="no call was answered during the outage",
                note="a call whose row the store fails waits until the connection pool gives up (at most "
                "its 10 s timeout); while rows wait in the spool, later rows go straight to it",
            ),
        ],
        "details": details,
    }

"""Gateway calls/s and latency with 1 and with 3 gateway processes behind a load balancer.

The deployed shape on one machine: ``python -m tag_compliance_mcp --transport http`` processes
(stateless streamable HTTP) behind HAProxy round robin (``bench/balancer.py``), sharing a scratch
PostgreSQL database and a Redis server of their own, against the seeded demo moto estate. The same
closed-loop load as the gateway benchmark (``bench/gateway.py``: official ``mcp`` clients in
several client processes, cached ``check_tag_compliance`` and ``get_tagging_policy`` in turn) runs
through the balancer once with one process behind it and once with three. Each run also reports how
the requests were spread over the processes (their access logs): a run where one process took them
all would measure nothing.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .balancer import balanced_gateways, private_redis
from .common import POLICY_PATH, figure, percentile
from .gateway import _load, check_arguments

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database on the machine's server (``make services``), dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"tagcompliance_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _environment(demo: Any, database_url: str, redis_url: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AUTH_", "MCP_", "DATABASE_", "REDIS_"))
    }
    environment.update(demo.environment)
    environment.update(
        {
            "AWS_REGION": demo.regions[0],
            "SCAN_REGIONS": ",".join(demo.regions),
            "POLICY_PATH": str(POLICY_PATH),
            "LOCAL_SCHEDULER_INTERVAL_SECONDS": "0",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
        }
    )
    return environment


def measure(
    processes: int, demo: Any, duration: float, sessions: int, client_processes: int
) -> dict[str, Any]:
    """One run: ``processes`` gateways behind the balancer, the load through it."""
    with (
        tempfile.TemporaryDirectory() as workdir,
        scratch_database() as database_url,
        private_redis(Path(workdir)) as redis_url,
        balanced_gateways(
            processes, _environment(demo, database_url, redis_url), Path(workdir) / "gateways"
        ) as cluster,
    ):
        before = cluster.served()
        latencies, errors, elapsed, _ = _load(
            cluster.url, check_arguments(demo), sessions, duration, client_processes
        )
        spread = [after - old for old, after in zip(before, cluster.served(), strict=True)]
    if not latencies:
        raise RuntimeError(f"no call completed with {processes} processes; errors: {errors[:5]}")
    return {
        "processes": processes,
        "calls_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "calls": len(latencies),
        "errors": len(errors),
        "errors_sample": errors[:5],
        "requests_per_process": spread,
        "duration_s": round(elapsed, 2),
    }


def run(
    duration: float = 30.0, sessions: int = 32, demo: Any | None = None, client_processes: int = 4
) -> dict[str, Any]:
    from services.demo.aws import start_demo_aws

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    try:
        one = measure(1, demo, duration, sessions, client_processes)
        three = measure(3, demo, duration, sessions, client_processes)
    finally:
        if own:
            demo.stop()
    cores = os.cpu_count() or 1
    speedup = three["calls_per_second"] / max(one["calls_per_second"], 1e-9)
    spread_note = "requests per process " + ", ".join(str(count) for count in three["requests_per_process"])
    figures = []
    for run_ in (one, three):
        label = f"{run_['processes']} process{'es' if run_['processes'] > 1 else ''} behind the balancer"
        figures += [
            figure(
                f"throughput, {label}",
                round(run_["calls_per_second"], 1),
                "calls/s",
                note=f"{sessions} sessions, {run_['duration_s']:g} s"
                + (f"; {spread_note}" if run_ is three else ""),
            ),
            figure(
                f"p95 latency, {label}", round(run_["p95_ms"], 1), "ms", note=f"p50 {run_['p50_ms']:.1f} ms"
            ),
        ]
    every_process_served = int(all(count > 0 for count in three["requests_per_process"]))
    figures += [
        figure(
            "3 processes / 1 process throughput",
            round(speedup, 2),
            "x",
            note=f"on {cores} cores shared by the gateways, HAProxy, PostgreSQL, Redis, moto and the "
            "clients: more processes add CPU only where cores are free; separate tasks each bring their own",
        ),
        figure(
            "every process served requests (1 = yes)",
            every_process_served,
            "",
            op="==",
            target=1,
            reason=spread_note,
            to_close="the balancer did not spread the load: check bench/balancer.py's HAProxy configuration",
        ),
        figure(
            "errors through the balancer",
            one["errors"] + three["errors"],
            "calls",
            op="<=",
            target=0,
            reason=f"first errors: {(one['errors_sample'] + three['errors_sample'])[:3]}",
            to_close="see the gateways' logs for the failing calls",
        ),
    ]
    return {
        "name": "4b. Gateway behind a load balancer (1 and 3 processes)",
        "figures": figures,
        "details": {"one_process": one, "three_processes": three, "cores": cores},
    }

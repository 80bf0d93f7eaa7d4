"""Issue 15: /health during a database black-hole (connections accepted, never answered), with the
gateway as a real process. Before, every /health ran ``store.info()`` on the event loop and froze
the gateway 10 s per request. Figures: /health and /health/ready latency (asserted within the
readiness timeout + margin), and liveness latency while twenty health checks are waiting (the
event loop is not blocked)."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx

from services.demo.aws import DemoAws
from tag_compliance_mcp.health import READINESS_TIMEOUT_SECONDS
from tests.conftest import fresh_postgres_database
from tests.faults.outage_helpers import running_gateway
from tests.faults.tcpproxy import TCPProxy


def test_health_answers_fast_and_the_loop_stays_free_during_a_database_blackhole(
    demo_aws: DemoAws, tmp_path: Path
) -> None:
    with fresh_postgres_database() as url, TCPProxy("127.0.0.1", 5432) as proxy:
        proxied = url.replace("127.0.0.1:5432", proxy.address, 1)
        with running_gateway(demo_aws, tmp_path, DATABASE_URL=proxied) as gateway:
            status, body, _ = gateway.health("/health/ready")
            assert (status, body["status"]) == (200, "ok")

            proxy.set_mode("blackhole")
            proxy.cut()  # pooled connections die; new ones hang
            time.sleep(3.5)  # past the cached readiness answer
            # One client made beforehand: building twenty in the threads costs seconds of CPU here,
            # which would be counted as the server's answer time.
            limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
            with ThreadPoolExecutor(max_workers=20) as pool, httpx.Client(timeout=15, limits=limits) as http:

                def timed(path: str) -> tuple[int, dict[str, object], float]:
                    started = time.monotonic()
                    response = http.get(f"{gateway.base_url}{path}")
                    return response.status_code, response.json(), time.monotonic() - started

                list(pool.map(timed, ["/health/live"] * 20))  # connections open before the outage matters
                checks = [pool.submit(timed, "/health/ready") for _ in range(10)]
                checks += [pool.submit(timed, "/health") for _ in range(10)]
                time.sleep(0.5)  # the health checks are waiting on the database now
                live_seconds = []
                for _ in range(5):
                    live_status, live, seconds = timed("/health/live")
                    live_seconds.append(seconds)
                    assert (live_status, live) == (200, {"status": "ok"})
                results = [check.result() for check in checks]

            slowest = max(seconds for _, _, seconds in results)
            live_median = statistics.median(live_seconds)
            print(
                f"\nfigure: during a database black-hole, 20 concurrent health checks answered within "
                f"{slowest:.2f} s (readiness timeout {READINESS_TIMEOUT_SECONDS} s); liveness meanwhile "
                f"{live_median * 1000:.0f} ms (median of 5)"
            )
            # A blocked event loop would hold liveness for the database's timeouts (seconds); the
            # bound leaves room for a busy test machine.
            assert live_median < 1.0
            assert slowest < READINESS_TIMEOUT_SECONDS + 1.5
            for code, answer, _ in results[:10]:
                assert (code, answer["status"]) == (503, "unavailable"), answer
            for code, answer, _ in results[10:]:
                assert (code, answer["status"]) == (200, "unavailable"), answer
            assert all(answer["store"]["status"] == "unavailable" for _, answer, _ in results)

            proxy.set_mode("forward")
            deadline = time.monotonic() + 30
            while gateway.health("/health/ready")[0] != 200:
                assert time.monotonic() < deadline, "readiness did not come back"
                time.sleep(0.5)

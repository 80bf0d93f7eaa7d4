"""The gateway's health: liveness (no I/O), readiness (checked off the event loop, cached), details.

- ``/health/live`` answers as long as the process serves HTTP: no I/O at all (the container check).
- ``/health/ready`` is the load balancer's check: 200 while the store answers (``ok``, or
  ``degraded`` when the cache fell back to memory or call-log rows wait in the local spool), 503
  (``unavailable``) when it does not.
- ``/health`` answers 200 with the same status word; an operator (``may_see_health_details``) also
  gets the configuration and the reasons.

The readiness check reads the store, which can block for seconds during a database outage. It
runs in its own thread, one check at a time, and its answer is kept ``READINESS_TTL_SECONDS``; a
request waits at most ``READINESS_TIMEOUT_SECONDS`` for it and otherwise reports the store as not
answering. So however many health checks arrive, the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from tagcompliance import __version__

from .auth.logfilter import public_error

if TYPE_CHECKING:
    from .runtime import Runtime

logger = logging.getLogger("tagcompliance.gateway.health")

Status = Literal["ok", "degraded", "unavailable"]
LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"
READINESS_TTL_SECONDS = 3.0
READINESS_TIMEOUT_SECONDS = 2.0


def health_report(runtime: Runtime) -> dict[str, Any]:
    """The gateway's state and configuration, computed now (blocking: it reads the store)."""
    settings = runtime.settings
    reasons: list[str] = []
    store: dict[str, Any]
    try:
        info = runtime.store.info()
    except Exception as error:  # StoreError, or anything a dead connection raises
        store = {
            "status": "unavailable",
            "backend": "postgresql" if settings.database_url else "sqlite",
            "error": public_error(str(error))[:500],
        }
        reasons.append("the database does not answer: calls that read or write it fail")
    else:
        store = {
            "status": "ok",
            "backend": info.backend,
            "location": info.location,
            "schema_version": info.schema_version,
        }
    store["note"] = None if settings.database_url else "embedded default; set DATABASE_URL for PostgreSQL"
    # degraded_reason: Redis failed at run time; fallback_reason: it never answered at start-up.
    degraded = getattr(runtime.cache, "degraded_reason", None) or getattr(
        runtime.cache, "fallback_reason", None
    )
    if degraded:
        reasons.append(f"cache: {degraded}")
    cache = {
        "status": "degraded" if degraded else "ok",
        "backend": runtime.cache.backend,
        "note": degraded or (None if settings.redis_url else "embedded default; set REDIS_URL for Redis"),
    }
    call_log: dict[str, Any] = {"spooled_rows": 0}
    if runtime.call_log is not None:
        call_log["spooled_rows"] = runtime.call_log.pending
        if runtime.call_log.pending:
            reasons.append(
                f"call log: {runtime.call_log.pending} row(s) kept in the local spool until the database "
                "takes them; calls with side effects are refused meanwhile"
            )
    status: Status = "unavailable" if store["status"] != "ok" else "degraded" if reasons else "ok"
    loaded = runtime.service.loaded_policy
    return {
        "status": status,
        "reasons": reasons,
        "version": __version__,
        "transport": runtime.transport,
        "auth": runtime.auth_mode or _default_auth_mode(runtime.transport),
        "policy_source": loaded.description,
        "policy_digest": loaded.policy.digest(),
        "policy_detection": runtime.policy_detection,
        "store": store,
        "cache": cache,
        "call_log": call_log,
        "aws_endpoint": settings.aws_endpoint_url or "AWS default endpoints",
        "default_regions": settings.default_regions,
        "scheduler": "eventbridge"
        if runtime.service.schedules.scheduler is not None
        else ("local loop" if runtime.scheduler_loop is not None else "off"),
    }


class Readiness:
    """``health_report`` computed in a thread of its own, one at a time, and kept for a few seconds."""

    def __init__(
        self,
        runtime: Runtime,
        ttl_seconds: float = READINESS_TTL_SECONDS,
        timeout_seconds: float = READINESS_TIMEOUT_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self._latest: tuple[float, dict[str, Any]] | None = None  # (checked at, report)
        self._running: asyncio.Future[dict[str, Any]] | None = None
        self._running_since = 0.0

    async def report(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._latest is not None and now - self._latest[0] < self.ttl_seconds:
            return self._latest[1]
        if self._running is None:
            self._running = self._start_check()
            self._running_since = now
            self._running.add_done_callback(self._finished)
        remaining = self._running_since + self.timeout_seconds - now
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), timeout=max(remaining, 0))
        except TimeoutError:
            return self._timed_out(now - self._running_since)

    def _start_check(self) -> asyncio.Future[dict[str, Any]]:
        """``health_report`` in a daemon thread: one stuck on a dead database never delays an exit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def deliver(report: dict[str, Any] | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(report or {})

        def check() -> None:
            try:
                report = health_report(self.runtime)
            except Exception as error:
                loop.call_soon_threadsafe(deliver, None, error)
            else:
                loop.call_soon_threadsafe(deliver, report, None)

        threading.Thread(target=check, name="readiness", daemon=True).start()
        return future

    def _finished(self, future: asyncio.Future[dict[str, Any]]) -> None:
        self._running = None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("the readiness check failed: %s", error)
            return
        self._latest = (time.monotonic(), future.result())

    def _timed_out(self, waited: float) -> dict[str, Any]:
        """The last report, with the store marked as not answering (the check is still waiting on it)."""
        report = dict(self._latest[1]) if self._latest is not None else {}
        reason = f"the database has not answered the health check for {waited:.1f} s"
        report.update(
            status="unavailable",
            reasons=[reason, *[r for r in report.get("reasons", []) if "database" not in r]],
            store={**report.get("store", {}), "status": "unavailable", "error": "no answer"},
        )
        return report


def _default_auth_mode(transport: str) -> str:
    return "none: stdio (the user's own process)" if transport == "stdio" else "none: unauthenticated"

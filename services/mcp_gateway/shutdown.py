"""Stopping the gateway: SIGTERM (ECS stopping the task, ``docker stop``) or Ctrl-C.

HTTP: uvicorn stops accepting connections at once; in-flight calls get ``SHUTDOWN_GRACE_SECONDS``
to finish. ``ANSWER_RESERVE_SECONDS`` before the grace ends, every call still running has its
budget cancelled (reason ``shutdown``): a scan stops and answers with the shards it finished, and
nothing sends further AWS requests. At the end of the grace uvicorn cancels what is left; then the
runtime is closed (store, scheduler loop) and the process exits. Scan threads still blocked in a
request on the wire (each would end within the read timeout) do not hold the exit back.

stdio: SIGTERM keeps Python's default action (the process ends at once): the client owns the
process, and a read-only call has nothing to finish; every call log row is committed before its
answer is sent.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import FrameType

import uvicorn

from tagcompliance.resilience import cancel_all

from .runtime import ANSWER_RESERVE_SECONDS

logger = logging.getLogger("tagcompliance.gateway")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, bounding the graceful shutdown by ``grace_seconds`` and stopping the calls'
    AWS work before it ends; it returns instead of re-raising the signal, so the runtime is closed."""

    def __init__(self, config: uvicorn.Config, grace_seconds: float) -> None:
        config.timeout_graceful_shutdown = max(int(grace_seconds), 0)  # uvicorn takes whole seconds
        super().__init__(config)
        self.grace_seconds = grace_seconds
        self._stopping: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stopping is None:
            logger.info("signal %s: stopping (grace %.0f s)", sig, self.grace_seconds)
            self._stopping = threading.Timer(
                max(self.grace_seconds - ANSWER_RESERVE_SECONDS, 0.0), _stop_calls
            )
            self._stopping.daemon = True
            self._stopping.start()
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # exit normally after shutdown, not by the signal again


def _stop_calls() -> None:
    stopped = cancel_all("shutdown")
    if stopped:
        logger.info("shutdown: %d call(s) still running told to answer with what they have", stopped)


def exit_now(code: int) -> None:
    """Exit without joining worker threads still blocked in a network read (Python's exit would
    wait for each to time out): logs are flushed first; the store is already closed."""
    lingering = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not lingering:
        sys.exit(code)
    logger.info("exiting; not waiting for %d worker thread(s): %s", len(lingering), ", ".join(lingering[:8]))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

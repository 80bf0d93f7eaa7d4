"""The local scheduler loop: due schedules run inside the gateway, one replica per run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from tagcompliance.aws import describe_aws_error
from tagcompliance.errors import InvalidInputError, StoreError, TagComplianceError
from tagcompliance.store import ScheduledAuditRecord, Store

from .results import FiredRun
from .service import utc_now
from .timing import aware_utc, next_run

logger = logging.getLogger(__name__)


RunAudit = Callable[[ScheduledAuditRecord], str]


def run_due_schedules(
    store: Store,
    now: datetime,
    run_audit: RunAudit,
    *,
    stop: threading.Event | None = None,
    limit: int = 100,
) -> list[FiredRun]:
    """One tick of the local scheduler: run every schedule due at ``now``, each exactly once.

    Each due schedule is claimed first (compare-and-set of next_run to the run after ``now``), so
    of several replicas ticking at once one runs it; runs missed while nothing ticked are made up
    once, not once each. ``run_audit`` returns the snapshot id; if it raises, the error is logged
    and kept (in the result and the schedule's last_error) and the other schedules still run.
    ``stop``, once set, keeps further schedules from starting.
    """
    now = aware_utc(now, "now")
    fired: list[FiredRun] = []
    for record in store.due_scheduled_audits(now, limit):
        if stop is not None and stop.is_set():
            break
        run = _claim_and_run(store, record, now, run_audit)
        if run is not None:
            fired.append(run)
    return fired


def run_schedule_if_due(
    store: Store,
    schedule_id: str,
    now: datetime,
    run_audit: RunAudit,
    early_tolerance: timedelta = timedelta(minutes=2),
) -> FiredRun | None:
    """Run one schedule if it is due, for a caller woken by EventBridge Scheduler.

    The same claim as ``run_due_schedules``: EventBridge delivers at least once, so a repeated
    delivery (or a local loop running too) finds the run already claimed and returns None. A run
    up to ``early_tolerance`` ahead of ``next_run`` counts as due (clock skew). None as well when
    the schedule is unknown, paused, deleted or not due.
    """
    now = aware_utc(now, "now")
    record = store.get_scheduled_audit(schedule_id)
    if record is None or record.status != "active" or record.next_run > now + early_tolerance:
        return None
    return _claim_and_run(store, record, max(now, record.next_run), run_audit)


def _claim_and_run(
    store: Store, record: ScheduledAuditRecord, now: datetime, run_audit: RunAudit
) -> FiredRun | None:
    problem: str | None = None
    try:
        following = next_run(record, now)
    except TagComplianceError as error:  # e.g. a time zone since removed from the tz database
        problem = f"cannot compute the schedule's runs: {error}"
        following = now + timedelta(days=1)
    if not store.claim_scheduled_run(record.schedule_id, record.next_run, following, now):
        return None  # another replica claimed it, or it was paused or changed meanwhile
    snapshot_id: str | None = None
    if problem is None:
        try:
            snapshot_id = run_audit(record)
        except Exception as error:
            logger.exception("scheduled audit %s failed", record.schedule_id)
            problem = str(error) if isinstance(error, TagComplianceError) else describe_aws_error(error)
    else:
        logger.error("scheduled audit %s not run: %s", record.schedule_id, problem)
    try:
        store.record_scheduled_run(record.schedule_id, now, snapshot_id, problem)
    except StoreError:
        logger.exception("could not record the run of scheduled audit %s", record.schedule_id)
    return FiredRun(
        schedule_id=record.schedule_id,
        scheduled_for=record.next_run,
        started_at=now,
        next_run=following,
        status="success" if problem is None else "error",
        snapshot_id=snapshot_id,
        error=problem,
    )


class LocalSchedulerLoop:
    """Runs ``run_due_schedules`` every ``interval_seconds`` on a daemon thread.

    ``start()`` ticks at once, then after every interval; ``stop()`` wakes the thread immediately
    and waits for an audit in progress to finish (up to ``timeout``); no new audit starts once
    stop was asked for. A failing tick (store unreachable) is logged and the loop carries on.
    """

    def __init__(
        self,
        store: Store,
        run_audit: RunAudit,
        interval_seconds: float = 60.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if interval_seconds <= 0:
            raise InvalidInputError(f"interval_seconds must be positive, got {interval_seconds}")
        self.store = store
        self.run_audit = run_audit
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.ticks = 0
        self.fired: list[FiredRun] = []  # every run started, oldest first (last 1000)
        self.last_tick_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="scheduled-audits", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop the loop; True once the thread has ended."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def tick(self) -> list[FiredRun]:
        fired = run_due_schedules(self.store, self._clock(), self.run_audit, stop=self._stop)
        with self._lock:
            self.ticks += 1
            self.fired = [*self.fired, *fired][-1000:]
        return fired

    def __enter__(self) -> LocalSchedulerLoop:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
                self.last_tick_error = None
            except Exception as error:
                self.last_tick_error = str(error)
                logger.exception("scheduled audits tick failed; trying again in %ss", self.interval_seconds)
            stop.wait(self.interval_seconds)

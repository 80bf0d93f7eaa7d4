"""Recurring compliance audits: what a schedule means, when it next runs, and who runs it.

A schedule is daily, weekly (on one weekday), monthly (on one day of the month) or a 5-field cron
expression, at wall-clock times in an IANA time zone. Its runs are computed here, in that zone:

* Daylight saving time. A wall-clock time that does not exist on a spring-forward day (02:30 in
  America/New_York on the second Sunday of March) runs at the first valid instant after it: the
  moment the clocks jump (03:00 local). A wall-clock time that happens twice on a fall-back day
  runs once, at its first occurrence (the earlier offset), never again an hour later. Every
  wall-clock time of a schedule therefore runs at most once a day.
* Monthly on a day the month lacks (31 in April, 29-31 in February) runs on the month's last day,
  so a "day 31" schedule runs on the last day of every month, never skipping one.
* Cron (minute hour day-of-month month day-of-week) follows the usual syntax: ``*``, numbers,
  ``a-b`` ranges, ``,`` lists, ``/step`` (``*/15``, ``10-50/20``, ``5/15`` = 5 through the maximum),
  month and weekday names (JAN-DEC, SUN-SAT, any case), 0 or 7 for Sunday, and the macros
  ``@hourly @daily @midnight @weekly @monthly @yearly @annually``. At most one of the two day
  fields may restrict the days (the other ``*``): EventBridge Scheduler cannot express classic
  cron's "either day matches" rule, and a schedule must mean the same wherever it runs. A field
  that lists all its values counts as ``*``. Runs are at least ``MIN_INTERVAL_MINUTES`` apart:
  every run is a full compliance scan.

The same schedules can run in two places. ``run_due_schedules`` / ``LocalSchedulerLoop`` run them
inside the gateway: replicas share the store, and a compare-and-set on ``next_run`` makes sure one
replica fires each run. ``EventBridgeScheduler`` mirrors them to EventBridge Scheduler, which
starts the audit state machine in AWS. Use one or the other for a given store, not both.

One module per part; this package re-exports their public names.
"""

from .cron import CronExpression
from .definitions import (
    DEFAULT_DAY_OF_MONTH,
    DEFAULT_DAY_OF_WEEK,
    MAX_CRON_LENGTH,
    MAX_RECIPIENTS,
    MIN_INTERVAL_MINUTES,
    SCHEDULE_ID_PREFIX,
    UPDATE_ATTEMPTS,
    WEEKDAYS,
    DeliveryFormat,
    ScheduleNotFoundError,
    SchedulerSyncError,
    ScheduleStatus,
    ScheduleType,
)
from .eventbridge import (
    DAILY_SNAPSHOT_NAME,
    FEBRUARY_SUFFIX,
    EventBridgeScheduler,
    SchedulerBackend,
    aws_schedule_expressions,
)
from .local import LocalSchedulerLoop, RunAudit, run_due_schedules, run_schedule_if_due
from .recipients import is_email, is_slack_webhook, mask_recipient
from .results import FiredRun, ScheduleListResult, ScheduleResult
from .service import ScheduleService, utc_now
from .spec import ScheduleSpec, spec_fields
from .sync import ScheduleSyncReport, reconcile_schedules, record_external_run
from .timing import canonical_timezone, describe_schedule, next_run, resolve_wall_time

__all__ = [
    "DAILY_SNAPSHOT_NAME",
    "DEFAULT_DAY_OF_MONTH",
    "DEFAULT_DAY_OF_WEEK",
    "FEBRUARY_SUFFIX",
    "MAX_CRON_LENGTH",
    "MAX_RECIPIENTS",
    "MIN_INTERVAL_MINUTES",
    "SCHEDULE_ID_PREFIX",
    "UPDATE_ATTEMPTS",
    "WEEKDAYS",
    "CronExpression",
    "DeliveryFormat",
    "EventBridgeScheduler",
    "FiredRun",
    "LocalSchedulerLoop",
    "RunAudit",
    "ScheduleListResult",
    "ScheduleNotFoundError",
    "ScheduleResult",
    "ScheduleService",
    "ScheduleSpec",
    "ScheduleStatus",
    "ScheduleSyncReport",
    "ScheduleType",
    "SchedulerBackend",
    "SchedulerSyncError",
    "aws_schedule_expressions",
    "canonical_timezone",
    "describe_schedule",
    "is_email",
    "is_slack_webhook",
    "mask_recipient",
    "next_run",
    "reconcile_schedules",
    "record_external_run",
    "resolve_wall_time",
    "run_due_schedules",
    "run_schedule_if_due",
    "spec_fields",
    "utc_now",
]

"""The schedule vocabulary: kinds, delivery formats, statuses, limits and errors."""

from __future__ import annotations

from typing import Literal

from tagcompliance.errors import InvalidInputError, TagComplianceError

ScheduleType = Literal["daily", "weekly", "monthly", "cron"]
DeliveryFormat = Literal["email", "slack", "both"]
ScheduleStatus = Literal["active", "paused", "deleted"]

MAX_RECIPIENTS = 50

MAX_CRON_LENGTH = 200
MIN_INTERVAL_MINUTES = 15
SCHEDULE_ID_PREFIX = "audit-sched-"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_DAY_OF_WEEK = "monday"
DEFAULT_DAY_OF_MONTH = 1
UPDATE_ATTEMPTS = 5  # tries when a concurrent run or edit changes the schedule under an update


class ScheduleNotFoundError(InvalidInputError):
    """No schedule has the id given."""


class SchedulerSyncError(TagComplianceError):
    """EventBridge Scheduler refused a change; the message says which schedule and why."""

"""Time zones and next runs: wall-clock times in an IANA zone, across daylight saving changes."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, available_timezones

from tagcompliance.errors import InvalidInputError
from tagcompliance.store import ScheduledAuditRecord

from .cron import CronExpression
from .definitions import DEFAULT_DAY_OF_MONTH, DEFAULT_DAY_OF_WEEK, WEEKDAYS

if TYPE_CHECKING:
    from .spec import ScheduleSpec


# Far enough ahead for any valid cron expression: 29 February comes at least once in 8 years.
_SEARCH_DAYS = 9 * 366
WALL_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")
# Names in the tz database that are not places: refused, as EventBridge Scheduler refuses them.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """Lower-cased IANA name -> its canonical spelling, for every zone this machine knows."""
    names = {name for name in available_timezones() if name not in _NOT_ZONES}
    return {name.lower(): name for name in names}


def canonical_timezone(name: str) -> str:
    """The IANA zone's canonical spelling (case-insensitive match), or ValueError."""
    names = _zone_names()
    if not names:
        raise ValueError(
            "this machine has no IANA time zone database: install the OS tzdata package "
            "or the Python package 'tzdata'"
        )
    found = names.get(str(name).strip().lower())
    if found is None:
        raise ValueError(
            f"{name!r} is not an IANA time zone name (e.g. 'America/New_York', 'Europe/Berlin', 'UTC')"
        )
    return found


def aware_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got {value.isoformat()}")
    return value.astimezone(UTC)


def resolve_wall_time(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the clocks in ``zone`` show the naive ``local`` time.

    Twice (fall back): the first occurrence. Never (spring forward): the first instant after, when
    the clocks jump past it.
    """
    first = local.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local:
        return instant
    # In a gap: the two folds read the time with the offsets before and after the jump, which
    # bracket it. Search for the first whole second whose wall-clock time is not earlier.
    before = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((int(before.timestamp()), int(instant.timestamp())))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True, slots=True)
class _Recurrence:
    zone: ZoneInfo
    matches_day: Callable[[date], bool]
    times: list[tuple[int, int]]
    months: frozenset[int]


def hour_minute(text: str | None) -> tuple[int, int]:
    match = WALL_CLOCK_TIME.fullmatch(text or "")
    if match is None:
        raise InvalidInputError(f"time must be HH:MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _recurrence(schedule: ScheduleSpec | ScheduledAuditRecord) -> _Recurrence:
    kind = schedule.schedule_type if isinstance(schedule, ScheduledAuditRecord) else schedule.schedule
    try:
        zone = ZoneInfo(canonical_timezone(schedule.timezone))
    except ValueError as error:
        raise InvalidInputError(f"timezone: {error}") from None
    all_months = frozenset(range(1, 13))
    if kind == "cron":
        try:
            cron = CronExpression.parse(schedule.cron_expression or "")
        except ValueError as error:
            raise InvalidInputError(f"cron_expression: {error}") from None
        return _Recurrence(zone, cron.matches_day, cron.times(), cron.months)
    at = [hour_minute(schedule.time)]
    if kind == "daily":
        return _Recurrence(zone, lambda day: True, at, all_months)
    if kind == "weekly":
        weekday = WEEKDAYS.index(schedule.day_of_week or DEFAULT_DAY_OF_WEEK)
        return _Recurrence(zone, lambda day: day.weekday() == weekday, at, all_months)
    if kind == "monthly":
        wanted = schedule.day_of_month or DEFAULT_DAY_OF_MONTH

        def monthly(day: date) -> bool:
            return day.day == min(wanted, calendar.monthrange(day.year, day.month)[1])

        return _Recurrence(zone, monthly, at, all_months)
    raise InvalidInputError(f"schedule type {kind!r} is not daily, weekly, monthly or cron")


def next_run(schedule: ScheduleSpec | ScheduledAuditRecord, after: datetime) -> datetime:
    """The schedule's first run strictly after ``after``, as an aware UTC datetime."""
    after = aware_utc(after, "after")
    recurrence = _recurrence(schedule)
    # A day early: resolving a gap can move a run past midnight, never back before the day it names.
    day = after.astimezone(recurrence.zone).date() - timedelta(days=1)
    last_day = day + timedelta(days=_SEARCH_DAYS)
    while day <= last_day:
        if day.month not in recurrence.months:
            day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
            continue
        if recurrence.matches_day(day):
            for hour, minute in recurrence.times:
                candidate = resolve_wall_time(
                    datetime.combine(day, time_of_day(hour, minute)), recurrence.zone
                )
                if candidate > after:
                    return candidate
        day += timedelta(days=1)
    raise InvalidInputError("the schedule never runs")  # unreachable for a validated schedule


def describe_schedule(schedule: ScheduleSpec | ScheduledAuditRecord) -> str:
    """One line for people: "weekly on Monday at 09:00 (America/New_York)"."""
    kind = schedule.schedule_type if isinstance(schedule, ScheduledAuditRecord) else schedule.schedule
    zone = f"({schedule.timezone})"
    if kind == "cron":
        return f"cron '{schedule.cron_expression}' {zone}"
    if kind == "weekly":
        return f"weekly on {(schedule.day_of_week or DEFAULT_DAY_OF_WEEK).title()} at {schedule.time} {zone}"
    if kind == "monthly":
        day = schedule.day_of_month or DEFAULT_DAY_OF_MONTH
        shorter = "; on the last day in shorter months" if day > 28 else ""
        return f"monthly on day {day} at {schedule.time} {zone}{shorter}"
    return f"daily at {schedule.time} {zone}"

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
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as time_of_day
from functools import lru_cache, partial
from itertools import pairwise
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .aws import AwsClients, describe_aws_error, error_code
from .errors import InvalidInputError, StoreError, TagComplianceError
from .resources import resolve_resource_types, validate_region_names
from .store import ConcurrentUpdateError, ScheduledAuditRecord, Store

logger = logging.getLogger(__name__)

ScheduleType = Literal["daily", "weekly", "monthly", "cron"]
DeliveryFormat = Literal["email", "slack", "both"]
ScheduleStatus = Literal["active", "paused", "deleted"]

MAX_RECIPIENTS = 50
MAX_REGIONS = 40  # as tagcompliance.service (not imported: the service may come to import this module)
MAX_CRON_LENGTH = 200
MIN_INTERVAL_MINUTES = 15
SCHEDULE_ID_PREFIX = "audit-sched-"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_DAY_OF_WEEK = "monday"
DEFAULT_DAY_OF_MONTH = 1
UPDATE_ATTEMPTS = 5  # tries when a concurrent run or edit changes the schedule under an update

# Far enough ahead for any valid cron expression: 29 February comes at least once in 8 years.
_SEARCH_DAYS = 9 * 366
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_SLACK_WEBHOOK = re.compile(
    r"https://hooks\.slack\.com/services/([A-Za-z0-9]+)/([A-Za-z0-9]+)/([A-Za-z0-9]+)"
)
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
# Names in the tz database that are not places: refused, as EventBridge Scheduler refuses them.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


class ScheduleNotFoundError(InvalidInputError):
    """No schedule has the id given."""


class SchedulerSyncError(TagComplianceError):
    """EventBridge Scheduler refused a change; the message says which schedule and why."""


# --- cron ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CronField:
    name: str
    low: int
    high: int  # for the day of week 7 (Sunday again) is accepted, then folded to 0
    names: Mapping[str, int]

    @property
    def full(self) -> frozenset[int]:
        return frozenset(range(self.low, 6 + 1 if self.name == "day-of-week" else self.high + 1))


_MONTH_NAMES = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_CRON_FIELDS = (
    _CronField("minute", 0, 59, {}),
    _CronField("hour", 0, 23, {}),
    _CronField("day-of-month", 1, 31, {}),
    _CronField("month", 1, 12, _MONTH_NAMES),
    _CronField("day-of-week", 0, 7, _DAY_NAMES),
)
_CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_LONGEST_MONTH = {month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)}


def _cron_value(spec: _CronField, token: str) -> int:
    if token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise ValueError(f"{spec.name} value {value} is outside {spec.low}-{spec.high}")
        return value
    if token.upper() in spec.names:
        return spec.names[token.upper()]
    if token in ("?", "L", "W") or "#" in token or token.endswith(("L", "W")):
        raise ValueError(
            f"{spec.name} {token!r} is EventBridge/Quartz syntax, not 5-field cron "
            "(use * for any day; L, W and # are not supported)"
        )
    expected = f"a number {spec.low}-{spec.high}"
    if spec.names:
        expected += f" or a name ({', '.join(spec.names)})"
    raise ValueError(f"{spec.name} {token!r} is not {expected}")


def _cron_field(spec: _CronField, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if not base:
            raise ValueError(f"{spec.name} field {text!r} has an empty item")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{spec.name} step in {item!r} must be a whole number of 1 or more")
            step = int(step_text)
        if base == "*":
            start, end = min(spec.full), max(spec.full)
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _cron_value(spec, first), _cron_value(spec, last)
            if spec.name == "day-of-week" and end == 0 and start > 0:
                end = 7  # MON-SUN
            if start > end:
                raise ValueError(f"{spec.name} range {base!r} runs backwards")
        else:
            start = _cron_value(spec, base)
            end = spec.high if slash else start  # "5/15": from 5 through the maximum
        values.update(range(start, end + 1, step))
    if spec.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed 5-field cron expression (see the module docstring for the accepted syntax)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # days of the month, 1-31
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday, as cron counts

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """The expression, or ValueError saying which field is wrong and why."""
        return _parse_cron(" ".join(str(text).split()))

    @property
    def restricts_day_of_month(self) -> bool:
        return self.days != _CRON_FIELDS[2].full

    @property
    def restricts_day_of_week(self) -> bool:
        return self.weekdays != _CRON_FIELDS[4].full

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        if self.restricts_day_of_month:
            return day.day in self.days
        return (day.weekday() + 1) % 7 in self.weekdays  # all days when the weekday is unrestricted

    def times(self) -> list[tuple[int, int]]:
        return [(hour, minute) for hour in sorted(self.hours) for minute in sorted(self.minutes)]

    def to_aws(self) -> str:
        """The same schedule in EventBridge's 6-field syntax: ``cron(min hour dom month dow year)``."""
        minute = _aws_values(self.minutes, _CRON_FIELDS[0])
        hour = _aws_values(self.hours, _CRON_FIELDS[1])
        month = _aws_values(self.months, _CRON_FIELDS[3])
        if self.restricts_day_of_week:
            day_of_month, day_of_week = "?", _aws_weekdays(self.weekdays)
        else:
            day_of_month, day_of_week = _aws_values(self.days, _CRON_FIELDS[2]), "?"
        return f"cron({minute} {hour} {day_of_month} {month} {day_of_week} *)"


@lru_cache(maxsize=512)
def _parse_cron(text: str) -> CronExpression:
    if len(text) > MAX_CRON_LENGTH:
        raise ValueError(f"is longer than {MAX_CRON_LENGTH} characters")
    expanded = _CRON_MACROS.get(text.lower(), text)
    if expanded.startswith("@"):
        raise ValueError(f"{text!r} is not a known macro ({', '.join(_CRON_MACROS)})")
    parts = expanded.split()
    if len(parts) != 5:
        hint = " (EventBridge's 6-field form is not accepted here)" if len(parts) == 6 else ""
        raise ValueError(
            f"must have 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}{hint}"
        )
    minutes, hours, days, months, weekdays = (
        _cron_field(spec, part) for spec, part in zip(_CRON_FIELDS, parts, strict=True)
    )
    cron = CronExpression(text, minutes, hours, days, months, weekdays)
    if cron.restricts_day_of_month and cron.restricts_day_of_week:
        raise ValueError(
            "restrict either the day of the month or the day of the week, not both (make the other *): "
            "EventBridge Scheduler cannot express cron's either-day rule"
        )
    if not any(day <= _LONGEST_MONTH[month] for month in months for day in days):
        raise ValueError("never runs: none of its months has any of its days")
    gap = _shortest_gap_minutes(cron)
    if gap is not None and gap < MIN_INTERVAL_MINUTES:
        raise ValueError(
            f"runs every {gap} minute(s); scheduled audits must be at least "
            f"{MIN_INTERVAL_MINUTES} minutes apart"
        )
    return cron


def _shortest_gap_minutes(cron: CronExpression) -> int | None:
    minutes = sorted(cron.minutes)
    gaps = [later - earlier for earlier, later in pairwise(minutes)]
    if any((hour + 1) % 24 in cron.hours for hour in cron.hours):
        gaps.append(60 - minutes[-1] + minutes[0])  # from the last run of an hour to the next hour's first
    return min(gaps, default=None)


def _aws_values(values: frozenset[int], spec: _CronField) -> str:
    if values == spec.full:
        return "*"
    ordered = sorted(values)
    step = ordered[1] - ordered[0] if len(ordered) > 2 else 0
    if (
        step > 1
        and ordered[-1] + step > spec.high
        and all(later - earlier == step for earlier, later in pairwise(ordered))
    ):
        return f"{ordered[0]}/{step}"  # AWS's "start/increment"
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in _runs(ordered))


def _aws_weekdays(values: frozenset[int]) -> str:
    names = list(_DAY_NAMES)  # SUN..SAT; AWS numbers them 1-7, names avoid the off-by-one
    return ",".join(
        f"{names[run[0]]}-{names[run[-1]]}" if len(run) > 1 else names[run[0]]
        for run in _runs(sorted(values))
    )


def _runs(ordered: Sequence[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for value in ordered:
        if run and value != run[-1] + 1:
            yield run
            run = []
        run.append(value)
    if run:
        yield run


# --- time zones and next runs --------------------------------------------------------------


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


def _utc(value: datetime, what: str) -> datetime:
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


def _hour_minute(text: str | None) -> tuple[int, int]:
    match = _TIME.fullmatch(text or "")
    if match is None:
        raise InvalidInputError(f"time must be HH:MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _recurrence(schedule: ScheduleSpec | ScheduledAuditRecord) -> _Recurrence:
    kind = schedule.schedule if isinstance(schedule, ScheduleSpec) else schedule.schedule_type
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
    at = [_hour_minute(schedule.time)]
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
    after = _utc(after, "after")
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
    kind = schedule.schedule if isinstance(schedule, ScheduleSpec) else schedule.schedule_type
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


# --- the specification ---------------------------------------------------------------------


def _describe_validation(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "value_error" and "error" in item.get("ctx", {}):
            message = str(item["ctx"]["error"])
        elif item["type"] == "extra_forbidden":
            message = "is not a schedule parameter"
        else:
            message = item["msg"]
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def is_email(value: str) -> bool:
    local = value.rpartition("@")[0]
    return len(value) <= 254 and len(local) <= 64 and _EMAIL.fullmatch(value) is not None


def is_slack_webhook(value: str) -> bool:
    return _SLACK_WEBHOOK.fullmatch(value) is not None


def mask_recipient(value: str) -> str:
    """A Slack webhook URL with its secret part hidden; email addresses unchanged."""
    match = _SLACK_WEBHOOK.fullmatch(value)
    if match is None:
        return value
    return f"https://hooks.slack.com/services/{match.group(1)}/{match.group(2)}/****"


def _shown(value: str) -> str:
    """A refused recipient as an error may repeat it: a URL's path (maybe a secret) is left out."""
    if "://" in value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}/..."
    return value[:100]


class ScheduleSpec(BaseModel):
    """What a user asks for; validated and normalised. Errors are InvalidInputError naming the field.

    ``resource_types`` is stored resolved ([] or ["all"] become every supported type, fixed at
    creation); ``regions`` [] means the server's default regions when the audit runs, ["all"] every
    enabled region then. ``format`` may be left out: it follows from the recipients.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    schedule: ScheduleType = Field(description="daily, weekly, monthly or cron.")
    time: str | None = Field(
        default=None, description="HH:MM on a 24-hour clock in `timezone`; not for cron schedules."
    )
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. America/New_York.")
    day_of_week: str | None = Field(
        default=None, description="Weekly schedules: monday..sunday (or mon..sun); default monday."
    )
    day_of_month: int | None = Field(
        default=None,
        ge=1,
        le=31,
        description="Monthly schedules: 1-31, default 1; a day the month lacks means its last day.",
    )
    cron_expression: str | None = Field(
        default=None, description="Cron schedules: minute hour day-of-month month day-of-week."
    )
    resource_types: list[str] = Field(
        default_factory=list, validate_default=True, description="Types to audit; empty = all."
    )
    regions: list[str] = Field(
        default_factory=list, description="Regions to audit; empty = the server's default regions."
    )
    recipients: list[str] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="Email addresses and/or Slack incoming-webhook URLs (https://hooks.slack.com/services/...).",
    )
    format: DeliveryFormat | None = Field(
        default=None, description="email, slack or both; inferred from the recipients when omitted."
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise InvalidInputError(f"invalid schedule: {_describe_validation(error)}") from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> ScheduleSpec:  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as error:
            raise InvalidInputError(f"invalid schedule: {_describe_validation(error)}") from None

    @classmethod
    def from_record(cls, record: ScheduledAuditRecord) -> ScheduleSpec:
        return cls(**spec_fields(record))

    @field_validator("schedule", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _TIME.fullmatch(value)
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"{value!r} is not a time as HH:MM on a 24-hour clock (e.g. '09:00', '17:30')")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return canonical_timezone(value)

    @field_validator("day_of_week")
    @classmethod
    def _check_day_of_week(cls, value: str | None) -> str | None:
        if value is None:
            return None
        lowered = value.lower()
        for name in WEEKDAYS:
            if lowered in (name, name[:3]):
                return name
        raise ValueError(f"{value!r} is not a day of the week (monday..sunday)")

    @field_validator("cron_expression")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return None if value is None else CronExpression.parse(value).text

    @field_validator("resource_types")
    @classmethod
    def _check_resource_types(cls, value: list[str]) -> list[str]:
        return resolve_resource_types(value)

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, value: list[str]) -> list[str]:
        if value == ["all"]:
            return value
        if "all" in value:
            raise ValueError('"all" cannot be combined with other regions')
        unique = validate_region_names(value)
        if len(unique) > MAX_REGIONS:
            raise ValueError(f"at most {MAX_REGIONS} regions, got {len(unique)}")
        return unique

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not (is_email(item) or is_slack_webhook(item))]
        if bad:
            shown = ", ".join(repr(_shown(item)) for item in bad[:5])
            raise ValueError(
                f"neither an email address nor a Slack incoming-webhook URL "
                f"(https://hooks.slack.com/services/...): {shown}"
            )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_combination(self) -> ScheduleSpec:
        kind = self.schedule
        if kind == "cron":
            if self.cron_expression is None:
                raise ValueError("cron_expression: required for a cron schedule")
            for name in ("time", "day_of_week", "day_of_month"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: does not apply to a cron schedule (the expression says when)")
        else:
            if self.time is None:
                raise ValueError(f"time: required for a {kind} schedule (HH:MM, 24-hour)")
            if self.cron_expression is not None:
                raise ValueError(f"cron_expression: only for schedule 'cron', not '{kind}'")
        if kind == "weekly":
            self.day_of_week = self.day_of_week or DEFAULT_DAY_OF_WEEK
        elif self.day_of_week is not None:
            raise ValueError(f"day_of_week: only for weekly schedules, not '{kind}'")
        if kind == "monthly":
            self.day_of_month = self.day_of_month or DEFAULT_DAY_OF_MONTH
        elif self.day_of_month is not None:
            raise ValueError(f"day_of_month: only for monthly schedules, not '{kind}'")
        self.format = _check_format(self.format, self.recipients)
        return self


def _check_format(wanted: DeliveryFormat | None, recipients: Sequence[str]) -> DeliveryFormat:
    emails = sum(1 for item in recipients if is_email(item))
    webhooks = len(recipients) - emails
    if wanted is None:
        return "both" if emails and webhooks else "email" if emails else "slack"
    if wanted == "email" and webhooks:
        raise ValueError("format: 'email' but recipients include Slack webhook URLs; use format 'both'")
    if wanted == "slack" and emails:
        raise ValueError("format: 'slack' but recipients include email addresses; use format 'both'")
    if wanted == "both" and not (emails and webhooks):
        missing = "a Slack incoming-webhook URL" if emails else "an email address"
        raise ValueError(f"format: 'both' needs at least one email address and one webhook; add {missing}")
    return wanted


def spec_fields(record: ScheduledAuditRecord) -> dict[str, Any]:
    """The ScheduleSpec arguments that describe a stored schedule."""
    return {
        "schedule": record.schedule_type,
        "time": record.time,
        "timezone": record.timezone,
        "day_of_week": record.day_of_week,
        "day_of_month": record.day_of_month,
        "cron_expression": record.cron_expression,
        "resource_types": list(record.resource_types),
        "regions": list(record.regions),
        "recipients": list(record.recipients),
        "format": record.format,
    }


_TIMING_FIELDS = ("schedule", "time", "timezone", "day_of_week", "day_of_month", "cron_expression")


def _apply_spec(record: ScheduledAuditRecord, spec: ScheduleSpec) -> ScheduledAuditRecord:
    assert spec.format is not None  # set by validation
    return replace(
        record,
        schedule_type=spec.schedule,
        time=spec.time,
        timezone=spec.timezone,
        day_of_week=spec.day_of_week,
        day_of_month=spec.day_of_month,
        cron_expression=spec.cron_expression,
        resource_types=list(spec.resource_types),
        regions=list(spec.regions),
        recipients=list(spec.recipients),
        format=spec.format,
    )


# --- EventBridge Scheduler -----------------------------------------------------------------

FEBRUARY_SUFFIX = "-feb"


def aws_schedule_expressions(schedule: ScheduleSpec | ScheduledAuditRecord) -> list[tuple[str, str]]:
    """(name suffix, EventBridge cron expression) for each EventBridge schedule this one needs.

    One, except monthly on day 29 or 30: "that day, or February's last" takes two (that day in the
    other months, ``L`` in February). Day 31 is exactly ``L``: every month's last day.
    """
    kind = schedule.schedule if isinstance(schedule, ScheduleSpec) else schedule.schedule_type
    if kind == "cron":
        return [("", CronExpression.parse(schedule.cron_expression or "").to_aws())]
    hour, minute = _hour_minute(schedule.time)
    if kind == "daily":
        return [("", f"cron({minute} {hour} * * ? *)")]
    if kind == "weekly":
        weekday = (schedule.day_of_week or DEFAULT_DAY_OF_WEEK)[:3].upper()
        return [("", f"cron({minute} {hour} ? * {weekday} *)")]
    day = schedule.day_of_month or DEFAULT_DAY_OF_MONTH
    if day <= 28:
        return [("", f"cron({minute} {hour} {day} * ? *)")]
    if day == 31:
        return [("", f"cron({minute} {hour} L * ? *)")]
    return [
        ("", f"cron({minute} {hour} {day} 1,3-12 ? *)"),
        (FEBRUARY_SUFFIX, f"cron({minute} {hour} L 2 ? *)"),
    ]


class SchedulerBackend(Protocol):
    """Where schedules are mirrored so that something outside this process fires them."""

    def create(self, record: ScheduledAuditRecord) -> str:
        """Create (or overwrite) the schedule; return its external id."""
        ...

    def update(self, record: ScheduledAuditRecord) -> str:
        """Bring the schedule in line with ``record`` (paused -> disabled); return its external id."""
        ...

    def delete(self, record: ScheduledAuditRecord) -> None:
        """Remove it; a schedule already gone is not an error."""
        ...


_GROUP_NAME = re.compile(r"[0-9a-zA-Z_.-]{1,64}")
DAILY_SNAPSHOT_NAME = "daily-compliance-snapshot"


class EventBridgeScheduler:
    """Each scheduled audit as EventBridge Scheduler schedule(s) that start the audit state machine.

    Schedules live in ``group_name`` (created when missing) and are named after the schedule id.
    The target is the state machine ``target_arn``, started with ``role_arn`` and the input
    ``{"schedule_id", "resource_types", "regions", "trigger": "scheduled"}``; recipients are not in
    it (webhook URLs are secrets): the state machine reads them from the store by schedule id.

    EventBridge Scheduler skips a wall-clock time that does not exist on a spring-forward day,
    where ``next_run`` here runs it when the clocks jump; fall-back days agree (one run).
    """

    def __init__(
        self,
        clients: AwsClients,
        group_name: str,
        target_arn: str,
        role_arn: str,
        region: str | None = None,
        max_retry_attempts: int = 2,
    ) -> None:
        if not _GROUP_NAME.fullmatch(group_name):
            raise InvalidInputError(f"schedule group name {group_name!r} must be 1-64 of [0-9a-zA-Z_.-]")
        self._clients = clients
        self.group_name = group_name
        self.target_arn = target_arn
        self.role_arn = role_arn
        self._region = region
        self._max_retry_attempts = max_retry_attempts
        self._group_ready = False
        self._lock = threading.Lock()

    @property
    def _client(self) -> Any:
        return self._clients.client("scheduler", self._region)

    def create(self, record: ScheduledAuditRecord) -> str:
        return self._put(record, creating=True)

    def update(self, record: ScheduledAuditRecord) -> str:
        if record.status == "deleted":
            self.delete(record)
            return record.external_id or ""
        return self._put(record, creating=False)

    def delete(self, record: ScheduledAuditRecord) -> None:
        for suffix in ("", FEBRUARY_SUFFIX):
            self._delete_quietly(record.schedule_id + suffix)

    def _put(self, record: ScheduledAuditRecord, creating: bool) -> str:
        self._ensure_group()
        wanted = aws_schedule_expressions(record)
        arns = []
        for suffix, expression in wanted:
            params = self._schedule_params(record, record.schedule_id + suffix, expression)
            first, fallback = ("create", "update") if creating else ("update", "create")
            try:
                arns.append(self._call(first, params))
            except ClientError as error:
                # Creating over an existing schedule overwrites it; updating a missing one creates it.
                expected = "ConflictException" if creating else "ResourceNotFoundException"
                if error_code(error) != expected:
                    raise self._sync_error(first, params["Name"], error) from None
                arns.append(self._call(fallback, params, wrap=True))
        if not creating:
            for suffix in {"", FEBRUARY_SUFFIX} - {suffix for suffix, _ in wanted}:
                self._delete_quietly(record.schedule_id + suffix)
        return arns[0]

    def _schedule_params(self, record: ScheduledAuditRecord, name: str, expression: str) -> dict[str, Any]:
        payload = {
            "schedule_id": record.schedule_id,
            "resource_types": list(record.resource_types),
            "regions": list(record.regions),
            "trigger": "scheduled",
        }
        return {
            "Name": name,
            "GroupName": self.group_name,
            "Description": f"Tag-compliance audit {record.schedule_id}: {describe_schedule(record)}"[:512],
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": record.timezone,
            "State": "ENABLED" if record.status == "active" else "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(payload, separators=(",", ":")),
                "RetryPolicy": {
                    "MaximumRetryAttempts": self._max_retry_attempts,
                    "MaximumEventAgeInSeconds": 3600,
                },
            },
        }

    def _call(self, action: str, params: dict[str, Any], wrap: bool = False) -> str:
        try:
            method = self._client.create_schedule if action == "create" else self._client.update_schedule
            return str(method(**params)["ScheduleArn"])
        except (ClientError, BotoCoreError) as error:
            if wrap or isinstance(error, BotoCoreError):
                raise self._sync_error(action, params["Name"], error) from None
            raise

    def _delete_quietly(self, name: str) -> None:
        try:
            self._client.delete_schedule(Name=name, GroupName=self.group_name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise self._sync_error("delete", name, error) from None
        except BotoCoreError as error:
            raise self._sync_error("delete", name, error) from None

    def _ensure_group(self) -> None:
        with self._lock:
            if self._group_ready:
                return
            client = self._client
            try:
                client.get_schedule_group(Name=self.group_name)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise self._sync_error("read the group of", self.group_name, error) from None
                try:
                    client.create_schedule_group(Name=self.group_name)
                except ClientError as create_error:
                    if error_code(create_error) != "ConflictException":  # created meanwhile: fine
                        raise self._sync_error("create the group", self.group_name, create_error) from None
            except BotoCoreError as error:
                raise self._sync_error("read the group of", self.group_name, error) from None
            self._group_ready = True

    def schedule_names(self) -> list[str]:
        """Names of every schedule in the group (none when the group does not exist yet)."""
        names: list[str] = []
        try:
            paginator = self._client.get_paginator("list_schedules")
            for page in paginator.paginate(GroupName=self.group_name):
                names.extend(item["Name"] for item in page.get("Schedules", []))
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return []
            raise self._sync_error("list", "*", error) from None
        except BotoCoreError as error:
            raise self._sync_error("list", "*", error) from None
        return sorted(names)

    def put_daily_snapshot(self, time_utc: str) -> str:
        """Create or update the daily compliance snapshot: every resource type in the default
        regions at ``time_utc`` (HH:MM, UTC), started with trigger ``daily``."""
        hour, minute = _hour_minute(time_utc)
        self._ensure_group()
        payload = {"resource_types": [], "regions": [], "trigger": "daily"}
        params = {
            "Name": DAILY_SNAPSHOT_NAME,
            "GroupName": self.group_name,
            "Description": f"Daily tag-compliance snapshot at {hour:02d}:{minute:02d} UTC",
            "ScheduleExpression": f"cron({minute} {hour} * * ? *)",
            "ScheduleExpressionTimezone": "UTC",
            "State": "ENABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(payload, separators=(",", ":")),
                "RetryPolicy": {
                    "MaximumRetryAttempts": self._max_retry_attempts,
                    "MaximumEventAgeInSeconds": 3600,
                },
            },
        }
        try:
            return self._call("update", params)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise self._sync_error("update", DAILY_SNAPSHOT_NAME, error) from None
            return self._call("create", params, wrap=True)

    def delete_name(self, name: str) -> None:
        self._delete_quietly(name)

    def _sync_error(self, action: str, name: str, error: Exception) -> SchedulerSyncError:
        return SchedulerSyncError(
            f"EventBridge Scheduler could not {action} schedule {self.group_name}/{name}: "
            f"{describe_aws_error(error)}"
        )


# --- results -------------------------------------------------------------------------------


class ScheduleResult(BaseModel):
    """One scheduled audit as the tools return it."""

    schedule_id: str
    status: ScheduleStatus
    schedule: ScheduleType
    description: str
    time: str | None
    day_of_week: str | None
    day_of_month: int | None
    cron_expression: str | None
    timezone: str
    next_run: datetime | None = Field(
        description="The next run in the schedule's time zone, with its UTC offset; null unless active."
    )
    next_run_utc: datetime | None = Field(description="The same instant in UTC; null unless active.")
    resource_types: list[str]
    regions: list[str] = Field(description="Empty: the server's default regions when the audit runs.")
    recipients: list[str] = Field(description="Slack webhook secrets are masked.")
    format: DeliveryFormat
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_run: datetime | None
    last_run_status: str | None
    last_snapshot_id: str | None
    last_error: str | None
    external_id: str | None = Field(description="The EventBridge Scheduler schedule ARN, when synced.")

    @classmethod
    def from_record(cls, record: ScheduledAuditRecord) -> ScheduleResult:
        active = record.status == "active"
        try:
            zone: tzinfo = ZoneInfo(canonical_timezone(record.timezone))
        except ValueError:  # a zone since removed from the tz database: still listable, shown in UTC
            zone = UTC
        return cls(
            schedule_id=record.schedule_id,
            status=record.status,  # type: ignore[arg-type]
            schedule=record.schedule_type,  # type: ignore[arg-type]
            description=describe_schedule(record),
            time=record.time,
            day_of_week=record.day_of_week,
            day_of_month=record.day_of_month,
            cron_expression=record.cron_expression,
            timezone=record.timezone,
            next_run=record.next_run.astimezone(zone) if active else None,
            next_run_utc=record.next_run.astimezone(UTC) if active else None,
            resource_types=list(record.resource_types),
            regions=list(record.regions),
            recipients=[mask_recipient(item) for item in record.recipients],
            format=record.format,  # type: ignore[arg-type]
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
            last_run=record.last_run,
            last_run_status=record.last_run_status,
            last_snapshot_id=record.last_snapshot_id,
            last_error=record.last_error,
            external_id=record.external_id,
        )


class ScheduleListResult(BaseModel):
    schedules: list[ScheduleResult]
    total: int


class FiredRun(BaseModel):
    """One run started by ``run_due_schedules``."""

    schedule_id: str
    scheduled_for: datetime = Field(description="The next_run that was due (UTC).")
    started_at: datetime
    next_run: datetime = Field(description="When the schedule runs next (UTC).")
    status: Literal["success", "error"]
    snapshot_id: str | None = None
    error: str | None = None


# --- the service ---------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


class ScheduleService:
    """Create, read, change, pause, resume and delete scheduled audits.

    The store is the source of truth; a ``scheduler`` backend, when given, mirrors every change
    (create -> create, pause -> disabled, delete -> deleted). An AWS failure leaves the store as it
    was; a store failure after AWS changed is undone in AWS as far as possible.
    """

    LIST_STATUSES: ClassVar[tuple[str, ...]] = ("active", "paused", "deleted", "all")

    def __init__(
        self,
        store: Store,
        scheduler: SchedulerBackend | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self._clock = clock

    def create(self, spec: ScheduleSpec | Mapping[str, Any], created_by: str = "unknown") -> ScheduleResult:
        spec = spec if isinstance(spec, ScheduleSpec) else ScheduleSpec.model_validate(dict(spec))
        now = self._now()
        record = _apply_spec(
            ScheduledAuditRecord(
                schedule_id=self._new_schedule_id(),
                schedule_type=spec.schedule,
                time=None,
                timezone=spec.timezone,
                recipients=[],
                format="email",
                next_run=next_run(spec, now),
                status="active",
                created_by=created_by or "unknown",
                created_at=now,
                updated_at=now,
            ),
            spec,
        )
        if self.scheduler is not None:
            record = replace(record, external_id=self.scheduler.create(record))
        try:
            stored = self.store.create_scheduled_audit(record)
        except BaseException:
            if self.scheduler is not None:
                self._undo(partial(self.scheduler.delete, record), record.schedule_id)
            raise
        logger.info("scheduled audit %s created: %s", stored.schedule_id, describe_schedule(stored))
        return ScheduleResult.from_record(stored)

    def get(self, schedule_id: str) -> ScheduleResult:
        return ScheduleResult.from_record(self._require(schedule_id))

    def list(self, status: str | None = None) -> ScheduleListResult:
        """Active and paused schedules by default; ``status`` one of active, paused, deleted, all."""
        if status is not None and status not in self.LIST_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(self.LIST_STATUSES)}, got {status!r}")
        if status is None:
            records = [record for record in self.store.list_scheduled_audits() if record.status != "deleted"]
        else:
            records = self.store.list_scheduled_audits(None if status == "all" else status)
        return ScheduleListResult(
            schedules=[ScheduleResult.from_record(r) for r in records], total=len(records)
        )

    def update(self, schedule_id: str, changes: Mapping[str, Any]) -> ScheduleResult:
        """Change some of the schedule's parameters (the ScheduleSpec fields); the rest stay.

        Changing the schedule type drops the old type's timing fields; changing recipients without
        a format infers the format again. The next run is recomputed when the timing changes.
        """
        changes = dict(changes)

        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted; create a new one")
            base = spec_fields(current)
            if changes.get("schedule", current.schedule_type) != current.schedule_type:
                for name in ("time", "day_of_week", "day_of_month", "cron_expression"):
                    base.pop(name)
            if "recipients" in changes and "format" not in changes:
                base.pop("format")
            spec = ScheduleSpec.model_validate({**base, **changes})
            updated = _apply_spec(current, spec)
            before = spec_fields(current)
            timing_changed = any(getattr(spec, name) != before[name] for name in _TIMING_FIELDS)
            if timing_changed and current.status == "active":
                updated = replace(updated, next_run=next_run(spec, now))
            return replace(updated, updated_at=now)

        return self._change(schedule_id, build)

    def pause(self, schedule_id: str) -> ScheduleResult:
        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted and cannot be paused")
            if current.status == "paused":
                return None
            return replace(current, status="paused", updated_at=now)

        return self._change(schedule_id, build)

    def resume(self, schedule_id: str) -> ScheduleResult:
        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                raise InvalidInputError(f"schedule {schedule_id} is deleted and cannot be resumed")
            if current.status == "active":
                return None
            # Runs missed while paused are not made up: the next one is after now.
            return replace(current, status="active", next_run=next_run(current, now), updated_at=now)

        return self._change(schedule_id, build)

    def delete(self, schedule_id: str) -> ScheduleResult:
        """Soft delete: the row stays (status deleted) for the record; it never runs again."""

        def build(current: ScheduledAuditRecord, now: datetime) -> ScheduledAuditRecord | None:
            if current.status == "deleted":
                return None
            return replace(current, status="deleted", updated_at=now)

        return self._change(schedule_id, build)

    # --- internals ---------------------------------------------------------------------

    def _change(
        self,
        schedule_id: str,
        build: Callable[[ScheduledAuditRecord, datetime], ScheduledAuditRecord | None],
    ) -> ScheduleResult:
        for _ in range(UPDATE_ATTEMPTS):
            current = self._require(schedule_id)
            updated = build(current, self._now())
            if updated is None:
                return ScheduleResult.from_record(current)
            if self.scheduler is not None:
                external_id = self._sync(updated)
                updated = replace(updated, external_id=external_id or current.external_id)
            try:
                stored = self.store.update_scheduled_audit(updated)
            except ConcurrentUpdateError:
                continue  # a run was claimed or another edit landed: start again from the new row
            except BaseException:
                self._undo(partial(self._sync, current), schedule_id)
                raise
            logger.info("scheduled audit %s is now %s", schedule_id, stored.status)
            return ScheduleResult.from_record(stored)
        latest = self.store.get_scheduled_audit(schedule_id)
        if latest is not None and self.scheduler is not None:
            self._undo(partial(self._sync, latest), schedule_id)
        raise StoreError(f"schedule {schedule_id} kept changing while being updated; try again")

    def _sync(self, record: ScheduledAuditRecord) -> str | None:
        assert self.scheduler is not None
        if record.status == "deleted":
            self.scheduler.delete(record)
            return record.external_id
        return self.scheduler.update(record)

    def _undo(self, action: Callable[[], object], schedule_id: str) -> None:
        """Best effort: put EventBridge back in line with the store after the store refused a write."""
        try:
            action()
        except Exception:
            logger.exception("could not undo the EventBridge change to schedule %s", schedule_id)

    def _require(self, schedule_id: str) -> ScheduledAuditRecord:
        record = self.store.get_scheduled_audit(schedule_id) if isinstance(schedule_id, str) else None
        if record is None:
            raise ScheduleNotFoundError(
                f"no scheduled audit {schedule_id!r}; list them to see the ids ({SCHEDULE_ID_PREFIX}...)"
            )
        return record

    def _new_schedule_id(self) -> str:
        for _ in range(8):
            candidate = f"{SCHEDULE_ID_PREFIX}{secrets.token_hex(4)}"
            if self.store.get_scheduled_audit(candidate) is None:
                return candidate
        raise StoreError("could not find an unused schedule id")  # 8 collisions in 2**32: not by chance

    def _now(self) -> datetime:
        return _utc(self._clock(), "the clock's time")


# --- the local scheduler loop --------------------------------------------------------------

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
    now = _utc(now, "now")
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
    now = _utc(now, "now")
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


# --- keeping EventBridge in step, and runs it started -----------------------------------------


class ScheduleSyncReport(BaseModel):
    """What ``reconcile_schedules`` changed in EventBridge Scheduler."""

    synced: list[str] = Field(description="Schedules created or updated from the store (active and paused).")
    deleted: list[str] = Field(description="Deleted schedules removed from EventBridge.")
    orphans_removed: list[str] = Field(
        description="EventBridge schedules with no scheduled audit behind them."
    )
    daily_snapshot: str | None = Field(default=None, description="The daily snapshot schedule's ARN.")
    errors: list[str] = Field(default_factory=list)


def reconcile_schedules(
    store: Store, backend: EventBridgeScheduler, daily_snapshot_time: str | None = None
) -> ScheduleSyncReport:
    """Bring EventBridge Scheduler in line with the ``scheduled_audits`` table (the source of truth).

    Every active or paused schedule is written (paused ones disabled); deleted ones and schedules
    of this product that the table does not know are removed; with ``daily_snapshot_time`` the daily
    snapshot schedule is kept at that time. A failure on one schedule is reported, the others go on.
    """
    report = ScheduleSyncReport(synced=[], deleted=[], orphans_removed=[])
    wanted: set[str] = set()
    for record in store.list_scheduled_audits():
        try:
            if record.status == "deleted":
                backend.delete(record)
                report.deleted.append(record.schedule_id)
                continue
            backend.update(record)
            wanted.update(record.schedule_id + suffix for suffix, _ in aws_schedule_expressions(record))
            report.synced.append(record.schedule_id)
        except (SchedulerSyncError, TagComplianceError) as error:
            wanted.update((record.schedule_id, record.schedule_id + FEBRUARY_SUFFIX))  # never delete on doubt
            report.errors.append(f"{record.schedule_id}: {error}")
    try:
        for name in backend.schedule_names():
            if name.startswith(SCHEDULE_ID_PREFIX) and name not in wanted:
                backend.delete_name(name)
                report.orphans_removed.append(name)
        if daily_snapshot_time:
            report.daily_snapshot = backend.put_daily_snapshot(daily_snapshot_time)
    except SchedulerSyncError as error:
        report.errors.append(str(error))
    return report


def record_external_run(
    store: Store,
    schedule_id: str,
    started_at: datetime,
    snapshot_id: str | None,
    error: str | None,
    early_tolerance: timedelta = timedelta(minutes=2),
) -> ScheduledAuditRecord | None:
    """A run that EventBridge Scheduler started has ended: move the schedule's next run past it and
    record its last run (time, status, snapshot, error). None for an unknown schedule.

    The same claim as the local loop, so a delivery seen twice moves ``next_run`` once.
    """
    started_at = _utc(started_at, "started_at")
    record = store.get_scheduled_audit(schedule_id)
    if record is None:
        return None
    if record.status == "active" and record.next_run <= started_at + early_tolerance:
        try:
            following = next_run(record, max(started_at, record.next_run))
        except TagComplianceError:
            following = started_at + timedelta(days=1)
        store.claim_scheduled_run(schedule_id, record.next_run, following, started_at)
    store.record_scheduled_run(schedule_id, started_at, snapshot_id, error)
    return store.get_scheduled_audit(schedule_id)

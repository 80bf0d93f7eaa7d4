"""The 5-field cron parser: fields, names, macros, and the AWS form of an expression."""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import pairwise

from .definitions import MAX_CRON_LENGTH, MIN_INTERVAL_MINUTES


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

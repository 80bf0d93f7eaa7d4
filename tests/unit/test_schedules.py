"""Scheduled audits: validation, next runs across DST, the service on SQLite, and the local scheduler loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tagcompliance.errors import InvalidInputError, StoreError
from tagcompliance.resources import RESOURCE_TYPE_IDS
from tagcompliance.schedules import (
    MAX_RECIPIENTS,
    CronExpression,
    LocalSchedulerLoop,
    ScheduleNotFoundError,
    ScheduleService,
    ScheduleSpec,
    aws_schedule_expressions,
    next_run,
    resolve_wall_time,
    run_due_schedules,
    run_schedule_if_due,
)
from tagcompliance.store import ScheduledAuditRecord, SqliteStore

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
EMAIL = "finops-team@example.com"
WEBHOOK = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdEFGH1234ijklMNOP5678"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spec(**changes: Any) -> ScheduleSpec:
    fields: dict[str, Any] = {"schedule": "daily", "time": "09:00", "recipients": [EMAIL]}
    fields.update(changes)
    return ScheduleSpec(**fields)


def runs(schedule: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        after = next_run(schedule, after)
        found.append(after)
    return found


# --- validation ----------------------------------------------------------------------------


def test_a_valid_spec_is_normalised() -> None:
    daily = spec(time="9:05", timezone="america/new_york", recipients=[EMAIL, WEBHOOK, EMAIL])

    assert daily.time == "09:05"
    assert daily.timezone == "America/New_York"  # canonical spelling
    assert daily.recipients == [EMAIL, WEBHOOK]  # duplicates dropped, order kept
    assert daily.format == "both"  # inferred from the recipients
    assert daily.resource_types == list(RESOURCE_TYPE_IDS)  # [] means every type
    assert daily.regions == []  # the server's default regions at run time

    assert spec(schedule="weekly").day_of_week == "monday"
    assert spec(schedule="weekly", day_of_week="Fri").day_of_week == "friday"
    assert spec(schedule="monthly").day_of_month == 1
    assert spec(schedule="DAILY", format="Email").format == "email"
    assert spec(recipients=[WEBHOOK]).format == "slack"
    assert spec(resource_types=["rds:db", "ec2:instance", "rds:db"]).resource_types == [
        "rds:db",
        "ec2:instance",
    ]
    assert spec(regions=["eu-west-1", "us-east-1", "eu-west-1"]).regions == ["eu-west-1", "us-east-1"]
    assert spec(regions=["all"]).regions == ["all"]
    assert spec(recipients=[f"user{n}@example.com" for n in range(MAX_RECIPIENTS)]).format == "email"
    cron = spec(schedule="cron", time=None, cron_expression="  0  6 * *   mon ")
    assert cron.cron_expression == "0 6 * * mon"
    assert (
        ScheduleSpec.model_validate({"schedule": "daily", "time": "17:30", "recipients": [EMAIL]}).time
        == "17:30"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"time": "24:00"}, "time: '24:00' is not a time as HH:MM"),
        ({"time": "9am"}, "time: '9am' is not a time"),
        ({"time": "09:00:00"}, "time: '09:00:00'"),
        ({"time": "0900"}, "time: '0900'"),
        ({"time": "09:60"}, "time: '09:60'"),
        ({"time": None}, "time: required for a daily schedule"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone: 'Mars/Olympus_Mons' is not an IANA time zone"),
        ({"timezone": "localtime"}, "timezone: 'localtime' is not an IANA time zone"),
        ({"timezone": "+05:00"}, "timezone:"),
        ({"schedule": "hourly"}, "schedule: Input should be 'daily', 'weekly', 'monthly' or 'cron'"),
        ({"schedule": "cron"}, "cron_expression: required for a cron schedule"),
        ({"schedule": "cron", "cron_expression": "0 9 * * *"}, "time: does not apply to a cron schedule"),
        ({"cron_expression": "0 9 * * *"}, "cron_expression: only for schedule 'cron'"),
        ({"day_of_week": "monday"}, "day_of_week: only for weekly schedules"),
        ({"schedule": "weekly", "day_of_week": "someday"}, "day_of_week: 'someday' is not a day of the week"),
        ({"schedule": "weekly", "day_of_month": 3}, "day_of_month: only for monthly schedules"),
        (
            {"schedule": "monthly", "day_of_month": 32},
            "day_of_month: Input should be less than or equal to 31",
        ),
        (
            {"schedule": "monthly", "day_of_month": 0},
            "day_of_month: Input should be greater than or equal to 1",
        ),
        ({"recipients": []}, "recipients: List should have at least 1 item"),
        (
            {"recipients": [f"u{n}@example.com" for n in range(MAX_RECIPIENTS + 1)]},
            "recipients: List should have at most 50 items",
        ),
        (
            {"recipients": ["not-an-address"]},
            "recipients: neither an email address nor a Slack incoming-webhook URL",
        ),
        ({"recipients": ["a@b"]}, "recipients: neither"),
        ({"recipients": ["http://hooks.slack.com/services/T1/B2/x"]}, "recipients: neither"),
        ({"recipients": ["https://evil.example.com/services/T1/B2/x"]}, "recipients: neither"),
        (
            {"recipients": [EMAIL, WEBHOOK], "format": "email"},
            "format: 'email' but recipients include Slack webhook URLs",
        ),
        (
            {"recipients": [EMAIL], "format": "slack"},
            "format: 'slack' but recipients include email addresses",
        ),
        (
            {"recipients": [EMAIL], "format": "both"},
            "format: 'both' needs at least one email address and one webhook",
        ),
        ({"recipients": [WEBHOOK], "format": "both"}, "add an email address"),
        ({"format": "pigeon"}, "format: Input should be 'email', 'slack' or 'both'"),
        ({"resource_types": ["ec2:instanse"]}, "resource_types: unknown resource type(s): 'ec2:instanse'"),
        ({"resource_types": ["all", "rds:db"]}, 'resource_types: "all" cannot be combined'),
        ({"regions": ["us-east-1", "moon-1"]}, "regions: not AWS region names: 'moon-1'"),
        ({"regions": ["all", "us-east-1"]}, 'regions: "all" cannot be combined'),
        ({"regions": [f"us-east-{n}" for n in range(1, 45)]}, "regions: at most 40 regions"),
        ({"cadence": "daily"}, "cadence: is not a schedule parameter"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        spec(**changes)
    assert message in str(raised.value)
    assert str(raised.value).startswith("invalid schedule: ")
    # The same through model_validate (what the service and the tool use).
    fields = {"schedule": "daily", "time": "09:00", "recipients": [EMAIL], **changes}
    with pytest.raises(InvalidInputError, match="invalid schedule"):
        ScheduleSpec.model_validate(fields)


def test_a_slack_webhook_secret_is_never_repeated_in_an_error() -> None:
    with pytest.raises(InvalidInputError) as raised:
        spec(recipients=["https://hooks.slack.com/services/T1/B2/topsecret/extra"])
    assert "topsecret" not in str(raised.value)


# --- cron ----------------------------------------------------------------------------------


def test_cron_fields_with_steps_ranges_lists_and_names() -> None:
    cron = CronExpression.parse("10-50/20 */6 * jan,Mar-MAY,11 *")
    assert cron.minutes == {10, 30, 50}
    assert cron.hours == {0, 6, 12, 18}
    assert cron.months == {1, 3, 4, 5, 11}
    assert not cron.restricts_day_of_month and not cron.restricts_day_of_week

    assert CronExpression.parse("5/20 9 * * *").minutes == {5, 25, 45}  # 5 through 59
    assert CronExpression.parse("0 9 * * MON-FRI").weekdays == {1, 2, 3, 4, 5}
    assert CronExpression.parse("0 9 * * 0").weekdays == CronExpression.parse("0 9 * * 7").weekdays == {0}
    assert CronExpression.parse("0 9 * * sat,SUN").weekdays == {6, 0}
    assert CronExpression.parse("0 9 * * 5-7").weekdays == {5, 6, 0}
    assert CronExpression.parse("0 9 * * */2").weekdays == {0, 2, 4, 6}
    # A day field listing every value is the same as "*": only the other one restricts.
    every_day = CronExpression.parse("0 9 1-31 * MON-SUN")
    assert not every_day.restricts_day_of_month and not every_day.restricts_day_of_week
    assert CronExpression.parse("0 9 1-31 * MON").restricts_day_of_week
    assert CronExpression.parse("@daily").to_aws() == CronExpression.parse("0 0 * * *").to_aws()
    assert CronExpression.parse("@WEEKLY").weekdays == {0}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", "must have 5 fields"),
        ("0 9 * * ? *", "EventBridge's 6-field form is not accepted"),
        ("60 9 * * *", "minute value 60 is outside 0-59"),
        ("0 24 * * *", "hour value 24 is outside 0-23"),
        ("0 9 0 * *", "day-of-month value 0 is outside 1-31"),
        ("0 9 * 13 *", "month value 13 is outside 1-12"),
        ("0 9 * * 8", "day-of-week value 8 is outside 0-7"),
        ("0 17-9 * * *", "hour range '17-9' runs backwards"),
        ("*/0 9 * * *", "minute step in '*/0' must be a whole number of 1 or more"),
        ("0 9 1,,2 * *", "day-of-month field '1,,2' has an empty item"),
        ("0 9 ? * MON", "'?' is EventBridge/Quartz syntax"),
        ("0 9 L * *", "'L' is EventBridge/Quartz syntax"),
        ("0 9 * * 2#1", "'2#1' is EventBridge/Quartz syntax"),
        ("0 9 * * FUNDAY", "day-of-week 'FUNDAY' is not a number 0-7 or a name"),
        ("0 nine * * *", "hour 'nine' is not a number 0-23"),
        ("0 9 1 * MON", "restrict either the day of the month or the day of the week"),
        ("0 9 */2 * 1-5", "restrict either"),
        ("0 0 31 2 *", "never runs"),
        ("0 0 30,31 2 *", "never runs"),
        ("*/5 * * * *", "runs every 5 minute(s)"),
        ("0,10 9 * * *", "runs every 10 minute(s)"),
        ("0,50 23,0 * * *", "runs every 10 minute(s)"),  # 23:50 then 00:00 the next day
        ("@every_minute", "not a known macro"),
        ("0 9 * * * " + "*" * 200, "longer than 200 characters"),
    ],
)
def test_invalid_cron_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        spec(schedule="cron", time=None, cron_expression=expression)
    assert message in str(raised.value)
    assert "cron_expression: " in str(raised.value)


def test_cron_runs_at_most_every_fifteen_minutes_are_accepted() -> None:
    assert CronExpression.parse("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert CronExpression.parse("0,50 9 * * *").minutes == {0, 50}  # 09:50 and the next day's 09:00
    assert CronExpression.parse("45 8,9 * * *").hours == {8, 9}  # 08:45 and 09:45: an hour apart


@pytest.mark.parametrize(
    ("expression", "aws"),
    [
        ("0 9 * * *", "cron(0 9 * * ? *)"),
        ("*/15 9-17 * * MON-FRI", "cron(0/15 9-17 ? * MON-FRI *)"),
        ("5/20 * * * *", "cron(5/20 * * * ? *)"),
        ("0 */6 1,15 * *", "cron(0 0/6 1,15 * ? *)"),
        ("30 8 * JAN,JUL *", "cron(30 8 * 1,7 ? *)"),
        ("0 9 * */3 *", "cron(0 9 * 1/3 ? *)"),
        ("0 9 * * 0", "cron(0 9 ? * SUN *)"),
        ("0 9 * * 6,7", "cron(0 9 ? * SUN,SAT *)"),
        ("0 9 * * 1,3-5", "cron(0 9 ? * MON,WED-FRI *)"),
        ("0 9 * * */2", "cron(0 9 ? * SUN,TUE,THU,SAT *)"),  # EventBridge has no step in day-of-week
        ("0 9 1-5,10 * *", "cron(0 9 1-5,10 * ? *)"),
        ("0 0,12 * * *", "cron(0 0,12 * * ? *)"),  # two values: a list, not 0/12
        ("0 1,4,7 * * *", "cron(0 1,4,7 * * ? *)"),  # a step that stops early is not start/step
    ],
)
def test_cron_converts_to_eventbridge_six_field_syntax(expression: str, aws: str) -> None:
    assert CronExpression.parse(expression).to_aws() == aws


@pytest.mark.parametrize(
    ("changes", "expressions"),
    [
        ({"time": "09:05"}, [("", "cron(5 9 * * ? *)")]),
        ({"schedule": "weekly", "day_of_week": "friday", "time": "17:30"}, [("", "cron(30 17 ? * FRI *)")]),
        ({"schedule": "monthly", "day_of_month": 15}, [("", "cron(0 9 15 * ? *)")]),
        ({"schedule": "monthly", "day_of_month": 28}, [("", "cron(0 9 28 * ? *)")]),
        ({"schedule": "monthly", "day_of_month": 31}, [("", "cron(0 9 L * ? *)")]),
        (
            {"schedule": "monthly", "day_of_month": 30},
            [("", "cron(0 9 30 1,3-12 ? *)"), ("-feb", "cron(0 9 L 2 ? *)")],
        ),
        ({"schedule": "cron", "time": None, "cron_expression": "0 6 * * mon"}, [("", "cron(0 6 ? * MON *)")]),
    ],
)
def test_eventbridge_expressions_for_each_schedule_type(
    changes: dict[str, Any], expressions: list[tuple[str, str]]
) -> None:
    assert aws_schedule_expressions(spec(**changes)) == expressions


# --- next runs -----------------------------------------------------------------------------


def test_daily_follows_the_zone_not_utc() -> None:
    daily = spec(timezone="America/New_York")

    assert next_run(daily, utc(2026, 1, 10)) == utc(2026, 1, 10, 14)  # EST, UTC-5
    assert next_run(daily, utc(2026, 7, 10)) == utc(2026, 7, 10, 13)  # EDT, UTC-4
    assert next_run(daily, utc(2026, 1, 10, 14)) == utc(2026, 1, 11, 14)  # strictly after
    assert next_run(daily, utc(2026, 1, 10, 13, 59, 59)) == utc(2026, 1, 10, 14)
    # Any offset on "after" means the same instant.
    assert next_run(daily, datetime(2026, 1, 10, 8, 0, tzinfo=NEW_YORK)) == utc(2026, 1, 10, 14)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        next_run(daily, datetime(2026, 1, 10))


def test_spring_forward_runs_a_missing_time_when_the_clocks_jump() -> None:
    # 8 March 2026, New York: 02:00 EST -> 03:00 EDT, so 02:30 does not exist.
    schedule = spec(time="02:30", timezone="America/New_York")
    assert runs(schedule, utc(2026, 3, 6, 12), 4) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 0),  # the jump: 03:00 EDT, the first valid instant after 02:30
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30),
    ]
    assert utc(2026, 3, 8, 7).astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"
    # Times outside the gap are untouched on that day.
    assert next_run(spec(time="09:00", timezone="America/New_York"), utc(2026, 3, 8)) == utc(2026, 3, 8, 13)
    assert next_run(spec(time="01:59", timezone="America/New_York"), utc(2026, 3, 8)) == utc(
        2026, 3, 8, 6, 59
    )
    assert next_run(spec(time="03:00", timezone="America/New_York"), utc(2026, 3, 8)) == utc(2026, 3, 8, 7)


def test_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 1 November 2026, New York: 02:00 EDT -> 01:00 EST, so 01:30 happens twice.
    schedule = spec(time="01:30", timezone="America/New_York")
    assert runs(schedule, utc(2026, 10, 31, 12), 3) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; not again at 06:30 UTC (01:30 EST)
        utc(2026, 11, 2, 6, 30),
        utc(2026, 11, 3, 6, 30),
    ]
    # Created between the two occurrences: the day's run has passed, the next is tomorrow.
    assert next_run(schedule, utc(2026, 11, 1, 6)) == utc(2026, 11, 2, 6, 30)


def test_berlin_dst_both_directions() -> None:
    # 29 March 2026: 02:00 CET -> 03:00 CEST. 25 October 2026: 03:00 CEST -> 02:00 CET.
    schedule = spec(time="02:30", timezone="Europe/Berlin")
    assert runs(schedule, utc(2026, 3, 28, 12), 2) == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert utc(2026, 3, 29, 1).astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
    assert runs(schedule, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert utc(2026, 10, 25, 0, 30).astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"
    # A daily 09:00 moves an hour in UTC across each change.
    morning = spec(time="09:00", timezone="Europe/Berlin")
    assert runs(morning, utc(2026, 3, 28, 12), 2) == [utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]
    assert runs(morning, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]


@pytest.mark.parametrize(
    "zone_name", ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
)
@pytest.mark.parametrize("at", ["00:00", "01:30", "02:00", "02:15", "02:30", "03:00", "23:45"])
def test_daily_runs_once_every_local_day_for_a_whole_year(zone_name: str, at: str) -> None:
    """Exactly one run per local date, at the wall-clock time or (when it does not exist) at the jump."""
    zone = ZoneInfo(zone_name)
    schedule = spec(time=at, timezone=zone_name)
    hour, minute = map(int, at.split(":"))
    previous = next_run(schedule, utc(2026, 1, 1))
    for _ in range(366):
        current = next_run(schedule, previous)
        local = current.astimezone(zone)
        assert local.date() == previous.astimezone(zone).date() + timedelta(days=1)
        if (local.hour, local.minute) != (hour, minute):
            # Only when the time did not exist that day: a second earlier the clock read less.
            just_before = (current - timedelta(seconds=1)).astimezone(zone)
            assert (just_before.hour, just_before.minute) < (hour, minute) < (local.hour, local.minute)
            assert local.utcoffset() != just_before.utcoffset()
        previous = current


def test_resolve_wall_time_handles_a_half_hour_shift() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 4 October 2026.
    zone = ZoneInfo("Australia/Lord_Howe")
    resolved = resolve_wall_time(datetime(2026, 10, 4, 2, 15), zone)
    assert resolved.astimezone(zone).strftime("%H:%M") == "02:30"
    assert (resolved - timedelta(seconds=1)).astimezone(zone).strftime("%H:%M:%S") == "01:59:59"


def test_weekly_picks_the_configured_weekday() -> None:
    friday = spec(schedule="weekly", day_of_week="friday", time="17:00", timezone="Europe/Berlin")
    # Wednesday 4 March 2026 -> Friday 6 March, 17:00 CET.
    assert next_run(friday, utc(2026, 3, 4, 12)) == utc(2026, 3, 6, 16)
    # Friday after 17:00 -> the next Friday, now in summer time (CEST since 29 March).
    assert runs(friday, utc(2026, 3, 20, 16, 30), 2) == [utc(2026, 3, 27, 16), utc(2026, 4, 3, 15)]
    assert all(run.astimezone(BERLIN).weekday() == 4 for run in runs(friday, utc(2026, 1, 1), 60))
    monday_default = spec(schedule="weekly", time="08:00")
    assert next_run(monday_default, utc(2026, 3, 4)) == utc(2026, 3, 9, 8)


def test_monthly_on_a_day_the_month_lacks_runs_on_its_last_day() -> None:
    day_31 = spec(schedule="monthly", day_of_month=31, time="09:00", timezone="America/New_York")
    local_dates = [
        run.astimezone(NEW_YORK).date().isoformat() for run in runs(day_31, utc(2027, 12, 31, 15), 6)
    ]
    assert local_dates == ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31", "2028-06-30"]

    day_30 = spec(schedule="monthly", day_of_month=30, time="00:00")
    assert runs(day_30, utc(2026, 1, 30), 3) == [utc(2026, 2, 28), utc(2026, 3, 30), utc(2026, 4, 30)]
    day_29 = spec(schedule="monthly", day_of_month=29, time="00:00")
    assert runs(day_29, utc(2027, 1, 30), 2) == [utc(2027, 2, 28), utc(2027, 3, 29)]
    assert runs(day_29, utc(2028, 1, 30), 1) == [utc(2028, 2, 29)]
    first = spec(schedule="monthly", time="06:00")  # default day 1
    assert runs(first, utc(2026, 12, 15), 2) == [utc(2027, 1, 1, 6), utc(2027, 2, 1, 6)]


def test_cron_runs_in_the_schedules_time_zone() -> None:
    weekdays = spec(
        schedule="cron", time=None, cron_expression="*/30 9-10 * * MON-FRI", timezone="America/New_York"
    )
    # Friday 6 March 2026 10:45 EST -> Monday 9 March 09:00, now EDT.
    assert runs(weekdays, utc(2026, 3, 6, 15, 45), 5) == [
        utc(2026, 3, 9, 13, 0),
        utc(2026, 3, 9, 13, 30),
        utc(2026, 3, 9, 14, 0),
        utc(2026, 3, 9, 14, 30),
        utc(2026, 3, 10, 13, 0),
    ]
    leap_day = spec(schedule="cron", time=None, cron_expression="0 0 29 FEB *")
    assert next_run(leap_day, utc(2026, 3, 1)) == utc(2028, 2, 29)
    quarterly = spec(schedule="cron", time=None, cron_expression="15 6 1 */3 *", timezone="Europe/Berlin")
    assert runs(quarterly, utc(2026, 2, 1), 3) == [
        utc(2026, 4, 1, 4, 15),
        utc(2026, 7, 1, 4, 15),
        utc(2026, 10, 1, 4, 15),
    ]
    jan_jul_mondays = spec(schedule="cron", time=None, cron_expression="0 9 * JAN,jul mon")
    assert runs(jan_jul_mondays, utc(2026, 2, 1), 2) == [utc(2026, 7, 6, 9), utc(2026, 7, 13, 9)]
    day_31 = spec(schedule="cron", time=None, cron_expression="0 0 31 * *")  # cron: only months with a 31st
    assert runs(day_31, utc(2026, 3, 31, 1), 2) == [utc(2026, 5, 31), utc(2026, 7, 31)]


def test_cron_across_dst_runs_each_wall_clock_time_at_most_once() -> None:
    half_hourly = spec(
        schedule="cron", time=None, cron_expression="0,30 * * * *", timezone="America/New_York"
    )
    # Spring: 02:00 and 02:30 do not exist; both resolve to the jump (07:00 UTC), which runs once.
    assert runs(half_hourly, utc(2026, 3, 8, 6, 0), 3) == [
        utc(2026, 3, 8, 6, 30),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 7, 30),
    ]
    # Fall: 01:00 and 01:30 run in their first (EDT) occurrence only; the EST hour is skipped.
    assert runs(half_hourly, utc(2026, 11, 1, 4, 45), 4) == [
        utc(2026, 11, 1, 5, 0),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7, 0),  # 02:00 EST
        utc(2026, 11, 1, 7, 30),
    ]


def test_next_run_reads_a_stored_record_like_its_spec() -> None:
    record = make_record(
        "audit-sched-rec",
        schedule_type="weekly",
        day_of_week="sunday",
        time="23:30",
        timezone="Europe/Berlin",
    )
    assert next_run(record, utc(2026, 6, 1)) == next_run(ScheduleSpec.from_record(record), utc(2026, 6, 1))
    assert next_run(record, utc(2026, 6, 1)) == utc(2026, 6, 7, 21, 30)


# --- the service on SQLite -------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


class FakeScheduler:
    """Records what a SchedulerBackend was asked; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (action, schedule id, status)
        self.fail_on: str | None = None

    def _record(self, action: str, record: ScheduledAuditRecord) -> None:
        if self.fail_on == action:
            raise StoreError(f"fake scheduler refuses to {action}")  # any TagComplianceError
        self.calls.append((action, record.schedule_id, record.status))

    def create(self, record: ScheduledAuditRecord) -> str:
        self._record("create", record)
        return f"arn:aws:scheduler:us-east-1:123456789012:schedule/audits/{record.schedule_id}"

    def update(self, record: ScheduledAuditRecord) -> str:
        self._record("update", record)
        return f"arn:aws:scheduler:us-east-1:123456789012:schedule/audits/{record.schedule_id}"

    def delete(self, record: ScheduledAuditRecord) -> None:
        self._record("delete", record)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    sqlite_store = SqliteStore(tmp_path / "store.sqlite3")
    sqlite_store.migrate()
    try:
        yield sqlite_store
    finally:
        sqlite_store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 2, 9, 20))  # Monday 9 February 2026, 15:00 in New York


def make_record(schedule_id: str, **changes: Any) -> ScheduledAuditRecord:
    fields: dict[str, Any] = {
        "schedule_id": schedule_id,
        "schedule_type": "daily",
        "time": "09:00",
        "timezone": "UTC",
        "recipients": [EMAIL],
        "format": "email",
        "next_run": utc(2026, 2, 9, 9),
        "status": "active",
        "created_by": "test",
        "created_at": utc(2026, 1, 1),
        "updated_at": utc(2026, 1, 1),
        "resource_types": ["ec2:instance"],
        "regions": ["us-east-1"],
    }
    fields.update(changes)
    return ScheduledAuditRecord(**fields)


SPEC_EXAMPLE = {
    "schedule": "daily",
    "time": "09:00",
    "timezone": "America/New_York",
    "resource_types": ["ec2:instance", "rds:db"],
    "recipients": ["finops-team@company.com"],
    "format": "email",
}


def test_create_returns_the_spec_example_and_stores_the_schedule(
    store: SqliteStore, clock: FakeClock
) -> None:
    service = ScheduleService(store, clock=clock)

    result = service.create(SPEC_EXAMPLE, created_by="alice@example.com")

    assert (
        result.schedule_id.startswith("audit-sched-") and len(result.schedule_id) == len("audit-sched-") + 8
    )
    int(result.schedule_id.removeprefix("audit-sched-"), 16)
    dumped = result.model_dump(mode="json")
    assert dumped["next_run"] == "2026-02-10T09:00:00-05:00"
    assert dumped["next_run_utc"] == "2026-02-10T14:00:00Z"
    assert dumped["status"] == "active"
    assert dumped["description"] == "daily at 09:00 (America/New_York)"
    assert dumped["resource_types"] == ["ec2:instance", "rds:db"]
    stored = store.get_scheduled_audit(result.schedule_id)
    assert stored is not None
    assert (stored.next_run, stored.created_by, stored.created_at, stored.external_id) == (
        utc(2026, 2, 10, 14),
        "alice@example.com",
        clock.now,
        None,
    )
    assert service.get(result.schedule_id) == result
    # A ScheduleSpec works as well as a mapping; ids differ.
    assert service.create(ScheduleSpec(**SPEC_EXAMPLE)).schedule_id != result.schedule_id


def test_results_mask_slack_webhook_secrets_but_the_store_keeps_them(
    store: SqliteStore, clock: FakeClock
) -> None:
    result = ScheduleService(store, clock=clock).create(
        {**SPEC_EXAMPLE, "recipients": [EMAIL, WEBHOOK], "format": "both"}
    )

    assert result.recipients == [EMAIL, "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/****"]
    assert "abcdEFGH1234" not in result.model_dump_json()
    stored = store.get_scheduled_audit(result.schedule_id)
    assert stored is not None and stored.recipients == [EMAIL, WEBHOOK]


def test_unknown_schedule_ids_are_a_clear_error(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    for call in (
        service.get,
        service.pause,
        service.resume,
        service.delete,
        lambda sid: service.update(sid, {"time": "10:00"}),
    ):
        with pytest.raises(ScheduleNotFoundError, match="no scheduled audit 'audit-sched-nope'"):
            call("audit-sched-nope")


def test_invalid_input_changes_nothing(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    with pytest.raises(InvalidInputError, match="timezone"):
        service.create({**SPEC_EXAMPLE, "timezone": "New York"})
    assert store.list_scheduled_audits() == []

    created = service.create(SPEC_EXAMPLE)
    with pytest.raises(InvalidInputError, match="time: '25:00'"):
        service.update(created.schedule_id, {"time": "25:00"})
    assert service.get(created.schedule_id) == created


def test_update_changes_only_what_is_given(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    created = service.create(SPEC_EXAMPLE)
    clock.advance(timedelta(minutes=5))

    moved = service.update(created.schedule_id, {"time": "07:15"})
    assert moved.time == "07:15" and moved.next_run_utc == utc(2026, 2, 10, 12, 15)
    assert moved.resource_types == created.resource_types and moved.updated_at == clock.now

    # Recipients without a format: the format follows them.
    slack = service.update(created.schedule_id, {"recipients": [WEBHOOK]})
    assert slack.format == "slack" and slack.next_run == moved.next_run  # timing untouched

    # A new type drops the old type's timing fields.
    cron = service.update(created.schedule_id, {"schedule": "cron", "cron_expression": "0 6 * * MON"})
    assert (cron.schedule, cron.time, cron.cron_expression) == ("cron", None, "0 6 * * MON")
    assert cron.next_run_utc == utc(2026, 2, 16, 11)  # Monday 06:00 EST
    weekly = service.update(
        created.schedule_id, {"schedule": "weekly", "time": "08:00", "day_of_week": "wed"}
    )
    assert (weekly.day_of_week, weekly.cron_expression, weekly.next_run_utc) == (
        "wednesday",
        None,
        utc(2026, 2, 11, 13),
    )
    with pytest.raises(InvalidInputError, match="time: required for a monthly schedule"):
        service.update(created.schedule_id, {"schedule": "monthly"})
    with pytest.raises(InvalidInputError, match="bogus: is not a schedule parameter"):
        service.update(created.schedule_id, {"bogus": 1})


def test_pause_resume_delete_lifecycle(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    schedule_id = service.create(SPEC_EXAMPLE).schedule_id

    paused = service.pause(schedule_id)
    assert (paused.status, paused.next_run, paused.next_run_utc) == ("paused", None, None)
    assert service.pause(schedule_id) == paused  # idempotent
    assert store.due_scheduled_audits(utc(2030, 1, 1)) == []

    clock.advance(timedelta(days=3, hours=1))  # runs missed while paused are not made up
    resumed = service.resume(schedule_id)
    assert resumed.status == "active" and resumed.next_run_utc == utc(2026, 2, 13, 14)
    assert service.resume(schedule_id) == resumed

    deleted = service.delete(schedule_id)
    assert deleted.status == "deleted" and deleted.next_run is None
    assert service.delete(schedule_id) == deleted
    for call, verb in ((service.pause, "paused"), (service.resume, "resumed")):
        with pytest.raises(InvalidInputError, match=f"is deleted and cannot be {verb}"):
            call(schedule_id)
    with pytest.raises(InvalidInputError, match="is deleted; create a new one"):
        service.update(schedule_id, {"time": "10:00"})
    record = store.get_scheduled_audit(schedule_id)
    assert record is not None and record.status == "deleted"  # soft delete: the row stays


def test_list_hides_deleted_schedules_unless_asked(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    ids = []
    for _ in range(3):
        ids.append(service.create(SPEC_EXAMPLE).schedule_id)
        clock.advance(timedelta(seconds=1))  # listed oldest first
    service.pause(ids[1])
    service.delete(ids[2])

    assert [s.schedule_id for s in service.list().schedules] == ids[:2]
    assert service.list().total == 2
    assert [s.schedule_id for s in service.list("paused").schedules] == [ids[1]]
    assert [s.schedule_id for s in service.list("deleted").schedules] == [ids[2]]
    assert service.list("all").total == 3
    with pytest.raises(InvalidInputError, match="status must be one of"):
        service.list("sleeping")


def test_update_retries_when_a_run_is_claimed_meanwhile(store: SqliteStore, clock: FakeClock) -> None:
    """An edit never undoes a claimed run: the stale write is refused and redone on the new row."""
    service = ScheduleService(store, clock=clock)
    schedule_id = service.create(SPEC_EXAMPLE).schedule_id
    claimed_next = utc(2026, 2, 11, 14)
    real_update = store.update_scheduled_audit
    calls = []

    def update_after_a_claim(record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        if not calls:  # a replica claims the run between the service's read and its write
            assert store.claim_scheduled_run(schedule_id, utc(2026, 2, 10, 14), claimed_next, clock.now)
        calls.append(record)
        return real_update(record)

    store.update_scheduled_audit = update_after_a_claim  # type: ignore[method-assign]
    result = service.update(schedule_id, {"recipients": ["other@example.com"]})

    assert len(calls) == 2
    assert result.recipients == ["other@example.com"]
    assert result.next_run_utc == claimed_next  # not put back to the run already claimed
    stored = store.get_scheduled_audit(schedule_id)
    assert stored is not None and stored.last_run_status == "running"


def test_every_change_is_mirrored_to_the_scheduler_backend(store: SqliteStore, clock: FakeClock) -> None:
    scheduler = FakeScheduler()
    service = ScheduleService(store, scheduler, clock=clock)

    created = service.create(SPEC_EXAMPLE)
    sid = created.schedule_id
    assert created.external_id == f"arn:aws:scheduler:us-east-1:123456789012:schedule/audits/{sid}"
    service.update(sid, {"time": "10:00"})
    service.pause(sid)
    service.pause(sid)  # no change, no call
    service.resume(sid)
    service.delete(sid)

    assert scheduler.calls == [
        ("create", sid, "active"),
        ("update", sid, "active"),
        ("update", sid, "paused"),
        ("update", sid, "active"),
        ("delete", sid, "deleted"),
    ]


def test_a_scheduler_failure_leaves_the_store_unchanged(store: SqliteStore, clock: FakeClock) -> None:
    scheduler = FakeScheduler()
    service = ScheduleService(store, scheduler, clock=clock)
    sid = service.create(SPEC_EXAMPLE).schedule_id

    scheduler.fail_on = "update"
    with pytest.raises(StoreError, match="fake scheduler refuses to update"):
        service.pause(sid)
    assert service.get(sid).status == "active"

    scheduler.fail_on = "create"
    with pytest.raises(StoreError, match="refuses to create"):
        service.create(SPEC_EXAMPLE)
    assert len(store.list_scheduled_audits()) == 1


def test_a_store_failure_after_the_scheduler_changed_is_undone_there(
    store: SqliteStore, clock: FakeClock
) -> None:
    scheduler = FakeScheduler()
    service = ScheduleService(store, scheduler, clock=clock)
    sid = service.create(SPEC_EXAMPLE).schedule_id

    def broken(record: ScheduledAuditRecord) -> ScheduledAuditRecord:
        raise StoreError("disk full")

    store.update_scheduled_audit = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="disk full"):
        service.pause(sid)
    assert scheduler.calls[-2:] == [("update", sid, "paused"), ("update", sid, "active")]  # put back

    store.create_scheduled_audit = lambda record: (_ for _ in ()).throw(StoreError("disk full"))  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="disk full"):
        service.create(SPEC_EXAMPLE)
    action, created_id, _ = scheduler.calls[-2]
    assert action == "create" and scheduler.calls[-1] == ("delete", created_id, "active")


# --- run_due_schedules and the loop ----------------------------------------------------------


class AuditRunner:
    """A fake run_audit: counts calls, returns snapshot ids, fails for chosen schedules."""

    def __init__(self, fail_for: tuple[str, ...] = (), delay: float = 0.0) -> None:
        self.fail_for = fail_for
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, record: ScheduledAuditRecord) -> str:
        time.sleep(self.delay)
        with self._lock:
            self.calls.append(record.schedule_id)
            count = len(self.calls)
        if record.schedule_id in self.fail_for:
            raise RuntimeError(f"scan of {record.schedule_id} exploded")
        return f"snap-{count}"


def test_run_due_schedules_runs_what_is_due_and_moves_it_on(store: SqliteStore) -> None:
    now = utc(2026, 2, 9, 9, 0, 30)
    store.create_scheduled_audit(make_record("audit-sched-due", next_run=utc(2026, 2, 9, 9)))
    store.create_scheduled_audit(make_record("audit-sched-later", next_run=utc(2026, 2, 9, 10)))
    store.create_scheduled_audit(make_record("audit-sched-paused", status="paused"))
    runner = AuditRunner()

    fired = run_due_schedules(store, now, runner)

    assert runner.calls == ["audit-sched-due"]
    assert [(f.schedule_id, f.status, f.snapshot_id, f.error) for f in fired] == [
        ("audit-sched-due", "success", "snap-1", None)
    ]
    assert (fired[0].scheduled_for, fired[0].started_at, fired[0].next_run) == (
        utc(2026, 2, 9, 9),
        now,
        utc(2026, 2, 10, 9),
    )
    record = store.get_scheduled_audit("audit-sched-due")
    assert record is not None
    assert (record.next_run, record.last_run, record.last_run_status, record.last_snapshot_id) == (
        utc(2026, 2, 10, 9),
        now,
        "success",
        "snap-1",
    )
    assert run_due_schedules(store, now, runner) == []  # nothing due any more
    later = store.get_scheduled_audit("audit-sched-later")
    assert later is not None and later.last_run is None


def test_a_failing_audit_is_recorded_and_the_others_still_run(store: SqliteStore) -> None:
    for name in ("a", "b", "c"):
        store.create_scheduled_audit(make_record(f"audit-sched-{name}"))
    runner = AuditRunner(fail_for=("audit-sched-b",))

    fired = run_due_schedules(store, utc(2026, 2, 9, 12), runner)

    assert runner.calls == ["audit-sched-a", "audit-sched-b", "audit-sched-c"]
    assert [f.status for f in fired] == ["success", "error", "success"]
    assert fired[1].error == "RuntimeError: scan of audit-sched-b exploded" and fired[1].snapshot_id is None
    failed = store.get_scheduled_audit("audit-sched-b")
    assert failed is not None
    assert (failed.last_run_status, failed.last_error, failed.next_run) == (
        "error",
        "RuntimeError: scan of audit-sched-b exploded",
        utc(2026, 2, 10, 9),  # it still moves on: a failure does not make it fire every tick
    )


def test_missed_runs_are_made_up_once(store: SqliteStore) -> None:
    store.create_scheduled_audit(make_record("audit-sched-missed", next_run=utc(2026, 2, 1, 9)))
    runner = AuditRunner()

    fired = run_due_schedules(store, utc(2026, 2, 9, 12), runner)

    assert runner.calls == ["audit-sched-missed"]
    assert fired[0].next_run == utc(2026, 2, 10, 9)


def test_two_concurrent_ticks_fire_each_run_exactly_once(tmp_path: Path) -> None:
    # Two stores on one file: two gateway replicas sharing the database.
    replicas = [SqliteStore(tmp_path / "shared.sqlite3") for _ in range(2)]
    replicas[0].migrate()
    for n in range(6):
        replicas[0].create_scheduled_audit(make_record(f"audit-sched-{n}", next_run=utc(2026, 2, 9, 9, n)))
    runner = AuditRunner(delay=0.02)  # runs overlap with the other replica's claims
    start = threading.Barrier(2)
    results: list[list[Any]] = [[], []]

    def tick(index: int) -> None:
        start.wait()
        results[index] = run_due_schedules(replicas[index], utc(2026, 2, 9, 9, 30), runner)

    threads = [threading.Thread(target=tick, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert sorted(runner.calls) == [f"audit-sched-{n}" for n in range(6)]
        assert sorted(f.schedule_id for f in results[0] + results[1]) == sorted(runner.calls)
        assert all(r.next_run == utc(2026, 2, 10, 9) for r in replicas[0].list_scheduled_audits())
    finally:
        for replica in replicas:
            replica.close()


def test_a_schedule_that_cannot_be_computed_is_recorded_not_run(store: SqliteStore) -> None:
    store.create_scheduled_audit(make_record("audit-sched-broken", timezone="Atlantis/Capital"))
    store.create_scheduled_audit(make_record("audit-sched-fine"))
    runner = AuditRunner()

    fired = run_due_schedules(store, utc(2026, 2, 9, 12), runner)

    assert runner.calls == ["audit-sched-fine"]
    assert fired[0].status == "error" and "Atlantis/Capital" in (fired[0].error or "")
    assert fired[0].next_run == utc(2026, 2, 10, 12)  # tried again in a day, not every tick
    listed = ScheduleService(store).get("audit-sched-broken")  # still listable, its times shown in UTC
    assert listed.next_run == utc(2026, 2, 10, 12) and listed.last_run_status == "error"


def test_a_set_stop_event_starts_no_audit(store: SqliteStore) -> None:
    store.create_scheduled_audit(make_record("audit-sched-x"))
    stop = threading.Event()
    stop.set()
    assert run_due_schedules(store, utc(2026, 2, 9, 12), AuditRunner(), stop=stop) == []


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_local_loop_ticks_on_its_clock_and_stops_promptly(store: SqliteStore) -> None:
    clock = FakeClock(utc(2026, 2, 9, 8, 59))
    store.create_scheduled_audit(make_record("audit-sched-loop", next_run=utc(2026, 2, 9, 9)))
    runner = AuditRunner()
    loop = LocalSchedulerLoop(store, runner, interval_seconds=0.01, clock=clock)

    loop.start()
    loop.start()  # already running: no second thread
    try:
        wait_for(lambda: loop.ticks >= 3)
        assert runner.calls == []  # not due yet
        clock.advance(timedelta(minutes=1))
        wait_for(lambda: len(runner.calls) == 1)
        clock.advance(timedelta(days=1))
        wait_for(lambda: len(runner.calls) == 2)
        time.sleep(0.05)
        assert runner.calls == ["audit-sched-loop"] * 2  # once per due run, however many ticks
        assert [f.snapshot_id for f in loop.fired] == ["snap-1", "snap-2"]
    finally:
        assert loop.stop(timeout=5)
    assert not loop.running


def test_stop_does_not_wait_for_the_interval(store: SqliteStore) -> None:
    loop = LocalSchedulerLoop(store, AuditRunner(), interval_seconds=3600)
    loop.start()
    wait_for(lambda: loop.ticks == 1)

    started = time.monotonic()
    assert loop.stop(timeout=5)
    assert time.monotonic() - started < 1.0

    loop.start()  # can be started again
    wait_for(lambda: loop.ticks == 2)
    with loop:  # and used as a context manager (start is a no-op while running)
        pass
    assert not loop.running


def test_a_failing_tick_is_logged_and_the_loop_carries_on(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    real_due = store.due_scheduled_audits
    failures = []

    def flaky_due(now: datetime, limit: int = 100) -> list[ScheduledAuditRecord]:
        if not failures:
            failures.append(now)
            raise StoreError("database restarting")
        return real_due(now, limit)

    store.due_scheduled_audits = flaky_due  # type: ignore[method-assign]
    store.create_scheduled_audit(make_record("audit-sched-flaky"))
    runner = AuditRunner()
    loop = LocalSchedulerLoop(store, runner, interval_seconds=0.01, clock=lambda: utc(2026, 2, 9, 12))
    with caplog.at_level("ERROR", logger="tagcompliance.schedules"), loop:
        wait_for(lambda: runner.calls == ["audit-sched-flaky"])
    assert "tick failed" in caplog.text
    assert loop.last_tick_error is None  # recovered


def test_loop_interval_must_be_positive(store: SqliteStore) -> None:
    with pytest.raises(InvalidInputError, match="interval_seconds"):
        LocalSchedulerLoop(store, AuditRunner(), interval_seconds=0)


def test_records_round_trip_through_the_spec(store: SqliteStore, clock: FakeClock) -> None:
    service = ScheduleService(store, clock=clock)
    created = service.create(
        {**SPEC_EXAMPLE, "schedule": "monthly", "day_of_month": 31, "regions": ["eu-west-1"]}
    )
    record = store.get_scheduled_audit(created.schedule_id)
    assert record is not None
    again = ScheduleSpec.from_record(record)
    assert (again.schedule, again.day_of_month, again.regions, again.format) == (
        "monthly",
        31,
        ["eu-west-1"],
        "email",
    )
    assert replace(record, revision=0) == record  # created at revision 0
    assert (
        created.description
        == "monthly on day 31 at 09:00 (America/New_York); on the last day in shorter months"
    )


def test_a_machine_without_a_time_zone_database_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tagcompliance.schedules.timing._zone_names", dict)
    with pytest.raises(InvalidInputError, match=r"no IANA time zone database: install .* 'tzdata'"):
        spec(timezone="UTC")


def test_run_schedule_if_due_serves_eventbridge_deliveries_exactly_once(store: SqliteStore) -> None:
    store.create_scheduled_audit(make_record("audit-sched-eb", next_run=utc(2026, 2, 9, 9)))
    store.create_scheduled_audit(make_record("audit-sched-off", status="paused"))
    runner = AuditRunner()

    # Delivered a little early (clock skew): still this run, recorded as at its scheduled time.
    fired = run_schedule_if_due(store, "audit-sched-eb", utc(2026, 2, 9, 8, 59, 30), runner)
    assert fired is not None and (fired.status, fired.started_at, fired.next_run) == (
        "success",
        utc(2026, 2, 9, 9),
        utc(2026, 2, 10, 9),
    )
    # EventBridge delivers at least once: the repeat finds the run claimed.
    assert run_schedule_if_due(store, "audit-sched-eb", utc(2026, 2, 9, 9, 0, 40), runner) is None
    assert runner.calls == ["audit-sched-eb"]
    assert run_schedule_if_due(store, "audit-sched-eb", utc(2026, 2, 10, 8, 50), runner) is None  # too early
    assert run_schedule_if_due(store, "audit-sched-off", utc(2026, 2, 10), runner) is None
    assert run_schedule_if_due(store, "audit-sched-none", utc(2026, 2, 10), runner) is None
    # A day EventBridge skipped (spring forward) leaves next_run behind; the next delivery catches up.
    assert run_schedule_if_due(store, "audit-sched-eb", utc(2026, 2, 11, 9), runner) is not None
    record = store.get_scheduled_audit("audit-sched-eb")
    assert record is not None and record.next_run == utc(2026, 2, 12, 9)

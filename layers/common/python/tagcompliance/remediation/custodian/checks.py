"""Argument checks for the generator: schedule, violation types, targets, placeholders, mark days."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from tagcompliance.compliance import VIOLATION_TYPES
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import RequiredTag, TaggingPolicy

from .models import MAX_MARK_DAYS, MAX_TAG_VALUE_LENGTH, MIN_MARK_DAYS

_RATE = re.compile(r"^rate\((?P<count>[1-9]\d*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(\S+( \S+){5}\)$")


def check_schedule(mode: str, schedule: str | None) -> None:
    if schedule is None:
        return
    if mode != "periodic":
        raise InvalidInputError(f"schedule is only used with mode 'periodic', not with mode {mode!r}")
    rate = _RATE.match(schedule)
    if rate:
        singular = rate["count"] == "1"
        if singular != (not rate["unit"].endswith("s")):
            raise InvalidInputError(
                f"schedule {schedule!r}: use a singular unit for 1 and a plural one otherwise, "
                "e.g. 'rate(1 day)' or 'rate(12 hours)'"
            )
        return
    if not _CRON.match(schedule):
        raise InvalidInputError(
            f"schedule {schedule!r} is not an EventBridge schedule expression: "
            "expected 'rate(N unit)' such as 'rate(1 day)', or 'cron(...)' with six fields"
        )


def resolve_violations(requested: Sequence[str] | None) -> list[str]:
    values = list(dict.fromkeys(requested or []))
    if not values:
        return list(VIOLATION_TYPES)
    unknown = [value for value in values if value not in VIOLATION_TYPES]
    if unknown:
        raise InvalidInputError(
            f"unknown violation type(s): {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(VIOLATION_TYPES)}"
        )
    return [value for value in VIOLATION_TYPES if value in values]


def resolve_targets(policy: TaggingPolicy, requested: Sequence[str] | None) -> list[RequiredTag]:
    by_name = {tag.name: tag for tag in policy.required_tags}
    values = list(dict.fromkeys(requested or []))
    if not values:
        return list(policy.required_tags)
    unknown = [value for value in values if value not in by_name]
    if unknown:
        hints = []
        for value in unknown:
            same = [name for name in by_name if name.lower() == value.lower()]
            hints.append(f"{value!r} (did you mean {same[0]!r}?)" if same else repr(value))
        raise InvalidInputError(
            f"target tag(s) {', '.join(hints)} are not required tags of the policy; "
            f"required tags: {', '.join(by_name) or 'none'} (tag keys are case-sensitive)"
        )
    return [tag for tag in policy.required_tags if tag.name in values]


def check_placeholders(
    placeholders: Mapping[str, str] | None, targets: Sequence[RequiredTag]
) -> dict[str, str]:
    if not placeholders:
        return {}
    by_name = {tag.name: tag for tag in targets}
    result: dict[str, str] = {}
    for key, value in placeholders.items():
        tag = by_name.get(key)
        if tag is None:
            raise InvalidInputError(
                f"placeholder for {key!r}, which is not a targeted tag; "
                f"targeted tags: {', '.join(by_name) or 'none'}"
            )
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(
                f"placeholder for {key!r} is empty: an empty or whitespace value counts as missing"
            )
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise InvalidInputError(
                f"placeholder for {key!r} is {len(value)} characters long; AWS allows at most "
                f"{MAX_TAG_VALUE_LENGTH}"
            )
        problem = tag.rejection(value)
        if problem:
            raise InvalidInputError(f"placeholder {value!r} for {key!r} {problem}")
        result[key] = value
    return result


def check_mark_days(days: int | None) -> None:
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_MARK_DAYS <= days <= MAX_MARK_DAYS:
        raise InvalidInputError(
            f"mark_for_op_days must be a whole number of days from {MIN_MARK_DAYS} to {MAX_MARK_DAYS}, "
            f"got {days!r}"
        )

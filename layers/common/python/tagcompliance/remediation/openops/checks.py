"""Argument checks: the cron trigger, threshold, name, tag values; batching ARNs for TagResources."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import RequiredTag, TaggingPolicy
from tagcompliance.resources import parse_arn

from .models import TAG_RESOURCES_LIMIT

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")
# AWS tag values: letters, digits, white space and _ . : / = + - @ (at most 256 characters).
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]*")
# Python-only regular-expression syntax that a JavaScript RegExp reads differently or rejects.
PY_ONLY_REGEX = re.compile(r"\\[AZz]|\(\?[aiLmsux]+[):]|\(\?#")


def check_cron(expression: str) -> str:
    """A 5-field cron expression, as OpenOps's cron trigger validates it (numbers, no names)."""
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInputError(
            f"cron_expression {expression!r} has {len(fields)} field(s); expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 6 * * *'"
        )
    for (label, low, high), field in zip(_CRON_FIELDS, fields, strict=True):
        for part in field.split(","):
            match = _CRON_PART.fullmatch(part)
            if match is None:
                raise InvalidInputError(
                    f"cron_expression {expression!r}: {label} field {field!r} is not valid; "
                    "use numbers, *, ranges a-b, lists a,b and steps /n"
                )
            base, step = match.groups()
            if step is not None and int(step) == 0:
                raise InvalidInputError(f"cron_expression {expression!r}: {label} step must be at least 1")
            if base != "*":
                first, _, last = base.partition("-")
                start, end = int(first), int(last or first)
                if not (low <= start <= high and low <= end <= high) or start > end:
                    raise InvalidInputError(
                        f"cron_expression {expression!r}: {label} value {base!r} is outside {low}-{high}"
                    )
    return " ".join(fields)


def check_threshold(trigger: str, threshold: float | None) -> float | None:
    if trigger == "schedule":
        if threshold is not None:
            raise InvalidInputError("threshold applies only to trigger 'compliance_score_below'")
        return None
    if threshold is None:
        raise InvalidInputError(
            "trigger 'compliance_score_below' needs a threshold between 0 and 1 (e.g. 0.8 for 80%)"
        )
    return float(threshold)  # the request model keeps it within 0..1


def check_name(name: str) -> str:
    if not name.strip():
        raise InvalidInputError("name must be a non-empty string")
    return name.strip()


def check_tag_values(
    policy: TaggingPolicy, types: Sequence[str], tag_values: Mapping[str, str] | None
) -> dict[str, str]:
    """Tag values for auto_tag: explicit, for required tags only, each valid under the policy."""
    if not tag_values:
        raise InvalidInputError(
            "auto_tag needs explicit tag_values (tag key -> value) for the required tags to set; "
            "values are never guessed"
        )
    required = {tag.name: tag for type_id in types for tag in policy.required_for(type_id)}
    by_lower = {key.lower(): key for key in required}
    checked: dict[str, str] = {}
    for key, value in tag_values.items():
        if key not in required:
            if key.lower() in by_lower:
                raise InvalidInputError(
                    f"tag_values key {key!r} does not match the required tag {by_lower[key.lower()]!r}: "
                    "tag keys are case-sensitive"
                )
            if any(tag.name == key for tag in policy.required_tags):
                raise InvalidInputError(
                    f"tag {key!r} is required by the policy, but not for {', '.join(types)}"
                )
            required_names = ", ".join(sorted(required)) or "none"
            raise InvalidInputError(
                f"tag_values key {key!r} is not a required tag of the policy for {', '.join(types)} "
                f"(required: {required_names}); auto_tag only sets required tags"
            )
        checked[key] = _check_tag_value(required[key], value)
    return checked


def _check_tag_value(tag: RequiredTag, value: str) -> str:
    if not value.strip():
        raise InvalidInputError(
            f"tag_values[{tag.name!r}] is empty; an empty value does not satisfy the policy"
        )
    if value != value.strip():
        raise InvalidInputError(f"tag_values[{tag.name!r}] has leading or trailing whitespace: {value!r}")
    if len(value) > 256 or not _TAG_VALUE.fullmatch(value):
        raise InvalidInputError(
            f"tag_values[{tag.name!r}] = {value!r} is not a valid AWS tag value "
            "(at most 256 letters, digits, spaces and _ . : / = + - @)"
        )
    problem = tag.rejection(value)
    if problem:
        raise InvalidInputError(f"tag_values[{tag.name!r}] = {value!r} {problem}")
    return value


class ArnBatch(BaseModel):
    account_id: str
    region: str
    tags: dict[str, str]
    arns: list[str]


def arn_batches(
    policy: TaggingPolicy,
    types: Sequence[str],
    values: Mapping[str, str],
    resource_arns: Sequence[str],
    notes: list[str],
) -> list[ArnBatch]:
    """Group the ARNs by account, region and tag set, in chunks of at most 20 (TagResources)."""
    arns = list(dict.fromkeys(resource_arns))
    if not arns:
        raise InvalidInputError("resource_arns is empty: omit it to tag every non-compliant resource found")
    if len(arns) < len(resource_arns):
        notes.append(f"{len(resource_arns) - len(arns)} duplicate ARN(s) in resource_arns were dropped.")
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[str]] = {}
    for arn in arns:
        parsed = parse_arn(arn)
        if parsed.resource_type not in types:
            raise InvalidInputError(
                f"ARN {arn!r} is a {parsed.resource_type}, which is not among the requested "
                f"resource types ({', '.join(types)})"
            )
        required = {tag.name for tag in policy.required_for(parsed.resource_type)}
        tags = tuple((key, value) for key, value in values.items() if key in required)
        if not tags:
            raise InvalidInputError(
                f"ARN {arn!r}: the policy requires none of {', '.join(values)} for "
                f"{parsed.resource_type}, so there is nothing to set on it"
            )
        groups.setdefault((parsed.account_id, parsed.region, tags), []).append(arn)
    return [
        ArnBatch(
            account_id=account, region=region, tags=dict(tags), arns=members[i : i + TAG_RESOURCES_LIMIT]
        )
        for (account, region, tags), members in groups.items()
        for i in range(0, len(members), TAG_RESOURCES_LIMIT)
    ]


def default_workflow_name(strategy: str, types: Sequence[str], requested: Sequence[str] | None) -> str:
    action = "Auto-tag" if strategy == "auto_tag" else "Report"
    if not requested or list(requested) == ["all"]:
        scope = "all resource types"
    elif len(types) <= 3:
        scope = ", ".join(types)
    else:
        scope = f"{len(types)} resource types"
    return f"Tag compliance - {action} ({scope})"

"""The compliance engine: a pure function from (resources, policy) to violations and a score.

No I/O, no pydantic and no logging in the hot path: the engine evaluates a million resources a
second on one core. Each (resource, required tag) pair yields at most one violation, in this
order of precedence: missing_tag, wrong_key_case, invalid_value, invalid_format.

Allowed values may hold ``*`` wildcards (AWS tag-policy syntax). They are compiled once per
policy into a frozenset of the exact values and one matcher for the wildcard ones; the matcher runs
only for a value the set does not hold, and a policy without wildcards has no matcher at all.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .policy import RequiredTag, TaggingPolicy, allowed_value_matcher

ViolationType = Literal["missing_tag", "wrong_key_case", "invalid_value", "invalid_format", "prohibited_tag"]
Severity = Literal["error", "warning"]

VIOLATION_TYPES: tuple[str, ...] = (
    "missing_tag",
    "wrong_key_case",
    "invalid_value",
    "invalid_format",
    "prohibited_tag",
)
# Wrong key case is an error: Cost Explorer groups tag keys case-sensitively, so spend under
# "environment" is not attributed to "Environment".
SEVERITY: dict[str, Severity] = {
    "missing_tag": "error",
    "wrong_key_case": "error",
    "invalid_value": "error",
    "invalid_format": "error",
    "prohibited_tag": "warning",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """One AWS resource with the tags it carries."""

    arn: str
    resource_type: str
    region: str
    account_id: str
    resource_id: str
    tags: dict[str, str]
    name: str | None = None
    vpc_id: str | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    resource_arn: str
    resource_type: str
    region: str
    violation_type: str
    tag_key: str
    current_value: str | None
    severity: str
    actual_key: str | None = None  # the key as found on the resource, for wrong_key_case


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    lower: str
    allowed: frozenset[str] | None  # the exact allowed values; None when any value is allowed
    allowed_match: Callable[[str], bool] | None  # the wildcard allowed values, if there are any
    matches: Callable[[str], object] | None


@dataclass(slots=True)
class CompiledPolicy:
    """Rules per resource type, built once per policy so evaluation does no policy lookups."""

    rules: dict[str, tuple[_Rule, ...]]
    prohibited: frozenset[str]

    def rules_for(self, resource_type: str) -> tuple[_Rule, ...]:
        return self.rules.get(resource_type, ())


def _compile_rule(tag: RequiredTag) -> _Rule:
    allowed: frozenset[str] | None = None
    allowed_match: Callable[[str], bool] | None = None
    if tag.allowed_values:
        allowed, allowed_match = allowed_value_matcher(tag.allowed_values)
    return _Rule(
        name=tag.name,
        lower=tag.name.lower(),
        allowed=allowed,
        allowed_match=allowed_match,
        matches=re.compile(tag.validation_regex).fullmatch if tag.validation_regex else None,
    )


def compile_policy(policy: TaggingPolicy, resource_types: Iterable[str]) -> CompiledPolicy:
    compiled = {tag.name: _compile_rule(tag) for tag in policy.required_tags}
    rules: dict[str, tuple[_Rule, ...]] = {}
    for resource_type in resource_types:
        rules[resource_type] = tuple(compiled[tag.name] for tag in policy.required_for(resource_type))
    return CompiledPolicy(rules=rules, prohibited=frozenset(policy.prohibited_tags))


@dataclass(slots=True)
class Evaluation:
    """Violations and the counts a score is built from."""

    violations: list[Violation] = field(default_factory=list)
    scanned: int = 0  # resources the policy has requirements for
    compliant: int = 0
    without_requirements: int = 0  # resources of types no required tag applies to
    noncompliant_arns: set[str] = field(default_factory=set)

    @property
    def compliance_score(self) -> float | None:
        return round(self.compliant / self.scanned, 4) if self.scanned else None


def evaluate(resources: Iterable[Resource], compiled: CompiledPolicy) -> Evaluation:
    """Apply the policy to every resource. Pure: same input, same output."""
    result = Evaluation()
    violations = result.violations
    append = violations.append
    prohibited = compiled.prohibited
    rules_by_type = compiled.rules
    for resource in resources:
        rules = rules_by_type.get(resource.resource_type, ())
        if not rules and not prohibited:
            result.without_requirements += 1
            continue
        result.scanned += 1
        tags = resource.tags
        before = len(violations)
        lowered: dict[str, str] | None = None
        for rule in rules:
            value = tags.get(rule.name)
            if value is None:
                if lowered is None:
                    lowered = {key.lower(): key for key in tags}
                actual = lowered.get(rule.lower)
                if actual is not None and tags[actual].strip():
                    append(
                        Violation(
                            resource.arn,
                            resource.resource_type,
                            resource.region,
                            "wrong_key_case",
                            rule.name,
                            tags[actual],
                            "error",
                            actual,
                        )
                    )
                else:
                    append(
                        Violation(
                            resource.arn,
                            resource.resource_type,
                            resource.region,
                            "missing_tag",
                            rule.name,
                            None,
                            "error",
                        )
                    )
            elif not value.strip():
                append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "missing_tag",
                        rule.name,
                        value,
                        "error",
                    )
                )
            elif (
                rule.allowed is not None
                and value not in rule.allowed
                and (rule.allowed_match is None or not rule.allowed_match(value))
            ):
                append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "invalid_value",
                        rule.name,
                        value,
                        "error",
                    )
                )
            elif rule.matches is not None and rule.matches(value) is None:
                append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "invalid_format",
                        rule.name,
                        value,
                        "error",
                    )
                )
        if prohibited:
            for key in prohibited.intersection(tags):
                append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "prohibited_tag",
                        key,
                        tags[key],
                        "warning",
                    )
                )
        if len(violations) == before:
            result.compliant += 1
        else:
            result.noncompliant_arns.add(resource.arn)
    return result


def missing_tags_by_resource(violations: Sequence[Violation]) -> dict[str, list[str]]:
    """Required tag keys absent (or empty) per resource ARN: what "untagged" means."""
    missing: dict[str, list[str]] = {}
    for violation in violations:
        if violation.violation_type == "missing_tag":
            missing.setdefault(violation.resource_arn, []).append(violation.tag_key)
    return missing


def count_by(violations: Iterable[Violation], attribute: str) -> dict[str, int]:
    return dict(Counter(getattr(violation, attribute) for violation in violations))

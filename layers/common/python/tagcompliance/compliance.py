"""The compliance engine: a pure function from (resources, policy) to violations and a score.

No I/O, no pydantic and no logging in the hot path: the engine evaluates a million resources a
second on one core. Each (resource, required tag) pair yields at most one violation, in this
order of precedence: missing_tag, wrong_key_case, invalid_value, invalid_format; then one
``prohibited_tag`` warning per prohibited key present, in key order.

Two things make it fast, and neither changes a result:

- Estates repeat themselves: thousands of resources of one type carry the same tag map. The rules
  run once per distinct (resource type, tag map) pair; the findings, plain tuples, are shared by
  every resource with that map (a bounded memo, so memory stays flat on estates where every
  map is distinct).
- A ``Violation`` object is built only when someone reads it. An ``Evaluation`` keeps one
  (resource, findings) pair per noncompliant resource; counts, pages and streamed exports are
  served from those pairs, and ``violations`` materialises the full list only on first use.

The plain loop the fast path must always equal lives with the tests (``tests/compliance_reference.py``),
which check it over random policies and tag maps.

Allowed values may hold ``*`` wildcards (AWS tag-policy syntax). They are compiled once per
policy into a frozenset of the exact values and one matcher for the wildcard ones; the matcher runs
only for a value the set does not hold, and a policy without wildcards has no matcher at all.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import Field

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


# A slots dataclass: nearly as cheap to build as a tuple (which matters at a million violations),
# and pydantic serialises it as an object, so the tools answer this very type.
@dataclass(slots=True)
class Violation:
    """One broken rule on one resource."""

    resource_arn: str
    resource_type: str
    region: str
    violation_type: str
    tag_key: str
    current_value: str | None
    severity: str
    actual_key: Annotated[str | None, Field(description="The key as found, for wrong_key_case.")] = None
    expected: Annotated[str | None, Field(description="What the policy accepts for this tag.")] = None

    def explained(self, policy: TaggingPolicy) -> Violation:
        """This violation as the tools answer it: with what ``policy`` accepts for its tag."""
        return replace(self, expected=policy.expectation(self.tag_key, self.violation_type))


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


# One finding: (violation_type, tag_key, current_value, severity, actual_key), the fields a
# Violation adds to its resource's (arn, resource_type, region), in that order.
Finding = tuple[str, str, "str | None", str, "str | None"]
Findings = tuple[Finding, ...]
MEMO_LIMIT = 65_536  # distinct tag maps remembered per resource type before the memo starts over


class Evaluation:
    """Violations and the counts a score is built from.

    ``flagged_resources`` and ``flagged_findings`` are parallel lists, one entry per noncompliant
    resource in input order (two lists, not a list of pairs: a million pairs would be a million
    objects for the garbage collector to walk). ``violations`` (materialised once, on first use),
    ``iter_violations`` and ``page`` turn them into ``Violation`` objects, in the order the
    reference loop gives.
    """

    __slots__ = (
        "_counts",
        "_noncompliant",
        "_violations",
        "compliant",
        "flagged_findings",
        "flagged_resources",
        "scanned",
        "violation_count",
        "without_requirements",
    )

    def __init__(
        self,
        flagged_resources: list[Resource] | None = None,
        flagged_findings: list[Findings] | None = None,
        scanned: int = 0,
        compliant: int = 0,
        without_requirements: int = 0,
        violation_count: int | None = None,
    ) -> None:
        self.flagged_resources: list[Resource] = flagged_resources if flagged_resources is not None else []
        self.flagged_findings: list[Findings] = flagged_findings if flagged_findings is not None else []
        if len(self.flagged_resources) != len(self.flagged_findings):
            raise ValueError("flagged_resources and flagged_findings must be parallel lists")
        self.scanned = scanned  # resources the policy has requirements for
        self.compliant = compliant
        self.without_requirements = without_requirements  # resources of types no required tag applies to
        self.violation_count = (
            violation_count if violation_count is not None else sum(map(len, self.flagged_findings))
        )
        self._violations: list[Violation] | None = None
        self._noncompliant: set[str] | None = None
        self._counts: dict[str, dict[str, int]] = {}

    @property
    def compliance_score(self) -> float | None:
        return round(self.compliant / self.scanned, 4) if self.scanned else None

    def iter_violations(self, severities: frozenset[str] | set[str] | None = None) -> Iterator[Violation]:
        """Every violation (or those of the given severities), built one at a time: nothing is kept."""
        for resource, findings in zip(self.flagged_resources, self.flagged_findings, strict=True):
            head = (resource.arn, resource.resource_type, resource.region)
            for finding in findings:
                if severities is None or finding[3] in severities:
                    yield Violation(*head, *finding)

    @property
    def violations(self) -> list[Violation]:
        """Every violation as a list (built on first use and kept: prefer ``iter_violations``)."""
        if self._violations is None:
            self._violations = list(self.iter_violations())
        return self._violations

    def page(
        self, offset: int, limit: int, severities: frozenset[str] | set[str] | None = None
    ) -> list[Violation]:
        """Violations ``offset .. offset + limit`` (of the given severities), building only those."""
        page: list[Violation] = []
        if limit <= 0:
            return page
        position = 0
        for resource, findings in zip(self.flagged_resources, self.flagged_findings, strict=True):
            if severities is None:
                if position + len(findings) <= offset:
                    position += len(findings)
                    continue
                selected: Iterable[Finding] = findings
            else:
                selected = [f for f in findings if f[3] in severities]
            for finding in selected:
                if position >= offset:
                    page.append(Violation(resource.arn, resource.resource_type, resource.region, *finding))
                    if len(page) == limit:
                        return page
                position += 1
        return page

    @property
    def noncompliant_arns(self) -> set[str]:
        if self._noncompliant is None:
            self._noncompliant = {resource.arn for resource in self.flagged_resources}
        return self._noncompliant

    def counts(self, attribute: str) -> dict[str, int]:
        """Violations per value of ``attribute``: a resource one (resource_type, region) or a
        violation one (violation_type, tag_key, severity), counted without building violations."""
        cached = self._counts.get(attribute)
        if cached is not None:
            return dict(cached)
        counter: Counter[str] = Counter()
        if attribute in _FINDING_FIELDS:
            index = _FINDING_FIELDS[attribute]
            for findings in self.flagged_findings:
                for finding in findings:
                    counter[finding[index]] += 1  # type: ignore[index]
        else:
            for resource, findings in zip(self.flagged_resources, self.flagged_findings, strict=True):
                counter[getattr(resource, attribute)] += len(findings)
        self._counts[attribute] = dict(counter)
        return dict(counter)


_FINDING_FIELDS = {"violation_type": 0, "tag_key": 1, "current_value": 2, "severity": 3, "actual_key": 4}


def _findings(tags: dict[str, str], rules: tuple[_Rule, ...], prohibited: frozenset[str]) -> Findings:
    """What the rules say about one tag map: the reference semantics, as tuples."""
    found: list[Finding] = []
    lowered: dict[str, str] | None = None
    for rule in rules:
        value = tags.get(rule.name)
        if value is None:
            if lowered is None:
                lowered = {key.lower(): key for key in tags}
            actual = lowered.get(rule.lower)
            if actual is not None and tags[actual].strip():
                found.append(("wrong_key_case", rule.name, tags[actual], "error", actual))
            else:
                found.append(("missing_tag", rule.name, None, "error", None))
        elif not value.strip():
            found.append(("missing_tag", rule.name, value, "error", None))
        elif (
            rule.allowed is not None
            and value not in rule.allowed
            and (rule.allowed_match is None or not rule.allowed_match(value))
        ):
            found.append(("invalid_value", rule.name, value, "error", None))
        elif rule.matches is not None and rule.matches(value) is None:
            found.append(("invalid_format", rule.name, value, "error", None))
    if prohibited:
        for key in sorted(prohibited.intersection(tags)):
            found.append(("prohibited_tag", key, tags[key], "warning", None))
    return tuple(found)


def evaluate(resources: Iterable[Resource], compiled: CompiledPolicy) -> Evaluation:
    """Apply the policy to every resource. Pure: same input, same output (see the module's notes)."""
    prohibited = compiled.prohibited
    rules_by_type = compiled.rules
    # Per resource type: its rules and a memo from tag map (as a tuple of items) to findings.
    by_type: dict[str, tuple[tuple[_Rule, ...], dict[tuple[tuple[str, str], ...], Findings]] | None] = {}
    flagged_resources: list[Resource] = []
    flagged_findings: list[Findings] = []
    flag_resource = flagged_resources.append
    flag_findings = flagged_findings.append
    total = without_requirements = violation_count = 0
    for resource in resources:
        total += 1
        resource_type = resource.resource_type
        try:
            state = by_type[resource_type]
        except KeyError:
            rules = rules_by_type.get(resource_type, ())
            state = by_type[resource_type] = (rules, {}) if rules or prohibited else None
        if state is None:
            without_requirements += 1
            continue
        tags = resource.tags
        key = tuple(tags.items())
        memo = state[1]
        findings = memo.get(key)
        if findings is None:
            findings = _findings(tags, state[0], prohibited)
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[key] = findings
        if findings:
            flag_resource(resource)
            flag_findings(findings)
            violation_count += len(findings)
    scanned = total - without_requirements
    compliant = scanned - len(flagged_resources)
    return Evaluation(
        flagged_resources, flagged_findings, scanned, compliant, without_requirements, violation_count
    )


def missing_tags_by_resource(violations: Iterable[Violation]) -> dict[str, list[str]]:
    """Required tag keys absent (or empty) per resource ARN: what "untagged" means."""
    missing: dict[str, list[str]] = {}
    for violation in violations:
        if violation.violation_type == "missing_tag":
            missing.setdefault(violation.resource_arn, []).append(violation.tag_key)
    return missing


def count_by(violations: Iterable[Violation], attribute: str) -> dict[str, int]:
    return dict(Counter(getattr(violation, attribute) for violation in violations))

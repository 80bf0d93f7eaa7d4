"""Tag suggestions: likely values for a resource's missing or invalid required tags, with evidence.

Pure: no I/O. Evidence comes from the resource itself (a wrong-cased key, a near-miss value, the
tokens of its name and id) and from the population around it: resources in the same
CloudFormation stack, with the same name prefix, in the same VPC, and of the same type in the same
account. Only values the policy accepts and that appear in the evidence are suggested: nothing is
invented.

Confidence. Each piece of evidence gives one candidate value a weight below 1 (the ``WEIGHT_*``
constants; a sibling group scales its weight by the value's share among the siblings that carry a
valid value, and by ``n / (n + 1)`` for n siblings carrying it, so one is weaker than seven). A
value's support is the noisy-OR of its weights, ``1 - prod(1 - w)``: agreeing sources raise it and
no single source reaches 1. The suggested value is the best-supported one; its confidence is its
support times ``1 - 0.5 * (best competing value's support)``, so conflicting evidence lowers it,
capped at 0.99. Below 0.2 the tag is reported without a suggestion, naming the weak candidate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import prod
from typing import Literal

from pydantic import BaseModel, Field

from .compliance import Resource, Violation, compile_policy, evaluate
from .policy import RequiredTag, TaggingPolicy

STACK_TAG = "aws:cloudformation:stack-name"

Issue = Literal["missing_tag", "wrong_key_case", "invalid_value", "invalid_format"]
EvidenceSource = Literal[
    "wrong_case_key",
    "current_value",
    "name_token",
    "same_stack",
    "same_name_prefix",
    "same_vpc",
    "account_type_majority",
]

WEIGHT_WRONG_CASE_KEY = 0.9  # the right value is already there, under a key that differs in case
WEIGHT_NORMALISED_VALUE = 0.7  # the current value differs from an allowed one in case, spacing or alias
WEIGHT_NAME_VALUE = 0.6  # an allowed value appears among the tokens of the name or id
WEIGHT_NAME_ALIAS = 0.5  # an abbreviation of an allowed value does ("prd" for production)
WEIGHT_SAME_STACK = 0.8  # stacks are deployed as one unit, usually with one set of tags
WEIGHT_SAME_NAME_PREFIX = 0.7
WEIGHT_SAME_VPC = 0.5  # a VPC often hosts several applications
WEIGHT_ACCOUNT_TYPE = 0.3  # weak: what most resources of this type in the account carry
CONFLICT_PENALTY = 0.5
MAX_CONFIDENCE = 0.99
MIN_CONFIDENCE = 0.2  # below this a suggestion is noise: report the tag as without one
CONFIDENCE_METHOD = (
    "support(v) = 1 - prod(1 - w) over the evidence weights for v; "
    "confidence = support(best) * (1 - 0.5 * support(best competitor)), at most 0.99; "
    "below 0.2 no suggestion is made"
)

# Spellings of deployment stages in names; each maps to whichever member the policy allows.
_STAGE_ALIASES: tuple[frozenset[str], ...] = (
    frozenset({"production", "prod", "prd", "live"}),
    frozenset({"staging", "stage", "stg"}),
    frozenset({"development", "dev"}),
    frozenset({"test", "testing", "tst", "qa"}),
)
_STAGE_TOKENS = frozenset().union(*_STAGE_ALIASES)
# Words of a name: camelCase humps, runs of capitals, runs of digits ("PaymentsProd01" -> 3 tokens).
_NAME_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NAME_SEPARATOR = re.compile(r"[-_.:/ ]+")
# A trailing part that numbers copies or places rather than names the application: "01", "prod01",
# "use1", "az2".
_TRAILING_INDEX = re.compile(r"^[a-z]{0,4}\d+$")
_MIN_PREFIX_LENGTH = 3


class TagSuggestion(BaseModel):
    tag_key: str
    issue: Issue
    current_value: str | None = Field(description="The value found on the resource, if any.")
    current_key: str | None = Field(
        default=None, description="For wrong_key_case: the key as found on the resource, to be replaced."
    )
    suggested_value: str
    confidence: float = Field(ge=0, le=1)
    reasons: list[str]
    sources: list[EvidenceSource]


class NoSuggestion(BaseModel):
    tag_key: str
    issue: Issue
    current_value: str | None
    reason: str


class TagSuggestions(BaseModel):
    resource_arn: str
    resource_type: str
    suggestions: list[TagSuggestion] = Field(description="Highest confidence first.")
    no_suggestion: list[NoSuggestion]
    compliant_tags: list[str] = Field(description="Required tags the resource already carries correctly.")
    confidence_method: str = CONFIDENCE_METHOD


@dataclass(frozen=True, slots=True)
class _Evidence:
    source: EvidenceSource
    value: str
    weight: float
    reason: str


@dataclass(frozen=True, slots=True)
class _SiblingGroup:
    source: EvidenceSource
    weight: float
    description: str  # completes "N of M resources ..."
    members: tuple[Resource, ...]


def is_valid_value(tag: RequiredTag, value: str) -> bool:
    """Whether the policy accepts ``value`` for ``tag``: non-blank, allowed, and matching the regex."""
    if not value.strip():
        return False
    return tag.rejection(value) is None


def _concrete_allowed_values(tag: RequiredTag) -> list[str]:
    """Allowed values that can be suggested as they are: a wildcard entry ("300*") is a pattern."""
    return [value for value in tag.allowed_values or [] if "*" not in value]


def _name_tokens(text: str) -> list[str]:
    """Lower-cased words of a name or id, split at separators, case humps and digit runs."""
    return [token.lower() for token in _NAME_TOKEN.findall(text)]


def name_prefix(name: str) -> str | None:
    """The name without trailing index and stage parts: "payments-api-prod-01" -> "payments-api"."""
    parts = [part for part in _NAME_SEPARATOR.split(name.lower()) if part]
    while parts and (parts[-1] in _STAGE_TOKENS or _TRAILING_INDEX.match(parts[-1])):
        parts.pop()
    prefix = "-".join(parts)
    return prefix if len(prefix) >= _MIN_PREFIX_LENGTH else None


def _stage_alias(tag: RequiredTag, token: str) -> str | None:
    """The allowed value that ``token`` abbreviates ("prd" -> "production"), when the policy allows one."""
    for aliases in _STAGE_ALIASES:
        if token in aliases:
            return next(
                (
                    value
                    for value in _concrete_allowed_values(tag)
                    if value.lower() in aliases and is_valid_value(tag, value)
                ),
                None,
            )
    return None


def _normalised(tag: RequiredTag, value: str) -> str | None:
    """An accepted value that ``value`` spells differently (case, spacing, a stage abbreviation)."""
    stripped = value.strip()
    for allowed in _concrete_allowed_values(tag):
        if allowed.lower() == stripped.lower() and is_valid_value(tag, allowed):
            return allowed
    if tag.allowed_values is None:  # only a regex constrains it: try the spellings that differ in case
        return next(
            (v for v in (stripped, stripped.upper(), stripped.lower()) if is_valid_value(tag, v)), None
        )
    tokens = _name_tokens(stripped)
    return _stage_alias(tag, tokens[0]) if len(tokens) == 1 else None


def _own_evidence(tag: RequiredTag, problem: Violation) -> list[_Evidence]:
    """Evidence in the value the resource already carries for the tag, under any key case."""
    if problem.current_value is None or not problem.current_value.strip():
        return []
    value = problem.current_value
    if problem.violation_type == "wrong_key_case" and is_valid_value(tag, value):
        return [
            _Evidence(
                "wrong_case_key",
                value,
                WEIGHT_WRONG_CASE_KEY,
                f"the resource carries {problem.actual_key}={value}: move the value to the key {tag.name}",
            )
        ]
    normalised = _normalised(tag, value)
    if normalised is None:
        return []
    where = f"under the key {problem.actual_key}" if problem.actual_key else f"in {tag.name}"
    return [
        _Evidence(
            "current_value",
            normalised,
            WEIGHT_NORMALISED_VALUE,
            f"the current value {value!r} {where} is a variant of the allowed value {normalised!r}",
        )
    ]


def _name_evidence(tag: RequiredTag, target: Resource) -> list[_Evidence]:
    """Allowed values (or their stage abbreviations) that appear as tokens of the name or id."""
    if tag.allowed_values is None:
        return []  # a free-form tag's value cannot be read off a name without inventing it
    texts = {"name": target.name, "id": target.resource_id if target.resource_id != target.name else None}
    found: list[_Evidence] = []
    for field, text in texts.items():
        tokens = _name_tokens(text or "")
        for allowed in _concrete_allowed_values(tag):
            wanted = _name_tokens(allowed)
            if (
                wanted
                and is_valid_value(tag, allowed)
                and any(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens) - len(wanted) + 1))
            ):
                found.append(
                    _Evidence(
                        "name_token", allowed, WEIGHT_NAME_VALUE, f"the {field} {text!r} contains {allowed!r}"
                    )
                )
        for token in tokens:
            alias_of = _stage_alias(tag, token)
            if alias_of is not None:
                found.append(
                    _Evidence(
                        "name_token",
                        alias_of,
                        WEIGHT_NAME_ALIAS,
                        f"the {field} {text!r} contains {token!r}, short for {alias_of!r}",
                    )
                )
    strongest: dict[str, _Evidence] = {}  # one name-token item per value: they are one source
    for item in found:
        if item.value not in strongest or item.weight > strongest[item.value].weight:
            strongest[item.value] = item
    return list(strongest.values())


def _sibling_groups(target: Resource, population: Iterable[Resource]) -> list[_SiblingGroup]:
    """The target's neighbourhoods in the population, the target itself excluded."""
    others = [resource for resource in {r.arn: r for r in population}.values() if resource.arn != target.arn]
    stack = target.tags.get(STACK_TAG)
    prefix = name_prefix(target.name) if target.name else None
    account = f"account {target.account_id}" if target.account_id else "the same account"
    neighbourhoods: tuple[tuple[EvidenceSource, float, str, Callable[[Resource], bool]], ...] = (
        (
            "same_stack",
            WEIGHT_SAME_STACK,
            f"in stack {stack}",
            lambda r: (
                bool(stack)
                and r.tags.get(STACK_TAG) == stack
                and (r.account_id, r.region) == (target.account_id, target.region)
            ),
        ),
        (
            "same_name_prefix",
            WEIGHT_SAME_NAME_PREFIX,
            f"named {prefix}-*",
            lambda r: prefix is not None and r.name is not None and name_prefix(r.name) == prefix,
        ),
        (
            "same_vpc",
            WEIGHT_SAME_VPC,
            f"in {target.vpc_id}",
            lambda r: target.vpc_id is not None and r.vpc_id == target.vpc_id,
        ),
        (
            "account_type_majority",
            WEIGHT_ACCOUNT_TYPE,
            f"of type {target.resource_type} in {account}",
            lambda r: r.resource_type == target.resource_type and r.account_id == target.account_id,
        ),
    )
    groups = [
        _SiblingGroup(source, weight, description, tuple(filter(belongs, others)))
        for source, weight, description, belongs in neighbourhoods
    ]
    return [group for group in groups if group.members]


def _sibling_evidence(tag: RequiredTag, groups: Sequence[_SiblingGroup]) -> list[_Evidence]:
    evidence: list[_Evidence] = []
    for group in groups:
        counts = Counter(
            value
            for member in group.members
            if (value := member.tags.get(tag.name)) is not None and is_valid_value(tag, value)
        )
        size = len(group.members)
        carriers = sum(counts.values())  # siblings without a valid value are no evidence either way
        for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            weight = group.weight * (count / carriers) * (count / (count + 1))
            evidence.append(
                _Evidence(
                    group.source,
                    value,
                    weight,
                    f"{count} of {size} resources {group.description} carry {tag.name}={value}",
                )
            )
    return evidence


def _decide(tag: RequiredTag, problem: Violation, evidence: list[_Evidence]) -> TagSuggestion | NoSuggestion:
    def without(reason: str) -> NoSuggestion:
        return NoSuggestion(
            tag_key=tag.name, issue=problem.violation_type, current_value=problem.current_value, reason=reason
        )

    if not evidence:
        detail = (
            "no wrong-cased key, near-miss value, sibling or account-wide value supports one"
            if tag.allowed_values is not None
            else "without allowed_values only values that siblings or the account carry can be suggested, "
            "and none carry one"
        )
        return without(f"no allowed value found in evidence: {detail}")
    support: dict[str, float] = {}
    for value in {item.value for item in evidence}:
        support[value] = 1 - prod(1 - item.weight for item in evidence if item.value == value)
    best, best_support = min(support.items(), key=lambda item: (-item[1], item[0]))
    competitor = max((score for value, score in support.items() if value != best), default=0.0)
    confidence = round(min(best_support * (1 - CONFLICT_PENALTY * competitor), MAX_CONFIDENCE), 2)
    backing = sorted((item for item in evidence if item.value == best), key=lambda item: -item.weight)
    reasons = [item.reason for item in backing]
    if confidence < MIN_CONFIDENCE:
        return without(
            f"evidence too weak: the best candidate {tag.name}={best} reaches confidence {confidence:.2f} "
            f"(below {MIN_CONFIDENCE}): {'; '.join(reasons)}"
        )
    return TagSuggestion(
        tag_key=tag.name,
        issue=problem.violation_type,
        current_value=problem.current_value,
        current_key=problem.actual_key,
        suggested_value=best,
        confidence=confidence,
        reasons=reasons,
        sources=list(dict.fromkeys(item.source for item in backing)),
    )


def suggest_tags(target: Resource, population: Sequence[Resource], policy: TaggingPolicy) -> TagSuggestions:
    """Suggested values for every required tag missing, empty, wrong-cased or invalid on ``target``."""
    suggestions: list[TagSuggestion] = []
    no_suggestion: list[NoSuggestion] = []
    compliant: list[str] = []
    problems = {
        violation.tag_key: violation
        for violation in evaluate([target], compile_policy(policy, [target.resource_type])).violations
        if violation.violation_type != "prohibited_tag"
    }
    groups = _sibling_groups(target, population) if problems else []
    for tag in policy.required_for(target.resource_type):
        problem = problems.get(tag.name)
        if problem is None:
            compliant.append(tag.name)
            continue
        evidence = [
            *_own_evidence(tag, problem),
            *_name_evidence(tag, target),
            *_sibling_evidence(tag, groups),
        ]
        decided = _decide(tag, problem, evidence)
        if isinstance(decided, TagSuggestion):
            suggestions.append(decided)
        else:
            no_suggestion.append(decided)
    suggestions.sort(key=lambda item: (-item.confidence, item.tag_key))
    no_suggestion.sort(key=lambda item: item.tag_key)
    return TagSuggestions(
        resource_arn=target.arn,
        resource_type=target.resource_type,
        suggestions=suggestions,
        no_suggestion=no_suggestion,
        compliant_tags=sorted(compliant),
    )

"""What a tag change may not do, checked before anything is journaled or written.

AWS's limits (the Tagging API's and every service's): keys 1-128 characters, values 0-256, letters,
digits, spaces and ``_ . : / = + - @``, no ``aws:`` prefix (reserved for AWS), at most 50 tags on a
resource. The policy's: no prohibited tag, and no value a required tag rejects unless the caller
allows policy violations. Every problem of a change set is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import TaggingPolicy

MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
MAX_TAGS_PER_RESOURCE = 50
ALLOWED_PUNCTUATION = frozenset("_.:/=+-@ ")


class RefusedChangeError(InvalidInputError):
    """A change set refused before anything was written; the message lists every problem."""


def _bad_characters(text: str) -> list[str]:
    return sorted({ch for ch in text if not (ch.isalnum() or ch in ALLOWED_PUNCTUATION)})


def key_problems(key: str) -> list[str]:
    problems = []
    if not key or len(key) > MAX_KEY_LENGTH:
        problems.append(f"tag key {key!r} must be 1-{MAX_KEY_LENGTH} characters")
    if key.lower().startswith("aws:"):
        problems.append(f"tag key {key!r}: the aws: prefix is reserved for AWS")
    if bad := _bad_characters(key):
        problems.append(f"tag key {key!r} has characters AWS does not allow: {''.join(bad)!r}")
    return problems


def value_problems(key: str, value: str) -> list[str]:
    problems = []
    if len(value) > MAX_VALUE_LENGTH:
        problems.append(f"value of {key!r} is {len(value)} characters; AWS allows {MAX_VALUE_LENGTH}")
    if bad := _bad_characters(value):
        problems.append(f"value {value!r} of {key!r} has characters AWS does not allow: {''.join(bad)!r}")
    return problems


def change_problems(
    arn: str,
    resource_type: str,
    set_tags: Mapping[str, str],
    remove_tags: Iterable[str],
    after: Mapping[str, str],
    policy: TaggingPolicy,
    allow_policy_violations: bool,
) -> tuple[list[str], list[str]]:
    """(refusals, regrets) of one resource's change; regrets are policy rejections that were allowed."""
    refusals: list[str] = []
    regrets: list[str] = []
    removing = list(remove_tags)
    for key in removing:
        if key.lower().startswith("aws:"):
            refusals.append(f"{arn}: cannot remove {key!r}: the aws: prefix is reserved for AWS")
    for key in sorted(set(set_tags) & set(removing)):
        refusals.append(f"{arn}: {key!r} is both set and removed")
    prohibited = set(policy.prohibited_tags)
    required = {tag.name: tag for tag in policy.required_for(resource_type)}
    for key, value in set_tags.items():
        refusals += [f"{arn}: {problem}" for problem in key_problems(key) + value_problems(key, value)]
        if key in prohibited:
            refusals.append(f"{arn}: {key!r} is a prohibited tag in the policy")
        tag = required.get(key)
        rejection = tag.rejection(value) if tag is not None else None
        if rejection is not None:
            message = f"{arn}: the policy rejects {key}={value!r}: {rejection}"
            (regrets if allow_policy_violations else refusals).append(message)
    if len(after) > MAX_TAGS_PER_RESOURCE:
        refusals.append(
            f"{arn}: would carry {len(after)} tags; AWS allows {MAX_TAGS_PER_RESOURCE} on a resource"
        )
    return refusals, regrets


def refuse(problems: list[str]) -> None:
    if problems:
        shown = problems[:20]
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise RefusedChangeError(
            "refused, nothing was written: "
            + "; ".join(shown)
            + more
            + (
                ". Pass allow_policy_violations to write values the policy rejects."
                if any("the policy rejects" in p for p in problems)
                else ""
            )
        )

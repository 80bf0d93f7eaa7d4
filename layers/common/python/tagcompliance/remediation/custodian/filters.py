"""c7n filter fragments: the value filters that find each violation type of a required tag."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tagcompliance.policy import WILDCARD, RequiredTag

_BLANK = r"^\s*$"  # present with an empty or whitespace value (what the engine's strip() finds empty)
_LEADING_FLAGS = re.compile(r"^(?:\(\?[aiLmsux]+\))+")


def c7n_literal(value: Any) -> Any:
    """``value`` with its braces doubled, so ``custodian run`` gives back exactly ``value``.

    c7n formats every string value of a policy with its variables ({account_id}, {region} ...)
    when it loads it for a run: a lone brace would crash the run, and "{region}" would be replaced.
    Dictionary keys are not formatted, so the short ``{"tag:K": "absent"}`` form needs nothing.
    """
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [c7n_literal(item) for item in value]
    return value


def _value(key: str, op: str, value: Any) -> dict[str, Any]:
    return {"type": "value", "key": c7n_literal(f"tag:{key}"), "op": op, "value": c7n_literal(value)}


def _absent(key: str) -> dict[str, Any]:
    return {f"tag:{key}": "absent"}


def present_filter(key: str) -> dict[str, Any]:
    return {f"tag:{key}": "present"}


def _blank(key: str) -> dict[str, Any]:
    """The exact key is present with an empty or whitespace value."""
    return _value(key, "regex-case", _BLANK)


def _unset(key: str) -> dict[str, Any]:
    """The exact key is absent or blank (``normalize`` strips the value, as the engine does)."""
    return {"type": "value", "key": c7n_literal(f"tag:{key}"), "value_type": "normalize", "value": "empty"}


def _set(key: str) -> dict[str, Any]:
    """The exact key has a non-blank value."""
    return {"type": "value", "key": c7n_literal(f"tag:{key}"), "value_type": "normalize", "value": "not-null"}


def _any_case_filled(key: str) -> dict[str, Any]:
    """Some tag whose key equals ``key`` case-insensitively has a non-blank value."""
    return {
        "type": "value",
        "key": c7n_literal(f"tag:{key.lower()}"),
        "tag_key_transforms": ["lower"],
        "value_type": "normalize",
        "value": "not-null",
    }


def full_match_regex(regex: str) -> str:
    r"""``regex`` rewritten so that ``re.match`` (what c7n uses) behaves as ``re.fullmatch``.

    Leading global flags such as ``(?i)`` stay in front; in verbose mode the group is closed on a
    new line so a trailing ``# comment`` cannot swallow it.
    """
    flags = _LEADING_FLAGS.match(regex)
    head = flags.group(0) if flags else ""
    body = regex[len(head) :]
    close = "\n)" if "x" in head else ")"
    wrapped = f"{head}(?:{body}{close}\\Z"
    re.compile(wrapped)  # the policy's regex compiled, so this only fails on a bug here
    return wrapped


def allowed_values_regex(values: Sequence[str]) -> str | None:
    r"""One regex that ``re.match`` (c7n's ``regex-case``) matches exactly on the allowed values.

    None when no value holds a ``*``: the literal ``in`` / ``not-in`` list is then exact. Otherwise
    every entry becomes an alternative: its text escaped, each ``*`` turned into ``.*`` (any
    sequence of characters, newlines too: ``(?s)``), the whole anchored at the end with ``\Z``
    (``re.match`` anchors the start). No ``(?i)``: values compare case-sensitively, as in
    ``RequiredTag.value_allowed``. Only standard ``re`` syntax, so any c7n's Python accepts it.
    """
    entries = list(dict.fromkeys(values))
    if not any(WILDCARD in entry for entry in entries):
        return None
    alternatives = (".*".join(re.escape(part) for part in entry.split(WILDCARD)) for entry in entries)
    return f"(?s)(?:{'|'.join(alternatives)})\\Z"


def _allowed(key: str, values: Sequence[str]) -> dict[str, Any]:
    """The exact key's value is one of ``values`` (an absent key never is)."""
    regex = allowed_values_regex(values)
    return _value(key, "in", list(values)) if regex is None else _value(key, "regex-case", regex)


def _not_allowed(key: str, values: Sequence[str]) -> dict[str, Any]:
    """The exact key's value is not one of ``values`` (an absent key counts as not allowed)."""
    regex = allowed_values_regex(values)
    return _value(key, "not-in", list(values)) if regex is None else {"not": [_allowed(key, values)]}


def missing_clauses(key: str) -> list[dict[str, Any]]:
    """missing_tag alone: absent with no case variant holding a value, or present and blank.

    Also the filter of the tag action, so it only ever matches where the exact key has no value.
    """
    return [{"and": [_absent(key), {"not": [_any_case_filled(key)]}]}, _blank(key)]


def tag_clauses(tag: RequiredTag, violations: Sequence[str]) -> list[dict[str, Any]]:
    """Clauses selecting resources with any of ``violations`` for ``tag``, to be OR-ed.

    Their union is exact; a clause drops a guard when another requested clause already selects
    what the guard excludes (fewer filters also keep ``custodian validate`` fast: its JSON-schema
    check costs about a quarter of a second per filter).
    """
    key = tag.name
    clauses: list[dict[str, Any]] = []
    missing, wrong_case = "missing_tag" in violations, "wrong_key_case" in violations
    unset_covered = missing and wrong_case  # absent-or-blank is selected already
    if unset_covered:
        # Together they are exactly "the exact key is absent or blank", whatever the variants.
        clauses.append(_unset(key))
    elif missing:
        clauses += missing_clauses(key)
    elif wrong_case:
        clauses.append({"and": [_absent(key), _any_case_filled(key)]})
    invalid_value = "invalid_value" in violations and bool(tag.allowed_values)
    if invalid_value:
        outside = _not_allowed(key, tag.allowed_values or [])
        clauses.append(outside if unset_covered else {"and": [_set(key), outside]})
    if "invalid_format" in violations and tag.validation_regex:
        guards = [] if unset_covered else [_set(key)]
        if tag.allowed_values and not invalid_value:  # a value outside the list is an invalid_value
            guards.append(_allowed(key, tag.allowed_values))
        mismatch = {"not": [_value(key, "regex-case", full_match_regex(tag.validation_regex))]}
        clauses.append({"and": [*guards, mismatch]} if guards else mismatch)
    return clauses

"""The scoring Code step: the JavaScript (package data) with the policy's rules filled in."""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from tagcompliance.policy import RequiredTag, TaggingPolicy
from tagcompliance.resources import REGISTRY

from .models import REPORT_LIMIT, TAG_RESOURCES_LIMIT

# Runs in OpenOps's Code step (TypeScript, so it is kept to plain JavaScript that also compiles as
# TypeScript); the source is package data, scripts/openops_evaluation.js. RULES is a JSON literal
# passed through JSON.parse so that the compiler types it as any; being in the source, not the step
# input, it never meets OpenOps's {{...}} templating. The rules mirror tagcompliance.compliance:
# missing_tag, wrong_key_case, invalid_value (with * wildcards), invalid_format, prohibited_tag.
EVALUATION_SCRIPT = "scripts/openops_evaluation.js"


@lru_cache(maxsize=1)
def evaluation_script() -> str:
    """The Code step's JavaScript, with ``__RULES__`` where the rules go."""
    return (importlib.resources.files("tagcompliance.remediation") / EVALUATION_SCRIPT).read_text(
        encoding="utf-8"
    )


def _js_literal(text: str) -> str:
    """``text`` escaped for a JavaScript RegExp source (no flags)."""
    return re.sub(r"[\\^$.*+?()[\]{}|/-]", lambda match: "\\" + match.group(0), text)


def _js_regex(pattern: str) -> str:
    """A policy regular expression in JavaScript syntax (named groups are spelt differently)."""
    return re.sub(r"\(\?P=(\w+)\)", r"\\k<\1>", pattern.replace("(?P<", "(?<"))


def _rule_spec(tag: RequiredTag) -> dict[str, Any]:
    allowed = tag.allowed_values
    wildcards = [value for value in allowed or [] if "*" in value]
    return {
        "allowed": None if allowed is None else [value for value in allowed if "*" not in value],
        "allowedPattern": (
            "^(?:"
            + "|".join("[\\s\\S]*".join(map(_js_literal, value.split("*"))) for value in wildcards)
            + ")$"
            if wildcards
            else None
        ),
        "pattern": _js_regex(tag.validation_regex) if tag.validation_regex else None,
    }


def evaluation_code(policy: TaggingPolicy, types: Sequence[str], tag_values: Mapping[str, str] | None) -> str:
    rules: dict[str, Any] = {
        "types": {
            type_id: {
                "service": REGISTRY[type_id].arn_service,
                "prefix": REGISTRY[type_id].arn_prefix,
                "separator": REGISTRY[type_id].arn_separator,
                "required": [tag.name for tag in policy.required_for(type_id)],
            }
            for type_id in types
        },
        "rules": {
            tag.name: _rule_spec(tag)
            for tag in policy.required_tags
            if any(tag.applies(type_id) for type_id in types)
        },
        "prohibited": list(policy.prohibited_tags),
        "tagValues": dict(tag_values) if tag_values is not None else None,
        "batchLimit": TAG_RESOURCES_LIMIT,
        "reportLimit": REPORT_LIMIT,
    }
    literal = json.dumps(rules, indent=2, sort_keys=True, ensure_ascii=True)
    return evaluation_script().replace("__RULES__", literal)

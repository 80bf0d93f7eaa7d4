"""The tagging policy: its model, loading, validation and the default policy."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError
from .resources import REGISTRY, RESOURCE_TYPE_IDS

PolicySource = Literal["file", "default"]

WILDCARD = "*"  # in an allowed value, any sequence of characters (AWS tag-policy syntax: "300*")

ValueMatcher = Callable[[str], bool]


def _split_glob(pattern: str) -> tuple[str, tuple[str, ...], str]:
    head, *middle, tail = pattern.split(WILDCARD)
    return head, tuple(middle), tail


def _glob_match(value: str, head: str, middle: tuple[str, ...], tail: str) -> bool:
    """Whether ``value`` matches ``head*middle[0]*...*tail``: every character literal, no regex.

    Leftmost-first search is exact for patterns whose only operator is ``*``, and takes linear
    time whatever the pattern (a regular expression would backtrack on many ``*``).
    """
    if len(value) < len(head) + len(tail) or not value.startswith(head) or not value.endswith(tail):
        return False
    position, end = len(head), len(value) - len(tail)
    for part in middle:
        found = value.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


@lru_cache(maxsize=256)
def _compile_allowed(values: tuple[str, ...]) -> tuple[frozenset[str], ValueMatcher | None]:
    exact = frozenset(value for value in values if WILDCARD not in value)
    globs = tuple(_split_glob(value) for value in dict.fromkeys(values) if WILDCARD in value)
    if not globs:
        return exact, None

    def matches(value: str) -> bool:
        return any(_glob_match(value, head, middle, tail) for head, middle, tail in globs)

    return exact, matches


def allowed_value_matcher(values: Iterable[str]) -> tuple[frozenset[str], ValueMatcher | None]:
    """Split allowed values into the exact ones and one matcher for the wildcard ones.

    A value is allowed when it is in the frozenset, or when the matcher (``None`` when no entry
    has a ``*``) returns True. Check the set first: it is the cheap test and the common case.
    """
    return _compile_allowed(tuple(values))


def _check_registry_types(value: list[str]) -> list[str]:
    unknown = [item for item in value if item not in REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown resource type(s) {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(RESOURCE_TYPE_IDS)}"
        )
    return value


class RequiredTag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, description="Tag key, case-sensitive as AWS treats it.")
    description: str = ""
    allowed_values: list[str] | None = Field(
        default=None,
        description=(
            "When set, the value must equal one of these; an entry with * (AWS tag-policy "
            'wildcard, e.g. "300*") matches any sequence of characters in its place.'
        ),
    )
    validation_regex: str | None = Field(default=None, description="When set, the whole value must match.")
    applies_to: list[str] = Field(
        default_factory=list, description="Registry resource types; empty means every type."
    )
    enforced_for: list[str] = Field(
        default_factory=list,
        description=(
            "Registry resource types for which AWS Organizations blocks noncompliant tagging "
            "(a tag policy's enforced_for). Informational: it does not make the tag required."
        ),
    )

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("tag name has leading or trailing whitespace")
        return value

    @field_validator("allowed_values")
    @classmethod
    def _check_values(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("allowed_values is empty: omit it or list at least one value")
            if any(not item.strip() for item in value):
                raise ValueError("allowed_values holds an empty value")
        return value

    @field_validator("validation_regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression {value!r}: {error}") from None
        return value

    @field_validator("applies_to", "enforced_for")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str]:
        return _check_registry_types(value)

    def applies(self, resource_type: str) -> bool:
        return not self.applies_to or resource_type in self.applies_to

    def rejection(self, value: str) -> str | None:
        """Why the policy rejects ``value`` for this tag (allowed values, then format), or None."""
        if not self.value_allowed(value):
            return f"is not allowed by the policy; allowed values: {', '.join(self.allowed_values or [])}"
        if self.validation_regex and re.fullmatch(self.validation_regex, value) is None:
            return f"does not match the policy's format {self.validation_regex!r}"
        return None

    def value_allowed(self, value: str) -> bool:
        """Whether ``allowed_values`` accepts ``value`` (exactly, or through a ``*`` entry)."""
        if self.allowed_values is None:
            return True
        exact, matches = allowed_value_matcher(self.allowed_values)
        return value in exact or (matches is not None and matches(value))


class OptionalTag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    allowed_values: list[str] | None = Field(
        default=None, description="Documented values; entries may hold * wildcards. Not checked."
    )
    enforced_for: list[str] = Field(
        default_factory=list,
        description="Registry resource types for which AWS Organizations blocks noncompliant tagging.",
    )

    @field_validator("enforced_for")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str]:
        return _check_registry_types(value)


class ImportedFrom(BaseModel):
    """Where an imported policy came from: an AWS Organizations tag policy or an effective policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["aws_tag_policy", "aws_effective_tag_policy"] = "aws_tag_policy"
    policy_id: str | None = None
    name: str | None = None
    arn: str | None = None
    target_id: str | None = Field(
        default=None, description="For an effective policy: the account it was computed for."
    )

    @property
    def label(self) -> str:
        if self.kind == "aws_effective_tag_policy":
            return f"AWS Organizations effective tag policy of {self.target_id or 'this account'}"
        named = f" {self.name!r}" if self.name else ""
        return f"AWS Organizations tag policy {self.policy_id or '?'}{named}"


class TaggingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(default="1.0", min_length=1)
    required_tags: list[RequiredTag] = Field(default_factory=list)
    optional_tags: list[OptionalTag] = Field(default_factory=list)
    prohibited_tags: list[str] = Field(
        default_factory=list, description="Tag keys that must not be present on any resource."
    )
    imported_from: ImportedFrom | None = Field(
        default=None, description="Set when the policy was converted from an AWS Organizations tag policy."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> TaggingPolicy:
        seen: set[str] = set()
        for tag in self.required_tags:
            if tag.name in seen:
                raise ValueError(f"required tag {tag.name!r} is declared twice")
            seen.add(tag.name)
        clash = seen.intersection(self.prohibited_tags)
        if clash:
            raise ValueError(f"tag(s) {', '.join(sorted(clash))} are both required and prohibited")
        return self

    def digest(self) -> str:
        """Stable hash of the policy's content: part of every cache key and snapshot.

        Provenance (``imported_from``) is not content, and an empty ``enforced_for`` is left out,
        so a policy that uses neither hashes as it did before those fields existed.
        """
        content = self.model_dump(mode="json", exclude={"imported_from"})
        for tag in (*content["required_tags"], *content["optional_tags"]):
            if not tag["enforced_for"]:
                del tag["enforced_for"]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def expectation(self, tag_key: str, violation_type: str) -> str | None:
        """What the policy accepts for ``tag_key``, in words, to show beside a violation."""
        if violation_type == "prohibited_tag":
            return "tag must not be present"
        tag = next((tag for tag in self.required_tags if tag.name == tag_key), None)
        if tag is None:
            return None
        parts = [f"key exactly {tag.name!r}"]
        if tag.allowed_values:
            wildcard = " ('*' matches any text)" if any("*" in value for value in tag.allowed_values) else ""
            parts.append(f"one of {', '.join(tag.allowed_values)}{wildcard}")
        if tag.validation_regex:
            parts.append(f"matching {tag.validation_regex}")
        if len(parts) == 1:
            parts.append("a non-empty value")
        return "; ".join(parts)

    def required_for(self, resource_type: str) -> list[RequiredTag]:
        return [tag for tag in self.required_tags if tag.applies(resource_type)]


DEFAULT_POLICY = TaggingPolicy(
    version="1.0",
    required_tags=[
        RequiredTag(name="CostCenter", description="Cost center that pays for the resource."),
        RequiredTag(name="Owner", description="Team or person accountable for the resource."),
        RequiredTag(
            name="Environment",
            description="Deployment stage.",
            allowed_values=["production", "staging", "development", "test"],
        ),
    ],
)


class LoadedPolicy(BaseModel):
    """A policy with where it came from, for ``/health`` and every result that depends on it."""

    policy: TaggingPolicy
    source: PolicySource
    path: str | None = None

    @property
    def description(self) -> str:
        if self.source != "file":
            return "built-in default (CostCenter, Owner, Environment)"
        origin = self.policy.imported_from
        return f"file {self.path}" + (f" (imported from {origin.label})" if origin else "")


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "policy"


def parse_policy(data: Any, origin: str = "policy") -> TaggingPolicy:
    """Validate a policy document; the error names each offending field."""
    try:
        return TaggingPolicy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{_location(item['loc'])}: {item['msg']}" for item in error.errors())
        raise PolicyError(f"invalid tagging policy in {origin}: {problems}") from None


def load_policy(path: Path) -> LoadedPolicy:
    """The policy at ``path``, or the default policy when the file does not exist."""
    if not path.exists():
        return LoadedPolicy(policy=DEFAULT_POLICY, source="default")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PolicyError(f"tagging policy {path} (POLICY_PATH) is not valid JSON: {error}") from None
    except OSError as error:
        raise PolicyError(f"tagging policy {path} (POLICY_PATH) cannot be read: {error}") from None
    return LoadedPolicy(policy=parse_policy(data, f"{path} (POLICY_PATH)"), source="file", path=str(path))

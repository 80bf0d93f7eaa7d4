"""The tagging policy: its model, loading, validation and the default policy."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError
from .resources import REGISTRY, RESOURCE_TYPE_IDS

PolicySource = Literal["file", "default"]


class RequiredTag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, description="Tag key, case-sensitive as AWS treats it.")
    description: str = ""
    allowed_values: list[str] | None = Field(
        default=None, description="When set, the value must be exactly one of these."
    )
    validation_regex: str | None = Field(default=None, description="When set, the whole value must match.")
    applies_to: list[str] = Field(
        default_factory=list, description="Registry resource types; empty means every type."
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

    @field_validator("applies_to")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str]:
        unknown = [item for item in value if item not in REGISTRY]
        if unknown:
            raise ValueError(
                f"unknown resource type(s) {', '.join(map(repr, unknown))}; "
                f"supported: {', '.join(RESOURCE_TYPE_IDS)}"
            )
        return value

    def applies(self, resource_type: str) -> bool:
        return not self.applies_to or resource_type in self.applies_to


class OptionalTag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    allowed_values: list[str] | None = None


class TaggingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(default="1.0", min_length=1)
    required_tags: list[RequiredTag] = Field(default_factory=list)
    optional_tags: list[OptionalTag] = Field(default_factory=list)
    prohibited_tags: list[str] = Field(
        default_factory=list, description="Tag keys that must not be present on any resource."
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
        """Stable hash of the policy's content: part of every cache key and snapshot."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

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
        return (
            f"file {self.path}"
            if self.source == "file"
            else "built-in default (CostCenter, Owner, Environment)"
        )


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
        raise PolicyError(f"tagging policy {path} is not valid JSON: {error}") from None
    except OSError as error:
        raise PolicyError(f"tagging policy {path} cannot be read: {error}") from None
    return LoadedPolicy(policy=parse_policy(data, str(path)), source="file", path=str(path))

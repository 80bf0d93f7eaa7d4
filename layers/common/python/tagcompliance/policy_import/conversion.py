"""Converting an AWS Organizations tag policy to our policy (pure: no AWS calls)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from tagcompliance.errors import PolicyError
from tagcompliance.policy import (
    WILDCARD,
    ImportedFrom,
    OptionalTag,
    RequiredTag,
    TaggingPolicy,
)
from tagcompliance.resources import REGISTRY

from .results import ConversionResult, ConversionSummary

TAG_POLICY = "TAG_POLICY"
ASSIGN, APPEND, REMOVE = "@@assign", "@@append", "@@remove"
OPERATORS_ALLOWED = "@@operators_allowed_for_child_policies"
CHILD_OPERATOR_VALUES = ("@@all", "@@none", ASSIGN, APPEND, REMOVE)
TAG_FIELDS = ("tag_key", "tag_value", "enforced_for", "report_required_tag_for")
ALL_SUPPORTED = ("ALL_SUPPORTED", "*")  # "service:ALL_SUPPORTED" and the older "service:*"

# Registry types by their tag-policy name, and per tag-policy service prefix ("es" for OpenSearch).
_TYPE_BY_POLICY_NAME = {row.tag_policy_name: row.id for row in REGISTRY.values()}
_TYPES_BY_POLICY_SERVICE: dict[str, list[str]] = {}
for _row in REGISTRY.values():
    _TYPES_BY_POLICY_SERVICE.setdefault(_row.tag_policy_name.split(":", 1)[0], []).append(_row.id)


def _show(values: Iterable[str]) -> str:
    return ", ".join(json.dumps(value, ensure_ascii=False) for value in values)


class _Converter:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    @staticmethod
    def fail(path: str, message: str) -> PolicyError:
        return PolicyError(f"invalid AWS tag policy at {path}: {message}")

    def child_operators(self, value: Any, path: str) -> None:
        if not isinstance(value, list) or not all(item in CHILD_OPERATOR_VALUES for item in value):
            raise self.fail(path, f"expected a list of {', '.join(CHILD_OPERATOR_VALUES)}")
        self.warn(
            path,
            f"controls which operators child policies may use ({', '.join(value) or 'none'}); "
            "inheritance does not apply to a policy file, so it was not imported",
        )

    def strings(self, value: Any, path: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of strings, got {type(value).__name__}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{path}[{index}]", f"expected a string, got {type(item).__name__}")
        return list(value)

    def tag_key(self, node: Any, path: str) -> str:
        """``tag_key``: ``{"@@assign": "CostCenter"}``, or the plain string of an effective policy."""
        if isinstance(node, str):
            return node
        if not isinstance(node, dict):
            raise self.fail(path, f"expected an object with @@assign, got {type(node).__name__}")
        for key, value in node.items():
            if key == OPERATORS_ALLOWED:
                self.child_operators(value, f"{path}.{key}")
            elif key != ASSIGN:
                raise self.fail(f"{path}.{key}", "tag_key supports only @@assign")
        if ASSIGN not in node:
            raise self.fail(path, "missing @@assign")
        if not isinstance(node[ASSIGN], str):
            raise self.fail(f"{path}.{ASSIGN}", "expected a string")
        return node[ASSIGN]

    def entries(self, value: Any, path: str) -> list[tuple[str, str]]:
        """A list of strings, each with its own path for the messages about it."""
        return [(item, f"{path}[{index}]") for index, item in enumerate(self.strings(value, path))]

    def value_list(self, node: Any, path: str, merged_from_parents: str) -> list[tuple[str, str]] | None:
        """A list field with its value-setting operators applied, as (value, path) pairs; None when
        it sets no value. ``merged_from_parents`` says what @@append/@@remove would act on.
        """
        if not isinstance(node, dict):
            return self.entries(node, path)  # effective policy: operators already applied
        assigned: list[tuple[str, str]] | None = None
        appended: list[tuple[str, str]] = []
        removed: list[str] = []
        for key, value in node.items():
            if key == OPERATORS_ALLOWED:
                self.child_operators(value, f"{path}.{key}")
            elif key == ASSIGN:
                assigned = self.entries(value, f"{path}.{key}")
            elif key == APPEND:
                appended = self.entries(value, f"{path}.{key}")
                self.warn(
                    f"{path}.{key}",
                    f"appends {_show(item for item, _ in appended)} to the {merged_from_parents} inherited "
                    "from parent policies; imported as part of the list (inherited entries are not in "
                    "this document: import the effective policy for the merged result)",
                )
            elif key == REMOVE:
                removed = self.strings(value, f"{path}.{key}")
            else:
                raise self.fail(f"{path}.{key}", f"unknown operator; expected {ASSIGN}, {APPEND} or {REMOVE}")
        if assigned is None and not appended:
            if removed:
                self.warn(
                    f"{path}.{REMOVE}",
                    f"removes {_show(removed)} from the {merged_from_parents} inherited from parent "
                    "policies; this document assigns none, so nothing was imported for it",
                )
            return None
        unique: dict[str, str] = {}
        for item, where in [*(assigned or []), *appended]:
            unique.setdefault(item, where)
        if removed:
            dropped = [item for item in unique if item in removed]
            self.warn(
                f"{path}.{REMOVE}",
                f"removes {_show(removed)} from the {merged_from_parents} inherited from parent policies; "
                f"applied to this document's own list (removed: {_show(dropped) if dropped else 'nothing'})",
            )
            unique = {item: where for item, where in unique.items() if item not in removed}
        return list(unique.items())

    def resource_types(self, entries: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
        """Registry types that AWS type names map to, and the AWS services named."""
        types: list[str] = []
        services: list[str] = []
        for entry, where in entries:
            service, sep, resource = entry.partition(":")
            if not sep or not service or not resource or service in ALL_SUPPORTED:
                raise self.fail(
                    where,
                    f"{entry!r} is not SERVICE:TYPE, SERVICE:ALL_SUPPORTED or SERVICE:* "
                    "(a wildcard cannot name every service)",
                )
            services.append(service)
            if resource in ALL_SUPPORTED:
                known = _TYPES_BY_POLICY_SERVICE.get(service, [])
                if not known:
                    self.warn(
                        where,
                        f"{entry}: this server supports no {service} resource type, so it is not imported",
                    )
                    continue
                types.extend(known)
                self.warn(
                    where,
                    f"{entry} expanded to the {service} types this server supports ({', '.join(known)}); "
                    f"other {service} types AWS covers are not scanned here",
                )
            elif entry in _TYPE_BY_POLICY_NAME:
                types.append(_TYPE_BY_POLICY_NAME[entry])
            else:
                self.warn(
                    where, f"{entry} is not a resource type this server supports, so it is not imported"
                )
        return list(dict.fromkeys(types)), list(dict.fromkeys(services))

    def allowed_values(self, entries: list[tuple[str, str]] | None, path: str) -> list[str] | None:
        if entries is None:
            return None
        kept: list[str] = []
        for value, where in entries:
            if not value.strip():
                self.warn(
                    where,
                    f"the empty value {value!r} is allowed by AWS but not imported: "
                    "this server reports a tag with an empty value as missing",
                )
                continue
            if value.count(WILDCARD) > 1:
                self.warn(where, f"{value!r} has more than one * (AWS allows one); each * matches anything")
            kept.append(value)
        if not kept:
            self.warn(path, "no values left: any value is allowed")
            return None
        return kept


def parse_document(document: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise PolicyError(f"AWS tag policy is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PolicyError(
            f"invalid AWS tag policy at document: expected a JSON object, got {type(document).__name__}"
        )
    return document


def convert_tag_policy(
    document: dict[str, Any] | str,
    *,
    policy_id: str | None = None,
    name: str | None = None,
    arn: str | None = None,
    effective_for: str | None = None,
) -> ConversionResult:
    """Convert an AWS Organizations tag policy (as stored, or an effective policy) to our policy.

    ``effective_for`` marks the document as the effective policy of that target (an account id;
    "" for the caller's account). Raises ``PolicyError`` naming the path of a malformed field.
    """
    data = parse_document(document)
    conv = _Converter()
    for key in data:
        if key == OPERATORS_ALLOWED:
            conv.child_operators(data[key], key)
        elif key != "tags":
            raise conv.fail(key, "unknown key: a tag policy holds only 'tags'")
    tags = data.get("tags")
    if not isinstance(tags, dict):
        raise conv.fail("tags", "missing, or not an object of tag rules")

    required: list[RequiredTag] = []
    optional: list[OptionalTag] = []
    seen: dict[str, str] = {}  # lower-cased tag key -> path that declared it
    enforced_services: list[str] = []
    enforced_types: list[str] = []
    label = " ".join(
        part for part in (repr(name) if name else "", f"({policy_id})" if policy_id else "") if part
    )
    for policy_key, entry in tags.items():
        path = f"tags.{policy_key}"
        if policy_key == OPERATORS_ALLOWED:
            conv.child_operators(entry, path)
            continue
        if not isinstance(entry, dict):
            raise conv.fail(path, f"expected an object, got {type(entry).__name__}")
        for field in entry:
            if field == OPERATORS_ALLOWED:
                conv.child_operators(entry[field], f"{path}.{field}")
            elif field not in TAG_FIELDS:
                raise conv.fail(f"{path}.{field}", f"unknown field; expected one of {', '.join(TAG_FIELDS)}")

        if "tag_key" in entry:
            key = conv.tag_key(entry["tag_key"], f"{path}.tag_key")
            if key.lower() != policy_key.lower():
                raise conv.fail(
                    f"{path}.tag_key", f"{key!r} must equal the policy key {policy_key!r} but for case"
                )
        else:
            key = policy_key.lower()
            conv.warn(path, f"no tag_key: AWS then requires the lower-case key {key!r}")
        if key.lower() in seen:
            raise conv.fail(path, f"tag key {key!r} is also declared at {seen[key.lower()]}")
        seen[key.lower()] = path

        values = conv.allowed_values(
            conv.value_list(entry["tag_value"], f"{path}.tag_value", "values")
            if "tag_value" in entry
            else None,
            f"{path}.tag_value",
        )
        enforced: list[str] = []
        if "enforced_for" in entry:
            listed = conv.value_list(entry["enforced_for"], f"{path}.enforced_for", "resource types") or []
            enforced, services = conv.resource_types(listed)
            enforced_services.extend(services)
            enforced_types.extend(enforced)
        reported: list[str] | None = None
        if "report_required_tag_for" in entry:
            listed = (
                conv.value_list(
                    entry["report_required_tag_for"], f"{path}.report_required_tag_for", "resource types"
                )
                or []
            )
            reported, _ = conv.resource_types(listed)
            if not reported:
                conv.warn(
                    f"{path}.report_required_tag_for",
                    f"required only for resource types this server does not scan: {key!r} imported "
                    "as optional",
                )

        if effective_for is not None:
            description = "Imported from the AWS Organizations effective tag policy."
        else:
            description = (
                f"Imported from AWS tag policy {label}." if label else "Imported from an AWS tag policy."
            )
        try:
            if reported:
                required.append(
                    RequiredTag(
                        name=key,
                        description=description,
                        allowed_values=values,
                        applies_to=reported,
                        enforced_for=enforced,
                    )
                )
            else:
                optional.append(
                    OptionalTag(
                        name=key, description=description, allowed_values=values, enforced_for=enforced
                    )
                )
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()
            )
            raise conv.fail(path, problems) from None

    if not tags:
        conv.warn("tags", "the policy holds no tag rules")
    if optional:
        conv.warn(
            "tags",
            f"{len(optional)} tag(s) required for no resource type this server scans were imported as "
            f"optional ({', '.join(tag.name for tag in optional)}): AWS still reports their key case and "
            "values, this server does not check optional tags",
        )
    origin = ImportedFrom(
        kind="aws_effective_tag_policy" if effective_for is not None else "aws_tag_policy",
        policy_id=policy_id,
        name=name,
        arn=arn,
        target_id=effective_for or None,
    )
    policy = TaggingPolicy(required_tags=required, optional_tags=optional, imported_from=origin)
    summary = ConversionSummary(
        required_tags_count=len(required),
        optional_tags_count=len(optional),
        enforced_services=sorted(set(enforced_services)),
        enforced_types=[type_id for type_id in REGISTRY if type_id in set(enforced_types)],
    )
    return ConversionResult(policy=policy, summary=summary, warnings=conv.warnings)

"""AWS Organizations tag policies: convert them to our policy, fetch them, save them, detect one at start-up.

Conversion (``convert_tag_policy``) is pure. It reads a tag policy as AWS stores it (values under
``@@assign`` / ``@@append`` / ``@@remove``) or as ``DescribeEffectivePolicy`` returns it (plain
values), and accounts for every construct: what it maps to is in the policy, what it cannot map
is in ``warnings``. AWS's own notion of a required tag is ``report_required_tag_for``; a tag
without it is imported as optional. ``enforced_for`` (AWS blocks noncompliant tagging for those
types) is recorded on the tag and never makes it required.

AWS is reached only through a ``TagPolicySource``: ``OrganizationsTagPolicySource`` calls the
Organizations API with boto3; tests use an in-memory fake (moto lacks DescribeEffectivePolicy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field, ValidationError

from .aws import AwsClients, describe_aws_error, error_code
from .errors import InvalidInputError, PolicyError, TagComplianceError
from .policy import (
    DEFAULT_POLICY,
    WILDCARD,
    ImportedFrom,
    OptionalTag,
    RequiredTag,
    TaggingPolicy,
    load_policy,
)
from .resources import REGISTRY

logger = logging.getLogger("tagcompliance.policy_import")

DEFAULT_POLICY_FILENAME = "tagging_policy.json"
TAG_POLICY = "TAG_POLICY"
ASSIGN, APPEND, REMOVE = "@@assign", "@@append", "@@remove"
OPERATORS_ALLOWED = "@@operators_allowed_for_child_policies"
CHILD_OPERATOR_VALUES = ("@@all", "@@none", ASSIGN, APPEND, REMOVE)
TAG_FIELDS = ("tag_key", "tag_value", "enforced_for", "report_required_tag_for")
ALL_SUPPORTED = ("ALL_SUPPORTED", "*")  # "service:ALL_SUPPORTED" and the older "service:*"
POLICY_ID_PATTERN = re.compile(r"^p-[0-9a-zA-Z_]{8,128}$")

# IAM actions each workflow needs: named in the AccessDenied message as a ready-to-attach policy.
IMPORT_ACTIONS = ("organizations:ListPolicies", "organizations:DescribePolicy")
EFFECTIVE_ACTIONS = ("organizations:DescribeEffectivePolicy",)
DETECTION_ACTIONS = (
    "organizations:ListPolicies",
    "organizations:DescribePolicy",
    "organizations:ListPoliciesForTarget",
    "organizations:ListParents",
    "organizations:DescribeEffectivePolicy",
)
_ACCESS_DENIED_CODES = {"AccessDeniedException", "AccessDenied", "AccessDeniedForDependencyException"}

# Registry types by their tag-policy name, and per tag-policy service prefix ("es" for OpenSearch).
_TYPE_BY_POLICY_NAME = {row.tag_policy_name: row.id for row in REGISTRY.values()}
_TYPES_BY_POLICY_SERVICE: dict[str, list[str]] = {}
for _row in REGISTRY.values():
    _TYPES_BY_POLICY_SERVICE.setdefault(_row.tag_policy_name.split(":", 1)[0], []).append(_row.id)


# --- errors --------------------------------------------------------------------------------


def least_privilege_iam_policy(actions: Iterable[str]) -> str:
    """The IAM policy document (JSON) that grants exactly ``actions``, read-only."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOrganizationsTagPolicies",
                "Effect": "Allow",
                "Action": sorted(set(actions)),
                "Resource": "*",
            }
        ],
    }
    return json.dumps(document, indent=2)


class TagPolicyAccessDeniedError(TagComplianceError):
    """AWS refused an Organizations call; the message holds the IAM policy that would allow it."""

    def __init__(self, detail: str, actions: Sequence[str]) -> None:
        self.detail = detail
        self.actions = tuple(sorted(set(actions)))
        self.iam_policy = least_privilege_iam_policy(self.actions)
        note = (
            " ListPolicies and DescribePolicy work only in the management account or a delegated "
            "administrator; DescribeEffectivePolicy works in any member account."
            if set(self.actions) & {"organizations:ListPolicies", "organizations:DescribePolicy"}
            else ""
        )
        super().__init__(
            f"AWS denied access to the tag policies ({detail}). Attach this IAM policy to the "
            f"server's role or user:\n{self.iam_policy}\n{note.strip()}".rstrip()
        )

    def for_actions(self, actions: Sequence[str]) -> TagPolicyAccessDeniedError:
        """The same denial, naming every action the calling workflow needs."""
        return TagPolicyAccessDeniedError(self.detail, actions)


class TagPolicyNotFoundError(InvalidInputError):
    """The policy id names no tag policy; the message lists the ones that exist."""


class OrganizationsNotInUseError(TagComplianceError):
    """The account is not a member of an AWS Organization, so it has no tag policies."""


class EffectivePolicyNotFoundError(TagComplianceError):
    """No tag policy applies to the target, so it has no effective tag policy."""


# --- results -------------------------------------------------------------------------------


class TagPolicySummary(BaseModel):
    id: str
    arn: str | None = None
    name: str | None = None
    description: str | None = None
    aws_managed: bool = False


class ConversionSummary(BaseModel):
    required_tags_count: int
    optional_tags_count: int
    enforced_services: list[str] = Field(
        description="Services (as AWS names them) for which the policy blocks noncompliant tagging."
    )
    enforced_types: list[str] = Field(description="Registry resource types of those enforcements.")


class ConversionResult(BaseModel):
    policy: TaggingPolicy
    summary: ConversionSummary
    warnings: list[str] = Field(
        default_factory=list,
        description="Every AWS construct not carried into the policy as is, with its path and what was done.",
    )


ImportStatus = Literal["success", "choose_policy", "no_policy"]


class ImportResult(BaseModel):
    status: ImportStatus
    message: str
    policy: TaggingPolicy | None = None
    source_policy: TagPolicySummary | None = Field(
        default=None, description="The AWS tag policy imported (None for an effective policy)."
    )
    saved_to: str | None = None
    replaced_existing_file: bool = False
    summary: ConversionSummary | None = None
    warnings: list[str] = Field(default_factory=list)
    available_policies: list[TagPolicySummary] = Field(default_factory=list)


DetectionSource = Literal["file", "aws_tag_policy", "aws_effective_tag_policy", "default"]


class DetectionOutcome(BaseModel):
    """What start-up detection chose and why: for the start-up log and ``/health``."""

    source: DetectionSource
    reason: str
    policy_path: str
    policy: TaggingPolicy | None = Field(
        default=None, description="The policy chosen; None for 'file' (the file is loaded as usual)."
    )
    source_policy: TagPolicySummary | None = None
    saved_to: str | None = None
    summary: ConversionSummary | None = None
    warnings: list[str] = Field(default_factory=list)
    aws_called: bool = False

    @property
    def description(self) -> str:
        where = {
            "file": f"existing file {self.policy_path}",
            "aws_tag_policy": "AWS Organizations tag policy"
            + (f" {self.source_policy.id}" if self.source_policy else ""),
            "aws_effective_tag_policy": "AWS Organizations effective tag policy",
            "default": "built-in default policy (CostCenter, Owner, Environment)",
        }[self.source]
        return f"{where}: {self.reason}"


# --- conversion ----------------------------------------------------------------------------


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


def _parse_document(document: dict[str, Any] | str) -> dict[str, Any]:
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
    data = _parse_document(document)
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


# --- AWS Organizations ---------------------------------------------------------------------


def _translate(error: ClientError, actions: Sequence[str]) -> Exception:
    code = error_code(error)
    if code in _ACCESS_DENIED_CODES:
        return TagPolicyAccessDeniedError(describe_aws_error(error), actions)
    if code == "AWSOrganizationsNotInUseException":
        return OrganizationsNotInUseError(
            "this account is not a member of an AWS Organization, so it has no tag policies"
        )
    if code == "EffectivePolicyNotFoundException":
        return EffectivePolicyNotFoundError(
            "no tag policy applies to this target: it has no effective tag policy"
        )
    return error


def _summary(item: dict[str, Any]) -> TagPolicySummary:
    return TagPolicySummary(
        id=item["Id"],
        arn=item.get("Arn"),
        name=item.get("Name"),
        description=item.get("Description") or None,
        aws_managed=bool(item.get("AwsManaged", False)),
    )


def list_tag_policies(clients: AwsClients) -> list[TagPolicySummary]:
    """Every tag policy of the organization (ListPolicies, all pages)."""
    paginator = clients.client("organizations").get_paginator("list_policies")
    try:
        return [_summary(item) for page in paginator.paginate(Filter=TAG_POLICY) for item in page["Policies"]]
    except ClientError as error:
        raise _translate(error, IMPORT_ACTIONS) from None


def fetch_tag_policy(clients: AwsClients, policy_id: str) -> tuple[TagPolicySummary, dict[str, Any]]:
    """One tag policy's summary and document (DescribePolicy)."""
    try:
        response = clients.client("organizations").describe_policy(PolicyId=policy_id)
    except ClientError as error:
        if error_code(error) == "PolicyNotFoundException":
            raise TagPolicyNotFoundError(f"tag policy {policy_id!r} does not exist") from None
        raise _translate(error, IMPORT_ACTIONS) from None
    policy = response["Policy"]
    summary = _summary(policy["PolicySummary"])
    if policy["PolicySummary"].get("Type", TAG_POLICY) != TAG_POLICY:
        raise InvalidInputError(
            f"policy {policy_id!r} is a {policy['PolicySummary']['Type']}, not a tag policy"
        )
    return summary, _parse_document(policy["Content"])


def effective_tag_policy(clients: AwsClients, target_id: str | None = None) -> dict[str, Any]:
    """The effective tag policy of ``target_id`` (default: the caller's account)."""
    params: dict[str, Any] = {"PolicyType": TAG_POLICY}
    if target_id:
        params["TargetId"] = target_id
    try:
        response = clients.client("organizations").describe_effective_policy(**params)
    except ClientError as error:
        raise _translate(error, EFFECTIVE_ACTIONS) from None
    return _parse_document(response["EffectivePolicy"]["PolicyContent"])


class TagPolicySource(Protocol):
    """Where tag policies come from. Errors: the exceptions of this module, or botocore's."""

    def account_id(self) -> str: ...

    def list_tag_policies(self) -> list[TagPolicySummary]: ...

    def fetch_tag_policy(self, policy_id: str) -> tuple[TagPolicySummary, dict[str, Any]]: ...

    def effective_tag_policy(self, target_id: str | None = None) -> dict[str, Any]: ...

    def policies_for_target(self, target_id: str) -> list[TagPolicySummary]: ...

    def parent_ids(self, child_id: str) -> list[str]: ...


class OrganizationsTagPolicySource:
    """``TagPolicySource`` backed by the AWS Organizations API."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def account_id(self) -> str:
        return self._clients.account_id

    def list_tag_policies(self) -> list[TagPolicySummary]:
        return list_tag_policies(self._clients)

    def fetch_tag_policy(self, policy_id: str) -> tuple[TagPolicySummary, dict[str, Any]]:
        return fetch_tag_policy(self._clients, policy_id)

    def effective_tag_policy(self, target_id: str | None = None) -> dict[str, Any]:
        return effective_tag_policy(self._clients, target_id)

    def policies_for_target(self, target_id: str) -> list[TagPolicySummary]:
        paginator = self._clients.client("organizations").get_paginator("list_policies_for_target")
        try:
            pages = paginator.paginate(TargetId=target_id, Filter=TAG_POLICY)
            return [_summary(item) for page in pages for item in page["Policies"]]
        except ClientError as error:
            raise _translate(error, DETECTION_ACTIONS) from None

    def parent_ids(self, child_id: str) -> list[str]:
        paginator = self._clients.client("organizations").get_paginator("list_parents")
        try:
            return [item["Id"] for page in paginator.paginate(ChildId=child_id) for item in page["Parents"]]
        except ClientError as error:
            raise _translate(error, DETECTION_ACTIONS) from None


# --- saving --------------------------------------------------------------------------------


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


MAX_NAME_BYTES = 255  # NAME_MAX of Linux and macOS file systems
MAX_PATH_BYTES = 4095  # PATH_MAX less its terminating NUL


def resolve_output_path(output_path: str | Path | None, policies_dir: Path) -> Path:
    """Where to write a policy file: a ``.json`` file inside ``policies_dir``, symlinks resolved.

    A relative path is read like ``POLICY_PATH`` (from the working directory) when that lands
    inside ``policies_dir`` ("policies/tagging_policy.json"), else inside ``policies_dir``
    ("tagging_policy.json"). ``..``, other directories and other suffixes are refused.
    """
    raw = str(output_path) if output_path is not None else DEFAULT_POLICY_FILENAME
    if not raw.strip() or "\x00" in raw:
        raise InvalidInputError("output_path is empty")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise InvalidInputError(f"output_path {raw!r} must not contain '..'")
    if candidate.suffix.lower() != ".json":
        raise InvalidInputError(f"output_path {raw!r} must name a .json file")
    longest = max(len(os.fsencode(part)) for part in candidate.parts)
    if longest > MAX_NAME_BYTES:
        raise InvalidInputError(
            f"output_path is too long: one of its names has {longest} bytes, at most {MAX_NAME_BYTES}"
        )
    root = policies_dir.resolve()
    try:
        if not candidate.is_absolute():
            from_cwd = (Path.cwd() / candidate).resolve()
            candidate = from_cwd if _inside(from_cwd.parent, root) else root / candidate
        resolved = candidate.resolve()
        if len(os.fsencode(str(resolved))) > MAX_PATH_BYTES:
            raise InvalidInputError(f"output_path is too long: at most {MAX_PATH_BYTES} bytes in all")
        # The caller sees neither the resolved path nor the directory: server paths stay private.
        if not _inside(resolved.parent, root):
            raise InvalidInputError(
                f"output_path {raw!r} is outside the policies directory: give a .json file name "
                "inside it, such as finance.json"
            )
        if resolved.exists() and not resolved.is_file():
            raise InvalidInputError(f"output_path {raw!r} is not a regular file")
    except OSError as error:  # e.g. a symlink loop: still the caller's path, not a server fault
        raise InvalidInputError(f"output_path {raw!r} cannot be used: {error.strerror or error}") from None
    return resolved


def write_policy_file(policy: TaggingPolicy, path: Path) -> bool:
    """Write ``policy`` to ``path`` atomically, after checking it loads back unchanged.

    The JSON goes to a temporary file in the same directory, which ``load_policy`` must read back
    as the same policy before it replaces ``path``: a reader sees the old file or the new one,
    never a partial one. Returns whether a file was replaced.
    """
    text = json.dumps(policy.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()
    mode = path.stat().st_mode & 0o777 if replaced else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary_path = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        temporary_path.chmod(mode)
        loaded = load_policy(temporary_path)
        if loaded.policy != policy:
            raise PolicyError(f"the converted policy does not load back unchanged from {path}: not saved")
        temporary_path.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary_path.unlink()
        raise
    return replaced


# --- the import tool -----------------------------------------------------------------------


def _available(source: TagPolicySource) -> list[TagPolicySummary]:
    try:
        return source.list_tag_policies()
    except TagPolicyAccessDeniedError as error:
        raise error.for_actions(IMPORT_ACTIONS) from None


def import_tag_policy(
    source: TagPolicySource,
    policy_id: str | None,
    use_effective: bool,
    save_to_file: bool,
    output_path: str | None,
    policies_dir: Path,
) -> ImportResult:
    """Tool 14: fetch an AWS tag policy (or this account's effective one), convert it, maybe save it."""
    if use_effective and policy_id:
        raise InvalidInputError("pass either policy_id or use_effective, not both")
    if policy_id is not None and not POLICY_ID_PATTERN.match(policy_id):
        raise InvalidInputError(
            f"policy_id {policy_id!r} is not a policy id (p- and 8 to 128 letters or digits)"
        )
    # Refuse a bad output path before calling AWS.
    target = resolve_output_path(output_path, policies_dir) if save_to_file else None

    summary: TagPolicySummary | None = None
    if use_effective:
        try:
            document = source.effective_tag_policy(None)
        except TagPolicyAccessDeniedError as error:
            raise error.for_actions(EFFECTIVE_ACTIONS) from None
        except (EffectivePolicyNotFoundError, OrganizationsNotInUseError) as error:
            return ImportResult(status="no_policy", message=str(error))
        converted = convert_tag_policy(document, effective_for="")
        what = "the effective tag policy of this account"
    else:
        if policy_id is None:
            try:
                available = _available(source)
            except OrganizationsNotInUseError as error:
                return ImportResult(status="no_policy", message=str(error))
            if not available:
                return ImportResult(status="no_policy", message="the organization has no tag policies")
            if len(available) > 1:
                return ImportResult(
                    status="choose_policy",
                    message=f"{len(available)} tag policies exist: call again with the policy_id of one "
                    "(or use_effective for the merged policy that applies to this account)",
                    available_policies=available,
                )
            policy_id = available[0].id
        try:
            summary, document = source.fetch_tag_policy(policy_id)
        except TagPolicyNotFoundError:
            ids = ", ".join(f"{item.id} ({item.name})" for item in _available(source)) or "none"
            raise TagPolicyNotFoundError(
                f"tag policy {policy_id!r} does not exist; available tag policies: {ids}"
            ) from None
        except TagPolicyAccessDeniedError as error:
            raise error.for_actions(IMPORT_ACTIONS) from None
        converted = convert_tag_policy(document, policy_id=summary.id, name=summary.name, arn=summary.arn)
        what = f"tag policy {summary.id} ({summary.name})"

    replaced = write_policy_file(converted.policy, target) if target is not None else False
    message = (
        f"imported {what}: {converted.summary.required_tags_count} required and "
        f"{converted.summary.optional_tags_count} optional tag(s)"
        + (f"; saved to {target}" if target is not None else "; not saved (save_to_file is false)")
    )
    logger.info("%s (%d warning(s))", message, len(converted.warnings))
    return ImportResult(
        status="success",
        message=message,
        policy=converted.policy,
        source_policy=summary,
        saved_to=str(target) if target is not None else None,
        replaced_existing_file=replaced,
        summary=converted.summary,
        warnings=converted.warnings,
    )


# --- start-up detection --------------------------------------------------------------------


def _attached_policy(
    source: TagPolicySource, policies: list[TagPolicySummary]
) -> tuple[TagPolicySummary | None, str]:
    """The tag policy attached nearest to this account (the account, then its OUs up to the root)."""
    target = source.account_id()
    visited: set[str] = set()
    while target and target not in visited:
        visited.add(target)
        attached = source.policies_for_target(target)
        if len(attached) == 1:
            return attached[0], f"the one attached to {target}"
        if len(attached) > 1:
            names = ", ".join(item.id for item in attached)
            return None, f"{len(attached)} tag policies ({names}) are attached to {target}"
        parents = source.parent_ids(target)
        target = parents[0] if parents else ""
    return None, f"none of the {len(policies)} tag policies is attached to this account or its OUs"


def _fallback(
    reason: str, fallback_to_default: bool, policy_path: Path, aws_called: bool
) -> DetectionOutcome:
    if not fallback_to_default:
        raise PolicyError(
            f"no tagging policy: {policy_path} does not exist and {reason}. Create the file, set "
            "AWS_POLICY_ID, or set FALLBACK_TO_DEFAULT_POLICY=true to use the built-in default"
        )
    outcome = DetectionOutcome(
        source="default",
        reason=reason,
        policy_path=str(policy_path),
        policy=DEFAULT_POLICY,
        aws_called=aws_called,
    )
    logger.warning("tagging policy: %s", outcome.description)
    return outcome


def detect_policy_at_startup(
    source: TagPolicySource,
    *,
    auto_import: bool,
    policy_id: str | None,
    fallback_to_default: bool,
    policy_path: Path,
) -> DetectionOutcome:
    """Choose the tagging policy at start-up (spec: Automatic Policy Detection).

    An existing ``policy_path`` wins with no AWS call. Otherwise, with ``auto_import``: the
    configured ``policy_id``; else the only tag policy; else the one attached nearest to this
    account (account, then parent OUs); else this account's effective policy. The choice is
    converted and saved to ``policy_path``. With nothing to import (or AWS unreachable) the
    default policy is used when ``fallback_to_default``; otherwise ``PolicyError`` says why.
    A configured ``policy_id`` that does not exist is always an error.
    """
    if policy_path.exists():
        return DetectionOutcome(source="file", reason="the policy file exists", policy_path=str(policy_path))
    if not auto_import:
        return _fallback(
            "automatic import is off (AUTO_IMPORT_AWS_POLICY=false)", fallback_to_default, policy_path, False
        )
    if policy_id is not None and not POLICY_ID_PATTERN.match(policy_id):
        raise PolicyError(
            f"AWS_POLICY_ID {policy_id!r} is not a policy id (p- and 8 to 128 letters or digits)"
        )

    chosen: TagPolicySummary | None = None
    document: dict[str, Any] | None = None
    why = ""
    try:
        if policy_id is not None:
            try:
                chosen, document = source.fetch_tag_policy(policy_id)
            except TagPolicyNotFoundError:
                raise PolicyError(
                    f"AWS_POLICY_ID {policy_id!r} names no tag policy of this organization"
                ) from None
            why = "AWS_POLICY_ID names it"
        else:
            try:
                policies = source.list_tag_policies()
            except TagPolicyAccessDeniedError:
                policies = None  # a member account: only its effective policy is readable
                why = "ListPolicies is denied (a member account), so the effective policy was read"
            if policies is not None and not policies:
                return _fallback(
                    "the organization has no tag policies", fallback_to_default, policy_path, True
                )
            if policies is not None and len(policies) == 1:
                chosen, why = policies[0], "it is the organization's only tag policy"
            elif policies is not None:
                chosen, why = _attached_policy(source, policies)
                if chosen is None:
                    why += ", so the effective policy of this account was read"
            if chosen is not None:
                chosen, document = source.fetch_tag_policy(chosen.id)
            else:
                document = source.effective_tag_policy(None)
    except (OrganizationsNotInUseError, EffectivePolicyNotFoundError) as error:
        return _fallback(str(error), fallback_to_default, policy_path, aws_called=True)
    except TagPolicyAccessDeniedError as error:
        denied = error.for_actions(DETECTION_ACTIONS)
        return _fallback(str(denied), fallback_to_default, policy_path, True)
    except (ClientError, BotoCoreError) as error:
        return _fallback(
            f"reading the tag policies failed: {describe_aws_error(error)}",
            fallback_to_default,
            policy_path,
            True,
        )

    if chosen is not None:
        converted = convert_tag_policy(document, policy_id=chosen.id, name=chosen.name, arn=chosen.arn)
        kind: DetectionSource = "aws_tag_policy"
    else:
        converted = convert_tag_policy(document, effective_for="")
        kind = "aws_effective_tag_policy"
    write_policy_file(converted.policy, policy_path.resolve())
    outcome = DetectionOutcome(
        source=kind,
        reason=why,
        policy_path=str(policy_path),
        policy=converted.policy,
        source_policy=chosen,
        saved_to=str(policy_path.resolve()),
        summary=converted.summary,
        warnings=converted.warnings,
        aws_called=True,
    )
    logger.info(
        "tagging policy: %s; saved to %s (%d required, %d optional tag(s))",
        outcome.description,
        outcome.saved_to,
        converted.summary.required_tags_count,
        converted.summary.optional_tags_count,
    )
    for warning in converted.warnings:
        logger.info("tag policy conversion: %s", warning)
    return outcome

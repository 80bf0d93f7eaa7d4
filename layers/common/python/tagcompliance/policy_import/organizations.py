"""The AWS Organizations adapter: list, fetch and resolve tag policies through a ``TagPolicySource``."""

from __future__ import annotations

import re
from typing import Any, Protocol

from botocore.exceptions import ClientError

from tagcompliance.aws import AwsClients, error_code
from tagcompliance.errors import InvalidInputError

from .conversion import TAG_POLICY, parse_document
from .errors import (
    DETECTION_ACTIONS,
    EFFECTIVE_ACTIONS,
    IMPORT_ACTIONS,
    TagPolicyNotFoundError,
    organizations_error,
)
from .results import TagPolicySummary

POLICY_ID_PATTERN = re.compile(r"^p-[0-9a-zA-Z_]{8,128}$")


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
        raise organizations_error(error, IMPORT_ACTIONS) from None


def fetch_tag_policy(clients: AwsClients, policy_id: str) -> tuple[TagPolicySummary, dict[str, Any]]:
    """One tag policy's summary and document (DescribePolicy)."""
    try:
        response = clients.client("organizations").describe_policy(PolicyId=policy_id)
    except ClientError as error:
        if error_code(error) == "PolicyNotFoundException":
            raise TagPolicyNotFoundError(f"tag policy {policy_id!r} does not exist") from None
        raise organizations_error(error, IMPORT_ACTIONS) from None
    policy = response["Policy"]
    summary = _summary(policy["PolicySummary"])
    if policy["PolicySummary"].get("Type", TAG_POLICY) != TAG_POLICY:
        raise InvalidInputError(
            f"policy {policy_id!r} is a {policy['PolicySummary']['Type']}, not a tag policy"
        )
    return summary, parse_document(policy["Content"])


def effective_tag_policy(clients: AwsClients, target_id: str | None = None) -> dict[str, Any]:
    """The effective tag policy of ``target_id`` (default: the caller's account)."""
    params: dict[str, Any] = {"PolicyType": TAG_POLICY}
    if target_id:
        params["TargetId"] = target_id
    try:
        response = clients.client("organizations").describe_effective_policy(**params)
    except ClientError as error:
        raise organizations_error(error, EFFECTIVE_ACTIONS) from None
    return parse_document(response["EffectivePolicy"]["PolicyContent"])


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
            raise organizations_error(error, DETECTION_ACTIONS) from None

    def parent_ids(self, child_id: str) -> list[str]:
        paginator = self._clients.client("organizations").get_paginator("list_parents")
        try:
            return [item["Id"] for page in paginator.paginate(ChildId=child_id) for item in page["Parents"]]
        except ClientError as error:
            raise organizations_error(error, DETECTION_ACTIONS) from None

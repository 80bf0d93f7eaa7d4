"""What can go wrong reaching AWS Organizations (and how an AWS error code maps to it), and the
IAM actions each workflow needs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from botocore.exceptions import ClientError

from tagcompliance.aws import describe_aws_error, error_code
from tagcompliance.errors import InvalidInputError, TagComplianceError

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
ACCESS_DENIED_CODES = {"AccessDeniedException", "AccessDenied", "AccessDeniedForDependencyException"}


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


class NoTagPolicyError(TagComplianceError):
    """There is no tag policy to read here: the import says so, start-up detection falls back."""


class OrganizationsNotInUseError(NoTagPolicyError):
    """The account is not a member of an AWS Organization, so it has no tag policies."""


class EffectivePolicyNotFoundError(NoTagPolicyError):
    """No tag policy applies to the target, so it has no effective tag policy."""


def organizations_error(error: ClientError, actions: Sequence[str]) -> Exception:
    """The error of this module an Organizations call's ``ClientError`` means (else the error itself);
    an access denial names ``actions``, what the calling workflow needs."""
    code = error_code(error)
    if code in ACCESS_DENIED_CODES:
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

"""Start-up detection: no policy file, so look for the organization's tag policy and save it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import describe_aws_error
from tagcompliance.errors import PolicyError
from tagcompliance.policy import DEFAULT_POLICY

from .conversion import convert_tag_policy
from .errors import (
    DETECTION_ACTIONS,
    NoTagPolicyError,
    TagPolicyAccessDeniedError,
    TagPolicyNotFoundError,
)
from .files import write_policy_file
from .organizations import POLICY_ID_PATTERN, TagPolicySource
from .results import DetectionOutcome, DetectionSource, TagPolicySummary

logger = logging.getLogger("tagcompliance.policy_import")


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
    except NoTagPolicyError as error:
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

"""The import tool (``import_aws_tag_policy``): choose, convert, and optionally save a tag policy."""

from __future__ import annotations

import logging
from pathlib import Path

from tagcompliance.errors import InvalidInputError

from .conversion import convert_tag_policy
from .errors import (
    EFFECTIVE_ACTIONS,
    IMPORT_ACTIONS,
    NoTagPolicyError,
    TagPolicyAccessDeniedError,
    TagPolicyNotFoundError,
)
from .files import resolve_output_path, write_policy_file
from .organizations import POLICY_ID_PATTERN, TagPolicySource
from .results import ImportResult, TagPolicySummary

logger = logging.getLogger("tagcompliance.policy_import")


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
        except NoTagPolicyError as error:
            return ImportResult(status="no_policy", message=str(error))
        converted = convert_tag_policy(document, effective_for="")
        what = "the effective tag policy of this account"
    else:
        if policy_id is None:
            try:
                available = _available(source)
            except NoTagPolicyError as error:
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

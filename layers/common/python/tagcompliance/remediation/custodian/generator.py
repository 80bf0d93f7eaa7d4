"""``generate_custodian_policies``: names, descriptions, modes and the policies themselves."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import RequiredTag, TaggingPolicy
from tagcompliance.resources import REGISTRY, ResourceType, resolve_resource_types

from .checks import check_mark_days, check_placeholders, check_schedule, resolve_targets, resolve_violations
from .filters import allowed_values_regex, c7n_literal, missing_clauses, present_filter, tag_clauses
from .models import (
    CLOUDTRAIL_EVENTS,
    DEFAULT_SCHEDULE,
    MARK_OP,
    MARK_TAG,
    MAX_DESCRIPTION_LENGTH,
    MAX_POLICY_NAME_LENGTH,
    MODES,
    PLACEHOLDER_ROLE_ARN,
    POLICY_PREFIX,
    CustodianPolicies,
    Mode,
    SkippedType,
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _policy_name(parts: Sequence[str], taken: set[str]) -> str:
    """A c7n-valid policy name (``^[A-z][A-z0-9]*(-[A-z0-9]+)*$``), unique and short enough."""
    name = "-".join([POLICY_PREFIX, *(_slug(part) for part in parts)])
    if len(name) > MAX_POLICY_NAME_LENGTH or name in taken:
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:6]
        name = f"{name[: MAX_POLICY_NAME_LENGTH - 7].rstrip('-')}-{digest}"
    taken.add(name)
    return name


def _description(text: str) -> str:
    """``text`` made literal for c7n, cut to the length c7n accepts in Lambda modes."""
    if len(c7n_literal(text)) <= MAX_DESCRIPTION_LENGTH:
        return c7n_literal(text)
    cut = text[: MAX_DESCRIPTION_LENGTH - 3]
    while len(c7n_literal(cut)) > MAX_DESCRIPTION_LENGTH - 3:
        cut = cut[:-1]
    return c7n_literal(cut) + "..."


def _mode_block(mode: str, schedule: str | None, resource_type: str) -> dict[str, Any] | None:
    if mode == "periodic":
        return {"type": "periodic", "schedule": schedule or DEFAULT_SCHEDULE, "role": PLACEHOLDER_ROLE_ARN}
    if mode == "cloudtrail":
        return {
            "type": "cloudtrail",
            "events": [CLOUDTRAIL_EVENTS[resource_type]],
            "role": PLACEHOLDER_ROLE_ARN,
        }
    return None


def _policy(
    name: str,
    row: ResourceType,
    description: str,
    mode_block: dict[str, Any] | None,
    filters: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "name": name,
        "resource": f"aws.{row.custodian_resource}",
        "description": _description(description),
    }
    if mode_block is not None:
        policy["mode"] = copy.deepcopy(mode_block)  # shared objects would become YAML aliases
    policy["filters"] = filters
    if actions:
        policy["actions"] = actions
    return policy


def generate_custodian_policies(
    policy: TaggingPolicy,
    resource_types: Sequence[str] | None,
    violation_types: Sequence[str] | None,
    target_tags: Sequence[str] | None,
    dry_run: bool = True,
    placeholder_values: Mapping[str, str] | None = None,
    mark_for_op_days: int | None = None,
    mode: Mode = "pull",
    schedule: str | None = None,
) -> CustodianPolicies:
    """Cloud Custodian policies selecting the resources that violate ``policy``.

    ``resource_types``, ``violation_types`` and ``target_tags`` default (None or empty) to every
    registry type, every violation type and every required tag. ``placeholder_values`` maps a
    targeted tag to the value a non-dry-run ``tag`` action writes where that tag is missing; tags
    without one are never written. ``mark_for_op_days`` (1-90) marks the other violations with
    ``mark-for-op``. Raises ``InvalidInputError`` naming the offending argument.
    """
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; supported modes: {', '.join(MODES)}")
    check_schedule(mode, schedule)
    type_ids = resolve_resource_types(resource_types)
    violations = resolve_violations(violation_types)
    targets = resolve_targets(policy, target_tags)
    placeholders = check_placeholders(placeholder_values, targets)
    check_mark_days(mark_for_op_days)

    tag_violations = [value for value in violations if value != "prohibited_tag"]
    prohibited = list(policy.prohibited_tags) if "prohibited_tag" in violations else []
    fills = "missing_tag" in violations and not dry_run
    taken: set[str] = set()
    policies: list[dict[str, Any]] = []
    generated: list[str] = []
    skipped: list[SkippedType] = []
    unused_placeholders = set(placeholders)

    for type_id in type_ids:
        row = REGISTRY[type_id]
        applicable = [tag for tag in targets if tag.applies(type_id)]
        if not applicable and not prohibited:
            targeted = ", ".join(tag.name for tag in targets) or "none"
            skipped.append(
                SkippedType(
                    resource_type=type_id,
                    reason=f"no targeted required tag applies to {type_id} (targeted: {targeted})",
                )
            )
            continue
        all_clauses = [clause for tag in applicable for clause in tag_clauses(tag, tag_violations)]
        all_clauses += [present_filter(key) for key in prohibited]
        if not all_clauses:
            skipped.append(
                SkippedType(
                    resource_type=type_id,
                    reason=(
                        f"none of the requested violation types ({', '.join(violations)}) can occur for "
                        f"its targeted tags ({', '.join(tag.name for tag in applicable)}): invalid_value "
                        "needs allowed_values and invalid_format a validation_regex"
                    ),
                )
            )
            continue
        if mode == "cloudtrail" and type_id not in CLOUDTRAIL_EVENTS:
            skipped.append(
                SkippedType(
                    resource_type=type_id,
                    reason=(
                        f"c7n has no CloudTrail event shortcut for creating {type_id} "
                        f"(aws.{row.custodian_resource}); use mode 'periodic' or 'pull' for it"
                    ),
                )
            )
            continue
        main_name = _policy_name([type_id], taken)
        mode_block = _mode_block(mode, schedule, type_id)
        version = f"tagging policy {policy.version}"
        type_policies: list[dict[str, Any]] = []

        filled_tags = [tag for tag in applicable if fills and tag.name in placeholders]
        for tag in filled_tags:
            unused_placeholders.discard(tag.name)
            type_policies.append(
                _policy(
                    _policy_name([type_id, "add", tag.name], taken),
                    row,
                    f"Adds {tag.name}={placeholders[tag.name]} (a placeholder) to {type_id} resources "
                    f"where {tag.name} is missing or blank ({version}); existing values are kept.",
                    mode_block,
                    [{"or": missing_clauses(tag.name)}],
                    [{"type": "tag", "tags": {tag.name: c7n_literal(placeholders[tag.name])}}],
                )
            )

        filled = {tag.name for tag in filled_tags}
        clauses: list[dict[str, Any]] = []
        for tag in applicable:
            wanted = [
                value for value in tag_violations if not (value == "missing_tag" and tag.name in filled)
            ]
            clauses += tag_clauses(tag, wanted)
        clauses += [present_filter(key) for key in prohibited]
        if clauses:
            actions: list[dict[str, Any]] = []
            if not dry_run and mark_for_op_days is not None:
                actions.append(
                    {
                        "type": "mark-for-op",
                        "tag": MARK_TAG,
                        "op": MARK_OP,
                        "days": mark_for_op_days,
                        "msg": "Tag compliance violation: {op}@{action_date}",
                    }
                )
            checks = []
            if applicable and tag_violations:
                checks.append(f"{', '.join(tag_violations)} of {', '.join(tag.name for tag in applicable)}")
            if prohibited:
                checks.append(f"prohibited tags {', '.join(prohibited)}")
            remaining = "the remaining " if filled else ""
            type_policies.insert(
                0,
                _policy(
                    main_name,
                    row,
                    f"Selects {type_id} resources with {remaining}tagging violations ({version}): "
                    f"{'; '.join(checks)}.",
                    mode_block,
                    [{"or": clauses}],
                    actions,
                ),
            )
        policies += type_policies
        generated.append(type_id)

    if not policies:
        reasons = "; ".join(f"{item.resource_type}: {item.reason}" for item in skipped)
        raise InvalidInputError(f"no Cloud Custodian policy can be generated for this request: {reasons}")

    document = yaml.safe_dump(
        {"policies": policies}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )
    result = CustodianPolicies(
        yaml=document,
        policies=policies,
        resource_types=generated,
        skipped=skipped,
        notes=[],
        dry_run=dry_run,
        mode=mode,
    )
    result.notes += _notes(
        policy,
        result,
        violations=violations,
        targets=targets,
        placeholders=placeholders,
        unused_placeholders=unused_placeholders,
        mark_for_op_days=mark_for_op_days,
    )
    return result


def _notes(
    policy: TaggingPolicy,
    result: CustodianPolicies,
    *,
    violations: Sequence[str],
    targets: Sequence[RequiredTag],
    placeholders: Mapping[str, str],
    unused_placeholders: set[str],
    mark_for_op_days: int | None,
) -> list[str]:
    """How to run ``result`` and what it cannot do."""
    dry_run, mode, generated = result.dry_run, result.mode, result.resource_types
    notes = [
        "Check with `custodian validate policy.yml`; run with `custodian run -s OUTPUT -r REGION "
        "policy.yml` (add --dryrun to skip actions). Each policy writes the resources it selects "
        "to OUTPUT/[REGION/]POLICY-NAME/resources.json.",
        "Tag keys compare case-sensitively, as in AWS and Cost Explorer. Values are matched with "
        "c7n's case-sensitive 'regex-case' operator; each validation_regex is wrapped as "
        "(?:REGEX)\\Z because c7n anchors regexes at the start only.",
        "Braces in keys, values, regexes and descriptions are doubled ({{ and }}): `custodian run` "
        "expands {variables} in every string of a policy and turns them back into single braces.",
    ]
    wildcard_tags = [
        tag.name for tag in targets if allowed_values_regex(tag.allowed_values or []) is not None
    ]
    if wildcard_tags and {"invalid_value", "invalid_format"} & set(violations):
        notes.append(
            f"Allowed values with * wildcards ({', '.join(wildcard_tags)}) are matched with one "
            "anchored 'regex-case' expression per tag, every * read as any sequence of characters, "
            "instead of a literal in/not-in list, so c7n accepts exactly the values the compliance "
            "check accepts."
        )
    if "tag_key_transforms" in result.yaml:
        notes.append(
            "Keys in the wrong case are found with the value filter's `tag_key_transforms: [lower]` "
            "(in c7n 0.9.53, the version this was checked with; a c7n without it fails `custodian "
            "validate`), which covers every case variant of a key. Limitation: when a resource carries "
            "several case variants of one key, c7n reads the first and the compliance check the last, "
            "so such a resource can be classified differently."
        )
    if dry_run:
        notes.append(
            "Dry run: the policies have no actions and change nothing; they report. A c7n `notify` "
            "action needs a transport (an SQS queue read by c7n-mailer, or SNS) that cannot be "
            "assumed, so none is generated: add one to a policy's actions to send the report."
        )
        if placeholders:
            notes.append(
                "placeholder_values are used only when dry_run is false: no tag is written in a dry run."
            )
        if mark_for_op_days is not None:
            notes.append("mark_for_op_days is used only when dry_run is false.")
    else:
        if "missing_tag" in violations:
            if placeholders:
                notes.append(
                    "Tag policies (names containing '-add-') write the placeholder values given ("
                    + ", ".join(f"{key}={value}" for key, value in placeholders.items())
                    + ") only where that tag is missing or blank: an existing non-blank value is never "
                    "overwritten, and a value under a key in the wrong case is left for review. Placeholders "
                    "are not real values: replace them with the owners' answers."
                )
            without = [tag.name for tag in targets if tag.name not in placeholders]
            if without:
                notes.append(
                    f"No placeholder was given for {', '.join(without)}: missing values are not written "
                    "(no value is invented); the per-type policies select those resources"
                    + (" and mark them." if mark_for_op_days is not None else ".")
                )
        elif placeholders:
            notes.append("placeholder_values are unused: missing_tag is not among the violation types.")
        if mark_for_op_days is not None:
            notes.append(
                f"mark-for-op tags each selected resource with '{MARK_TAG}' = 'Tag compliance violation: "
                f"{MARK_OP}@DATE', {mark_for_op_days} day(s) ahead. Acting on it needs a second policy with "
                f"the `marked-for-op` filter (tag: {MARK_TAG}, op: {MARK_OP}) and a `notify` action with "
                "your transport."
            )
        else:
            notes.append(
                "No mark_for_op_days: violations that cannot be fixed by a placeholder (wrong key case, "
                "invalid values or formats) are only reported."
            )
        if unused_placeholders:
            notes.append(
                f"Placeholder(s) for {', '.join(sorted(unused_placeholders))} apply to none of the "
                "generated resource types and are unused."
            )
    if mode == "periodic":
        notes.append(
            f"Periodic mode deploys each policy as a Lambda function run on its schedule; the role "
            f"{PLACEHOLDER_ROLE_ARN} is a PLACEHOLDER: replace it with a role Lambda can assume that "
            "may describe and tag the resources (c7n fills in {account_id})."
        )
    elif mode == "cloudtrail":
        notes.append(
            f"CloudTrail mode runs each policy when its create event arrives (CloudTrail must be on); "
            f"the role {PLACEHOLDER_ROLE_ARN} is a PLACEHOLDER to replace. Tags added after the create "
            "call are not seen yet: set `delay` in the mode or pair it with a periodic policy. "
            "opensearch:domain fires on CreateElasticsearchDomain only, not on OpenSearch's CreateDomain."
        )
    if "s3:bucket" in generated:
        notes.append(
            "aws.s3 lists every bucket of the account whatever region it runs in: run the S3 policy in "
            "one region only, or each bucket is reported once per region."
        )
    if "prohibited_tag" in violations and policy.prohibited_tags:
        notes.append(
            f"Prohibited tags ({', '.join(policy.prohibited_tags)}) are only selected, never removed."
        )
    return notes

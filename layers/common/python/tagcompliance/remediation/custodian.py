r"""Cloud Custodian (c7n) policies that find, and optionally fix, the resources violating the tagging policy.

One policy per registry resource type selects exactly what the compliance engine
(``compliance.evaluate``) reports for that type: its filter is one ``or`` block over every
(required tag applying to the type) x (requested violation type), each clause restating the
engine's rule for that pair:

``missing_tag``
    the exact key is absent and no key equal to it case-insensitively has a non-blank value, or
    the exact key has a blank (empty or whitespace) value;
``wrong_key_case``
    the exact key is absent and a key equal to it case-insensitively has a non-blank value;
``invalid_value``
    the exact key has a non-blank value that is not one of ``allowed_values``; when an allowed value
    holds a ``*`` wildcard (any sequence of characters, as ``RequiredTag.value_allowed`` reads it),
    the list becomes one anchored, case-sensitive regex (``allowed_values_regex``) instead of a
    literal ``not-in`` list, which would take "team-*" for the value "team-*" only;
``invalid_format``
    the exact key has a non-blank value (one of ``allowed_values`` when they are set: otherwise it
    is an invalid_value) that does not wholly match ``validation_regex``;
``prohibited_tag``
    a prohibited key is present (exact case). Prohibited tags are not required tags, so
    ``target_tags`` does not restrict them.

c7n behaviour the clauses rely on (c7n 0.9.53, ``c7n/filters/core.py``):

* ``{"tag:K": "absent"}`` matches when no tag has exactly the key ``K``; keys compare case-sensitively.
* ``op: regex`` matches case-INsensitively; ``op: regex-case`` is used so values compare as the
  engine compares them. Both use ``re.match`` (anchored at the start only), so a policy regex is
  wrapped as ``(?:REGEX)\Z`` to require a whole-value match like the engine's ``fullmatch``.
* ``value_type: normalize`` strips (and lowercases) the value before comparing, and leaves an
  absent one None: with ``value: empty`` it matches an absent, empty or whitespace value, with
  ``value: not-null`` a non-blank one, as the engine's ``value.strip()`` decides.
* ``op: not-in`` treats an absent key as a value not in the list, so it is guarded by "the key
  has a non-blank value" unless missing_tag and wrong_key_case are requested too (their clause
  selects those resources anyway).
* ``tag_key_transforms: [lower]`` lowercases the resource's tag keys before the lookup, so
  ``tag:owner`` with it finds ``Owner``, ``OWNER``, ``oWnEr`` ...: the case-insensitive key
  lookup wrong_key_case needs, for every variant rather than a list of guessed ones. Limitation:
  c7n uses the first tag whose lowered key matches, the engine the last one, so a resource
  carrying two case variants of a key (one blank, one not) can be classified differently.

Dry run (the default) produces report-only policies (no actions): ``custodian run`` writes what
each policy selects to ``OUTPUT/POLICY/resources.json``. Otherwise a ``tag`` policy per tag with a
caller-given placeholder value fills that tag where it is missing (its filter is exactly the
missing_tag clause, so an existing non-blank value is never overwritten), and the per-type policy
keeps the remaining violations, marking them with ``mark-for-op`` when ``mark_for_op_days`` is
given. No tag value is ever invented.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tagcompliance.compliance import VIOLATION_TYPES
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import WILDCARD, RequiredTag, TaggingPolicy
from tagcompliance.resources import REGISTRY, ResourceType, resolve_resource_types

Mode = Literal["pull", "periodic", "cloudtrail"]
MODES: tuple[str, ...] = ("pull", "periodic", "cloudtrail")

POLICY_PREFIX = "tag-compliance"
DEFAULT_SCHEDULE = "rate(1 day)"
# Lambda modes need an execution role; c7n expands {account_id} when it loads the policy.
PLACEHOLDER_ROLE_ARN = "arn:aws:iam::{account_id}:role/REPLACE-ME-custodian-tag-compliance"
MARK_TAG = "tag-compliance-status"
MARK_OP = "notify"
MIN_MARK_DAYS, MAX_MARK_DAYS = 1, 90
MAX_TAG_VALUE_LENGTH = 256  # AWS limit on a tag value
# c7n deploys a Lambda-mode policy as the function "custodian-<name>" (at most 64 characters) and
# rejects a description longer than 256 characters; every policy respects both, whatever its mode.
MAX_POLICY_NAME_LENGTH = 64 - len("custodian-")
MAX_DESCRIPTION_LENGTH = 256

# Create events c7n has CloudTrail shortcuts for (c7n.cwe.CloudWatchEvents.trail_events) whose ids
# are the ids of the registry type's c7n resource. Other types have no shortcut (or one for a
# different resource: CreateCluster is Redshift's, CreateLoadBalancer yields classic ELB names).
CLOUDTRAIL_EVENTS: dict[str, str] = {
    "ec2:instance": "RunInstances",
    "ec2:volume": "CreateVolume",
    "rds:db": "CreateDBInstance",
    "s3:bucket": "CreateBucket",
    "lambda:function": "CreateFunction",
    "dynamodb:table": "CreateTable",
    "opensearch:domain": "CreateElasticsearchDomain",
}

_BLANK = r"^\s*$"  # present with an empty or whitespace value (what the engine's strip() finds empty)
_LEADING_FLAGS = re.compile(r"^(?:\(\?[aiLmsux]+\))+")
_RATE = re.compile(r"^rate\((?P<count>[1-9]\d*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(\S+( \S+){5}\)$")


class SkippedType(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    reason: str


class CustodianPolicies(BaseModel):
    """Generated Cloud Custodian policies: the YAML document and the same policies as data."""

    yaml: str = Field(description="The policy file: a `policies:` list, ready for `custodian run`.")
    policies: list[dict[str, Any]] = Field(description="The policies of `yaml`, as data.")
    resource_types: list[str] = Field(description="Registry types that got at least one policy.")
    skipped: list[SkippedType] = Field(description="Requested types without a policy, and why.")
    notes: list[str] = Field(description="How to run the policies and what they cannot do.")
    dry_run: bool
    mode: Mode


# --- c7n filter fragments ------------------------------------------------------------------


def _literal(value: Any) -> Any:
    """``value`` with its braces doubled, so ``custodian run`` gives back exactly ``value``.

    c7n formats every string value of a policy with its variables ({account_id}, {region} ...)
    when it loads it for a run: a lone brace would crash the run, and "{region}" would be replaced.
    Dictionary keys are not formatted, so the short ``{"tag:K": "absent"}`` form needs nothing.
    """
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def _value(key: str, op: str, value: Any) -> dict[str, Any]:
    return {"type": "value", "key": _literal(f"tag:{key}"), "op": op, "value": _literal(value)}


def _absent(key: str) -> dict[str, Any]:
    return {f"tag:{key}": "absent"}


def _present(key: str) -> dict[str, Any]:
    return {f"tag:{key}": "present"}


def _blank(key: str) -> dict[str, Any]:
    """The exact key is present with an empty or whitespace value."""
    return _value(key, "regex-case", _BLANK)


def _unset(key: str) -> dict[str, Any]:
    """The exact key is absent or blank (``normalize`` strips the value, as the engine does)."""
    return {"type": "value", "key": _literal(f"tag:{key}"), "value_type": "normalize", "value": "empty"}


def _set(key: str) -> dict[str, Any]:
    """The exact key has a non-blank value."""
    return {"type": "value", "key": _literal(f"tag:{key}"), "value_type": "normalize", "value": "not-null"}


def _any_case_filled(key: str) -> dict[str, Any]:
    """Some tag whose key equals ``key`` case-insensitively has a non-blank value."""
    return {
        "type": "value",
        "key": _literal(f"tag:{key.lower()}"),
        "tag_key_transforms": ["lower"],
        "value_type": "normalize",
        "value": "not-null",
    }


def full_match_regex(regex: str) -> str:
    r"""``regex`` rewritten so that ``re.match`` (what c7n uses) behaves as ``re.fullmatch``.

    Leading global flags such as ``(?i)`` stay in front; in verbose mode the group is closed on a
    new line so a trailing ``# comment`` cannot swallow it.
    """
    flags = _LEADING_FLAGS.match(regex)
    head = flags.group(0) if flags else ""
    body = regex[len(head) :]
    close = "\n)" if "x" in head else ")"
    wrapped = f"{head}(?:{body}{close}\\Z"
    re.compile(wrapped)  # the policy's regex compiled, so this only fails on a bug here
    return wrapped


def allowed_values_regex(values: Sequence[str]) -> str | None:
    r"""One regex that ``re.match`` (c7n's ``regex-case``) matches exactly on the allowed values.

    None when no value holds a ``*``: the literal ``in`` / ``not-in`` list is then exact. Otherwise
    every entry becomes an alternative: its text escaped, each ``*`` turned into ``.*`` (any
    sequence of characters, newlines too: ``(?s)``), the whole anchored at the end with ``\Z``
    (``re.match`` anchors the start). No ``(?i)``: values compare case-sensitively, as in
    ``RequiredTag.value_allowed``. Only standard ``re`` syntax, so any c7n's Python accepts it.
    """
    entries = list(dict.fromkeys(values))
    if not any(WILDCARD in entry for entry in entries):
        return None
    alternatives = (".*".join(re.escape(part) for part in entry.split(WILDCARD)) for entry in entries)
    return f"(?s)(?:{'|'.join(alternatives)})\\Z"


def _allowed(key: str, values: Sequence[str]) -> dict[str, Any]:
    """The exact key's value is one of ``values`` (an absent key never is)."""
    regex = allowed_values_regex(values)
    return _value(key, "in", list(values)) if regex is None else _value(key, "regex-case", regex)


def _not_allowed(key: str, values: Sequence[str]) -> dict[str, Any]:
    """The exact key's value is not one of ``values`` (an absent key counts as not allowed)."""
    regex = allowed_values_regex(values)
    return _value(key, "not-in", list(values)) if regex is None else {"not": [_allowed(key, values)]}


def _missing_clauses(key: str) -> list[dict[str, Any]]:
    """missing_tag alone: absent with no case variant holding a value, or present and blank.

    Also the filter of the tag action, so it only ever matches where the exact key has no value.
    """
    return [{"and": [_absent(key), {"not": [_any_case_filled(key)]}]}, _blank(key)]


def _tag_clauses(tag: RequiredTag, violations: Sequence[str]) -> list[dict[str, Any]]:
    """Clauses selecting resources with any of ``violations`` for ``tag``, to be OR-ed.

    Their union is exact; a clause drops a guard when another requested clause already selects
    what the guard excludes (fewer filters also keep ``custodian validate`` fast: its JSON-schema
    check costs about a quarter of a second per filter).
    """
    key = tag.name
    clauses: list[dict[str, Any]] = []
    missing, wrong_case = "missing_tag" in violations, "wrong_key_case" in violations
    unset_covered = missing and wrong_case  # absent-or-blank is selected already
    if unset_covered:
        # Together they are exactly "the exact key is absent or blank", whatever the variants.
        clauses.append(_unset(key))
    elif missing:
        clauses += _missing_clauses(key)
    elif wrong_case:
        clauses.append({"and": [_absent(key), _any_case_filled(key)]})
    invalid_value = "invalid_value" in violations and bool(tag.allowed_values)
    if invalid_value:
        outside = _not_allowed(key, tag.allowed_values or [])
        clauses.append(outside if unset_covered else {"and": [_set(key), outside]})
    if "invalid_format" in violations and tag.validation_regex:
        guards = [] if unset_covered else [_set(key)]
        if tag.allowed_values and not invalid_value:  # a value outside the list is an invalid_value
            guards.append(_allowed(key, tag.allowed_values))
        mismatch = {"not": [_value(key, "regex-case", full_match_regex(tag.validation_regex))]}
        clauses.append({"and": [*guards, mismatch]} if guards else mismatch)
    return clauses


# --- names, descriptions, modes ------------------------------------------------------------


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
    if len(_literal(text)) <= MAX_DESCRIPTION_LENGTH:
        return _literal(text)
    cut = text[: MAX_DESCRIPTION_LENGTH - 3]
    while len(_literal(cut)) > MAX_DESCRIPTION_LENGTH - 3:
        cut = cut[:-1]
    return _literal(cut) + "..."


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


# --- input validation ----------------------------------------------------------------------


def _check_schedule(mode: str, schedule: str | None) -> None:
    if schedule is None:
        return
    if mode != "periodic":
        raise InvalidInputError(f"schedule is only used with mode 'periodic', not with mode {mode!r}")
    rate = _RATE.match(schedule)
    if rate:
        singular = rate["count"] == "1"
        if singular != (not rate["unit"].endswith("s")):
            raise InvalidInputError(
                f"schedule {schedule!r}: use a singular unit for 1 and a plural one otherwise, "
                "e.g. 'rate(1 day)' or 'rate(12 hours)'"
            )
        return
    if not _CRON.match(schedule):
        raise InvalidInputError(
            f"schedule {schedule!r} is not an EventBridge schedule expression: "
            "expected 'rate(N unit)' such as 'rate(1 day)', or 'cron(...)' with six fields"
        )


def _resolve_violations(requested: Sequence[str] | None) -> list[str]:
    values = list(dict.fromkeys(requested or []))
    if not values:
        return list(VIOLATION_TYPES)
    unknown = [value for value in values if value not in VIOLATION_TYPES]
    if unknown:
        raise InvalidInputError(
            f"unknown violation type(s): {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(VIOLATION_TYPES)}"
        )
    return [value for value in VIOLATION_TYPES if value in values]


def _resolve_targets(policy: TaggingPolicy, requested: Sequence[str] | None) -> list[RequiredTag]:
    by_name = {tag.name: tag for tag in policy.required_tags}
    values = list(dict.fromkeys(requested or []))
    if not values:
        return list(policy.required_tags)
    unknown = [value for value in values if value not in by_name]
    if unknown:
        hints = []
        for value in unknown:
            same = [name for name in by_name if name.lower() == value.lower()]
            hints.append(f"{value!r} (did you mean {same[0]!r}?)" if same else repr(value))
        raise InvalidInputError(
            f"target tag(s) {', '.join(hints)} are not required tags of the policy; "
            f"required tags: {', '.join(by_name) or 'none'} (tag keys are case-sensitive)"
        )
    return [tag for tag in policy.required_tags if tag.name in values]


def _check_placeholders(
    placeholders: Mapping[str, str] | None, targets: Sequence[RequiredTag]
) -> dict[str, str]:
    if not placeholders:
        return {}
    by_name = {tag.name: tag for tag in targets}
    result: dict[str, str] = {}
    for key, value in placeholders.items():
        tag = by_name.get(key)
        if tag is None:
            raise InvalidInputError(
                f"placeholder for {key!r}, which is not a targeted tag; "
                f"targeted tags: {', '.join(by_name) or 'none'}"
            )
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(
                f"placeholder for {key!r} is empty: an empty or whitespace value counts as missing"
            )
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise InvalidInputError(
                f"placeholder for {key!r} is {len(value)} characters long; AWS allows at most "
                f"{MAX_TAG_VALUE_LENGTH}"
            )
        problem = tag.rejection(value)
        if problem:
            raise InvalidInputError(f"placeholder {value!r} for {key!r} {problem}")
        result[key] = value
    return result


def _check_mark_days(days: int | None) -> None:
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_MARK_DAYS <= days <= MAX_MARK_DAYS:
        raise InvalidInputError(
            f"mark_for_op_days must be a whole number of days from {MIN_MARK_DAYS} to {MAX_MARK_DAYS}, "
            f"got {days!r}"
        )


# --- the generator -------------------------------------------------------------------------


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
    _check_schedule(mode, schedule)
    type_ids = resolve_resource_types(resource_types)
    violations = _resolve_violations(violation_types)
    targets = _resolve_targets(policy, target_tags)
    placeholders = _check_placeholders(placeholder_values, targets)
    _check_mark_days(mark_for_op_days)

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
        all_clauses = [clause for tag in applicable for clause in _tag_clauses(tag, tag_violations)]
        all_clauses += [_present(key) for key in prohibited]
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
                    [{"or": _missing_clauses(tag.name)}],
                    [{"type": "tag", "tags": {tag.name: _literal(placeholders[tag.name])}}],
                )
            )

        filled = {tag.name for tag in filled_tags}
        clauses: list[dict[str, Any]] = []
        for tag in applicable:
            wanted = [
                value for value in tag_violations if not (value == "missing_tag" and tag.name in filled)
            ]
            clauses += _tag_clauses(tag, wanted)
        clauses += [_present(key) for key in prohibited]
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
    notes = _notes(
        policy,
        dry_run=dry_run,
        mode=mode,
        violations=violations,
        targets=targets,
        placeholders=placeholders,
        unused_placeholders=unused_placeholders,
        mark_for_op_days=mark_for_op_days,
        generated=generated,
        uses_key_transforms="tag_key_transforms" in document,
    )
    return CustodianPolicies(
        yaml=document,
        policies=policies,
        resource_types=generated,
        skipped=skipped,
        notes=notes,
        dry_run=dry_run,
        mode=mode,
    )


def _notes(
    policy: TaggingPolicy,
    *,
    dry_run: bool,
    mode: str,
    violations: Sequence[str],
    targets: Sequence[RequiredTag],
    placeholders: Mapping[str, str],
    unused_placeholders: set[str],
    mark_for_op_days: int | None,
    generated: Sequence[str],
    uses_key_transforms: bool,
) -> list[str]:
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
    if uses_key_transforms:
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

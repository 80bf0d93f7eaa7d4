"""A change set as an exact plan: each resource's tags before and after, checked before anything is
written, and a digest the confirmation token binds (so a token confirms exactly this diff: if the
changes, or the tags they start from, differ at confirmation, the token is refused).

Three sources: explicit changes (``plan_changes``), suggest_tags' values (``suggested_changes``
feeds ``plan_changes``), and the undo of a remediation (``plan_undo``). A resource in an account whose
remediation role could not be assumed is planned as refused (``refused_change``): named with the
reason in the diff, journaled as failed, never written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tagcompliance.compliance import Resource, compile_policy, evaluate
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import TaggingPolicy
from tagcompliance.resources import REGISTRY, ParsedArn, parse_arn, resolve_resource_types
from tagcompliance.store.remediations import RemediationItemRecord
from tagcompliance.suggest import suggest_tags

from .models import ChangeSetPreview, PolicyPreview, ResourceDiff
from .reads import CurrentTags
from .rules import change_problems, refuse

TAGGING_API_BATCH = 20  # TagResources / UntagResources take at most 20 ARNs


@dataclass(frozen=True, slots=True)
class PlannedChange:
    resource_arn: str
    resource_type: str
    region: str
    account_id: str
    before: dict[str, str]
    set_tags: dict[str, str]  # only keys whose value changes
    remove_keys: list[str]  # only keys present
    skipped: str | None = None  # why it is not written (undo: a concurrent edit; a refused account)
    refused: bool = False  # its account's remediation role could not be assumed: a failure, not a skip

    @property
    def after(self) -> dict[str, str]:
        if self.skipped:
            return dict(self.before)
        after = {k: v for k, v in self.before.items() if k not in self.remove_keys}
        after.update(self.set_tags)
        return after

    @property
    def writes(self) -> bool:
        return self.skipped is None and bool(self.set_tags or self.remove_keys)

    def diff(self) -> ResourceDiff:
        before, after = self.before, self.after
        return ResourceDiff(
            resource_arn=self.resource_arn,
            resource_type=self.resource_type,
            region=self.region,
            before=before,
            after=after,
            added={k: v for k, v in after.items() if k not in before},
            changed={k: [before[k], v] for k, v in after.items() if k in before and before[k] != v},
            removed={k: v for k, v in before.items() if k not in after},
            note=self.skipped or (None if self.writes else "unchanged: the tags already are as asked"),
        )


@dataclass(slots=True)
class ChangePlan:
    changes: list[PlannedChange]
    regrets: list[str] = field(default_factory=list)
    undoes: str | None = None

    def digest(self) -> str:
        body = [
            [
                c.resource_arn,
                sorted(c.before.items()),
                sorted(c.set_tags.items()),
                sorted(c.remove_keys),
                c.skipped,
            ]
            for c in sorted(self.changes, key=lambda c: c.resource_arn)
        ]
        text = json.dumps([self.undoes, body], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def write_requests(self) -> int:
        return estimate_write_requests(self.changes)

    def refused_accounts(self) -> dict[str, str]:
        """Account -> why its changes are not written (its remediation role cannot be assumed)."""
        return {
            c.account_id: c.skipped or ""
            for c in sorted(self.changes, key=lambda c: c.account_id)
            if c.refused
        }

    def preview(self, policy: TaggingPolicy) -> ChangeSetPreview:
        writing = [c for c in self.changes if c.writes]
        return ChangeSetPreview(
            change_set_digest=self.digest(),
            resources=len(self.changes),
            to_write=len(writing),
            unchanged=sum(1 for c in self.changes if not c.writes and not c.skipped),
            skipped=sum(1 for c in self.changes if c.skipped and not c.refused),
            refused_accounts=self.refused_accounts(),
            by_type=dict(sorted(Counter(c.resource_type for c in writing).items())),
            by_region=dict(sorted(Counter(c.region for c in writing).items())),
            by_account=dict(sorted(Counter(c.account_id for c in writing).items())),
            policy_after=policy_preview([c for c in self.changes if not c.refused], policy),
            regrets=list(self.regrets),
            diffs=[c.diff() for c in self.changes],
            write_requests=self.write_requests(),
        )


def estimate_write_requests(changes: Sequence[PlannedChange]) -> int:
    """Requests the writer sends: per account and region, one per 20 ARNs sharing the same tags (or
    keys) to set (remove); one read and one write per resource whose type writes its whole set itself."""
    groups: Counter[tuple[str, str, str, str]] = Counter()
    whole_set = 0
    for change in changes:
        if not change.writes:
            continue
        if REGISTRY[change.resource_type].tag_set_writer is not None:
            whole_set += 2
            continue
        if change.set_tags:
            groups[
                (change.account_id, change.region, "set", json.dumps(sorted(change.set_tags.items())))
            ] += 1
        if change.remove_keys:
            groups[(change.account_id, change.region, "remove", json.dumps(sorted(change.remove_keys)))] += 1
    return whole_set + sum(-(-n // TAGGING_API_BATCH) for n in groups.values())


def policy_preview(changes: Sequence[PlannedChange], policy: TaggingPolicy) -> PolicyPreview:
    types = sorted({c.resource_type for c in changes})
    compiled = compile_policy(policy, types)

    def resources(after: bool) -> list[Resource]:
        return [
            Resource(
                arn=c.resource_arn,
                resource_type=c.resource_type,
                region=c.region,
                account_id=c.account_id,
                resource_id=c.resource_arn,
                tags=c.after if after else c.before,
            )
            for c in changes
        ]

    before, after = evaluate(resources(False), compiled), evaluate(resources(True), compiled)
    return PolicyPreview(
        resources=len(changes),
        compliant_before=len(changes) - len(before.noncompliant_arns),
        compliant_after=len(changes) - len(after.noncompliant_arns),
        violations_before=len(before.violations),
        violations_after=len(after.violations),
    )


def refused_change(arn: str, resource_type: str, region: str, account_id: str, reason: str) -> PlannedChange:
    """A change in an account whose remediation role could not be assumed: its tags could not even
    be read, so it is planned with no diff and the reason, and journaled as failed."""
    return PlannedChange(
        arn,
        resource_type,
        region,
        account_id,
        {},
        {},
        [],
        skipped=f"not written: account {account_id} refused: {reason}",
        refused=True,
    )


@dataclass(frozen=True, slots=True)
class RequestedChange:
    resource_arn: str
    set_tags: Mapping[str, str]
    remove_tags: Sequence[str]


def parse_changes(changes: Sequence[RequestedChange]) -> list[ParsedArn]:
    """Every ARN parsed (registry types only) and no ARN twice; all problems reported together."""
    problems: list[str] = []
    parsed: list[ParsedArn] = []
    seen: set[str] = set()
    for change in changes:
        if change.resource_arn in seen:
            problems.append(f"{change.resource_arn} appears more than once; merge its changes")
            continue
        seen.add(change.resource_arn)
        if not change.set_tags and not change.remove_tags:
            problems.append(f"{change.resource_arn}: neither set_tags nor remove_tags")
        try:
            parsed.append(parse_arn(change.resource_arn))
        except InvalidInputError as error:
            problems.append(str(error))
    refuse(problems)
    return parsed


def plan_changes(
    changes: Sequence[RequestedChange],
    current: Mapping[str, CurrentTags],
    account_id: str,
    policy: TaggingPolicy,
    allow_policy_violations: bool,
    not_found: Sequence[str] = (),
    refused: Mapping[str, str] | None = None,
) -> ChangePlan:
    """The plan of explicit changes over the tags read just now; refused (nothing written) on any problem.
    ``account_id`` is the credentials' own (an S3 bucket's ARN names none); ``refused``: account -> why
    its remediation role could not be assumed (its changes are planned as refused)."""
    refused = refused or {}
    problems = [
        f"{arn}: no such resource in account {parse_arn(arn).account_id or account_id}" for arn in not_found
    ]
    regrets: list[str] = []
    planned: list[PlannedChange] = []
    for change in changes:
        parsed = parse_arn(change.resource_arn)
        account = parsed.account_id or account_id
        if account in refused:
            planned.append(
                refused_change(
                    change.resource_arn, parsed.resource_type, parsed.region, account, refused[account]
                )
            )
            continue
        found = current.get(change.resource_arn)
        if found is None:
            continue
        before = dict(found.tags)
        set_tags = {k: v for k, v in change.set_tags.items() if before.get(k) != v}
        remove = sorted(k for k in set(change.remove_tags) if k in before)
        item = PlannedChange(
            change.resource_arn,
            parsed.resource_type,
            found.region,
            account,
            before,
            set_tags,
            remove,
        )
        refusals, allowed = change_problems(
            item.resource_arn,
            item.resource_type,
            change.set_tags,
            change.remove_tags,
            item.after,
            policy,
            allow_policy_violations,
        )
        problems += refusals
        regrets += allowed
        regrets += [
            f"{item.resource_arn}: overwrites {k}={before[k]!r} with {v!r}"
            for k, v in set_tags.items()
            if k in before
        ]
        planned.append(item)
    refuse(problems)
    refuse_if_all_refused(planned)
    return ChangePlan(planned, regrets)


def refuse_if_all_refused(planned: Sequence[PlannedChange]) -> None:
    """Nothing but refused accounts: an error naming them, rather than a change set that writes nothing."""
    if planned and all(change.refused for change in planned):
        reasons = {change.account_id: change.skipped or "" for change in planned}
        refuse([reason for _, reason in sorted(reasons.items())])


def suggested_changes(
    population: Sequence[Resource],
    policy: TaggingPolicy,
    resource_types: Sequence[str],
    regions: Sequence[str],
    min_confidence: float,
    tags: Sequence[str] | None,
    limit: int = 1000,
) -> list[RequestedChange]:
    """suggest_tags' values at or above ``min_confidence`` for each resource of these types and regions
    with a missing or invalid required tag (a wrong-cased key is replaced by the right one)."""
    types = set(resolve_resource_types(resource_types))
    wanted_tags = set(tags) if tags else None
    changes: list[RequestedChange] = []
    for resource in population:
        if resource.resource_type not in types or resource.region not in regions:
            continue
        result = suggest_tags(resource, population, policy)
        set_tags: dict[str, str] = {}
        remove: list[str] = []
        for suggestion in result.suggestions:
            if suggestion.confidence < min_confidence:
                continue
            if wanted_tags is not None and suggestion.tag_key not in wanted_tags:
                continue
            set_tags[suggestion.tag_key] = suggestion.suggested_value
            if suggestion.current_key and suggestion.current_key != suggestion.tag_key:
                remove.append(suggestion.current_key)
        if set_tags:
            changes.append(RequestedChange(resource.arn, set_tags, remove))
    if len(changes) > limit:
        raise InvalidInputError(
            f"the suggestions change {len(changes)} resources; at most {limit} a call: narrow "
            "resource_types, regions or tags, or raise min_confidence"
        )
    return changes


def plan_undo(
    items: Sequence[RemediationItemRecord],
    current: Mapping[str, CurrentTags],
    force: bool,
    remediation_id: str,
    own_account: str,
    refused: Mapping[str, str] | None = None,
) -> ChangePlan:
    """Restore each applied resource's before-tags exactly, in the account its ARN names (an S3
    bucket's names none: ``own_account``, the credentials'); one edited since (its tags are no longer
    the remediation's after-tags) is skipped unless ``force``; one gone is skipped; one in an account
    of ``refused`` (account -> why its remediation role could not be assumed) is refused."""
    refused = refused or {}
    planned: list[PlannedChange] = []
    regrets: list[str] = []
    for item in items:
        if item.status != "applied":
            continue
        account = parse_arn(item.resource_arn).account_id or own_account
        if account in refused:
            planned.append(
                refused_change(item.resource_arn, item.resource_type, item.region, account, refused[account])
            )
            continue
        found = current.get(item.resource_arn)
        if found is None:
            planned.append(
                PlannedChange(
                    item.resource_arn,
                    item.resource_type,
                    item.region,
                    account,
                    {},
                    {},
                    [],
                    skipped="skipped: the resource no longer exists",
                )
            )
            continue
        now, before = dict(found.tags), dict(item.before_tags)
        skipped = None
        if now != item.after_tags and now != before:
            edited = sorted(
                k for k in set(now) | set(item.after_tags) if now.get(k) != item.after_tags.get(k)
            )
            if force:
                regrets.append(
                    f"{item.resource_arn}: edited since the remediation ({', '.join(edited)}); "
                    "force restores it"
                )
            else:
                skipped = (
                    f"skipped: tags changed since the remediation ({', '.join(edited)}); "
                    "pass force to restore"
                )
        set_tags = {k: v for k, v in before.items() if now.get(k) != v}
        remove = sorted(k for k in now if k not in before and not k.lower().startswith("aws:"))
        planned.append(
            PlannedChange(
                item.resource_arn, item.resource_type, found.region, account, now, set_tags, remove, skipped
            )
        )
    refuse_if_all_refused(planned)
    return ChangePlan(planned, regrets, undoes=remediation_id)

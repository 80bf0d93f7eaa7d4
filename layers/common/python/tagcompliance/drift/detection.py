"""``detect_drift``: the baseline's tag state against the current resources, judged by the policy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from tagcompliance.compliance import Resource, Violation, compile_policy, evaluate
from tagcompliance.errors import InvalidInputError
from tagcompliance.models import Coverage
from tagcompliance.policy import TaggingPolicy
from tagcompliance.resources import region_filter, resolve_resource_types
from tagcompliance.store import ResourceStateRecord, SnapshotRecord

from .events import (
    CLOUDTRAIL_DELIVERY_NOTE,
    CLOUDTRAIL_RETENTION,
    EVENTS_REMOVING_TAGS,
    EVENTS_SETTING_TAGS,
    TagChangeEvent,
    TagChangeEvents,
    TagEventsIncompleteError,
    short_reason,
)
from .results import (
    SEVERITY_ORDER,
    DriftChange,
    DriftResult,
    DriftSeverity,
    ResourceChange,
    TagDrift,
    UnobservedResource,
)


@dataclass(frozen=True, slots=True)
class _State:
    arn: str
    resource_type: str
    region: str
    account_id: str
    tags: dict[str, str]


@dataclass(slots=True)
class _Diff:
    """One tag change on one resource: a ``TagDrift`` before it is classified (the same fields)."""

    resource_arn: str
    resource_type: str
    region: str
    tag: str
    previous_key: str | None
    change: DriftChange
    old_value: str | None
    new_value: str | None


def _validated_types(resource_types: Sequence[str] | None) -> set[str] | None:
    if resource_types is None or not list(resource_types) or list(resource_types) == ["all"]:
        return None
    return set(resolve_resource_types(resource_types))


def _positive(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _state(item: ResourceStateRecord | Resource) -> _State:
    if isinstance(item, Resource):
        return _State(item.arn, item.resource_type, item.region, item.account_id, item.tags)
    return _State(item.resource_arn, item.resource_type, item.region, item.account_id, item.tags)


def _tag_diffs(resource: _State, old: dict[str, str], new: dict[str, str]) -> list[_Diff]:
    """Added, removed and changed keys; a removed key and an added one equal but for case pair up."""
    where = (resource.arn, resource.resource_type, resource.region)
    removed = sorted(key for key in old if key not in new)
    added = sorted(key for key in new if key not in old)
    waiting: dict[str, list[str]] = defaultdict(list)
    for key in added:
        waiting[key.lower()].append(key)
    diffs: list[_Diff] = []
    for key in removed:
        candidates = waiting.get(key.lower())
        if candidates:
            renamed = candidates.pop(0)
            diffs.append(_Diff(*where, renamed, key, "changed", old[key], new[renamed]))
        else:
            diffs.append(_Diff(*where, key, None, "removed", old[key], None))
    for key in added:
        if key in waiting.get(key.lower(), ()):
            diffs.append(_Diff(*where, key, None, "added", None, new[key]))
    for key in sorted(key for key in old if key in new and old[key] != new[key]):
        diffs.append(_Diff(*where, key, None, "changed", old[key], new[key]))
    return diffs


def _violations_by_resource(
    states: Iterable[_State], policy: TaggingPolicy, types: Iterable[str]
) -> dict[str, dict[str, Violation]]:
    """The engine's verdict per resource: violation per tag key."""
    compiled = compile_policy(policy, types)
    resources = [
        Resource(state.arn, state.resource_type, state.region, state.account_id, "", state.tags)
        for state in states
    ]
    verdicts: dict[str, dict[str, Violation]] = defaultdict(dict)
    for violation in evaluate(resources, compiled).violations:
        verdicts[violation.resource_arn][violation.tag_key] = violation
    return verdicts


def _classify(
    diff: _Diff,
    required: dict[str, str],
    optional: set[str],
    prohibited: set[str],
    before: dict[str, Violation],
    after: dict[str, Violation],
) -> tuple[DriftSeverity, str]:
    keys = [diff.tag] if diff.previous_key is None else [diff.tag, diff.previous_key]
    name = next((required[key.lower()] for key in keys if key.lower() in required), None)
    if name is None:
        flagged = after.get(diff.tag)
        if flagged is not None and flagged.violation_type == "prohibited_tag":
            return "warning", f"{diff.tag} is a prohibited tag and was {diff.change}"
        if diff.tag in prohibited:
            return "info", f"{diff.tag} is a prohibited tag and was {diff.change}"
        if diff.tag in optional:
            return "info", f"{diff.tag} is an optional tag"
        return "info", f"{diff.tag} is not a tag the policy requires"
    now = after.get(name)
    exact = name in keys
    if now is not None and (exact or now.violation_type in ("missing_tag", "wrong_key_case")):
        return "critical", f"required tag {name} now fails the policy ({now.violation_type})"
    if not exact:
        return "info", f"{diff.tag} duplicates the required tag {name} in another case; {name} is unaffected"
    if before.get(name) is not None:
        return "info", f"required tag {name} now meets the policy (it failed before: a fix)"
    return "warning", f"required tag {name} changed from one valid value to another"


def _attribute(
    drifts: list[TagDrift],
    ids: dict[str, str],
    events: TagChangeEvents | None,
    start: datetime,
    end: datetime,
    notes: list[str],
) -> list[TagDrift]:
    """Fill changed_at / changed_by from the events; unmatched drifts stay "unavailable"."""
    if not drifts:
        return drifts
    if events is None:
        notes.append("Who changed the tags was not looked up (no event source): attribution unavailable.")
        return drifts
    by_region: dict[str, list[int]] = defaultdict(list)
    for index, drift in enumerate(drifts):
        by_region[drift.region].append(index)
    arns_by_region = {
        region: sorted({drifts[i].resource_arn for i in indexes}) for region, indexes in by_region.items()
    }

    def lookup(region: str) -> list[TagChangeEvent]:
        arns = arns_by_region[region]
        return events.lookup(region, sorted({*arns, *(ids[arn] for arn in arns if ids.get(arn))}), start, end)

    # Regions are looked up side by side (CloudTrail's rate limit is per region); results are
    # merged in region order, so the answer does not depend on which finished first.
    with ThreadPoolExecutor(max_workers=min(8, len(by_region)), thread_name_prefix="drift-events") as pool:
        futures = {region: pool.submit(lookup, region) for region in sorted(by_region)}
    result = list(drifts)
    unmatched = 0
    for region, future in futures.items():
        try:
            found = future.result()
        except TagEventsIncompleteError as error:
            found = error.events
            notes.append(f"Attribution in {region} is partial: {short_reason(error)}.")
        except Exception as error:  # never fail the drift result for want of attribution
            notes.append(f"Attribution unavailable in {region}: {short_reason(error)}.")
            continue
        arn_of: dict[str, set[str]] = defaultdict(set)
        for arn in arns_by_region[region]:
            arn_of[arn].add(arn)
            if ids.get(arn):
                arn_of[ids[arn]].add(arn)
        events_by_arn: dict[str, list[TagChangeEvent]] = defaultdict(list)
        for reported in found:
            event = (
                reported
                if reported.event_time.tzinfo
                else replace(reported, event_time=reported.event_time.replace(tzinfo=UTC))
            )
            if not start <= event.event_time <= end:
                continue
            for arn in {arn for name in event.resources for arn in arn_of.get(name, ())}:
                events_by_arn[arn].append(event)
        for index in by_region[region]:
            drift = drifts[index]
            match = _latest_match(drift, events_by_arn.get(drift.resource_arn, []))
            if match is None:
                unmatched += 1
                continue
            result[index] = drift.model_copy(
                update={
                    "changed_at": match.event_time,
                    "changed_by": match.actor,
                    "event_name": match.event_name,
                    "attribution": "cloudtrail",
                }
            )
    if unmatched:
        notes.append(
            f"{unmatched} change(s) have no matching tag event: {CLOUDTRAIL_DELIVERY_NOTE}, and a change "
            "made by recreating the resource or by a service on its own is not a tagging call."
        )
    return result


def _latest_match(drift: TagDrift, candidates: list[TagChangeEvent]) -> TagChangeEvent | None:
    keys = {drift.tag} if drift.previous_key is None else {drift.tag, drift.previous_key}
    best: TagChangeEvent | None = None
    for event in candidates:
        if event.tag_keys is not None and not keys.intersection(event.tag_keys):
            continue
        if drift.previous_key is None:  # a key-case fix takes a removal and an addition: any event fits
            if drift.change == "removed" and event.event_name in EVENTS_SETTING_TAGS:
                continue
            if drift.change != "removed" and event.event_name in EVENTS_REMOVING_TAGS:
                continue
        if best is None or (event.event_time, event.event_id) > (best.event_time, best.event_id):
            best = event
    return best


def _failed_scope(snapshot: SnapshotRecord | None) -> tuple[set[tuple[str, str, str]], set[str]]:
    """The (account, region, type) shards and the single resources a snapshot could not read; the
    account is "" for a shard of a single-account scan (it then stands for any account)."""
    shards: set[tuple[str, str, str]] = set()
    arns: set[str] = set()
    for entry in (snapshot.failed_shards if snapshot else None) or []:
        if entry.get("resource_arn"):
            arns.add(str(entry["resource_arn"]))
        else:
            account = str(entry.get("account_id") or "")
            shards.add((account, str(entry.get("region")), str(entry.get("resource_type"))))
    return shards, arns


def _unread(state: _State, failed: tuple[set[tuple[str, str, str]], set[str]]) -> bool:
    shards = failed[0]
    return (
        (state.account_id, state.region, state.resource_type) in shards
        or ("", state.region, state.resource_type) in shards
        or state.arn in failed[1]
    )


def detect_drift(
    previous: Iterable[ResourceStateRecord] | Sequence[Resource],
    current: Sequence[Resource],
    policy: TaggingPolicy,
    *,
    resource_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    tag_keys: Sequence[str] | None = None,
    threshold: int | None = None,
    events: TagChangeEvents | None = None,
    baseline: SnapshotRecord | None = None,
    current_snapshot: SnapshotRecord | None = None,
    observed_at: datetime | None = None,
    limit: int | None = None,
) -> DriftResult:
    """Tag changes between ``previous`` (the baseline's states) and ``current``, classified and attributed.

    ``resource_types`` / ``regions`` narrow both sides (None, [] or ["all"]: everything);
    ``tag_keys`` keeps drifts on those exact keys (case-sensitive; a key-case change matches by its
    old or new key). ``baseline`` and ``current_snapshot`` supply the times that bound the event
    lookup and the shards each scan failed to read (resources there are neither "added" nor
    "removed"). ``observed_at`` defaults to ``current_snapshot.created_at``, else to now. ``limit``
    caps each listed collection (most severe drifts first); totals always count everything.
    """
    wanted_types = _validated_types(resource_types)
    wanted_regions = region_filter(regions)
    if tag_keys is not None and any(not isinstance(key, str) or not key for key in tag_keys):
        raise InvalidInputError("tag_keys must be non-empty strings (tag keys are case-sensitive)")
    wanted_keys = set(tag_keys) if tag_keys else None
    threshold = _positive("threshold", threshold)
    limit = _positive("limit", limit)
    end = observed_at or (current_snapshot.created_at if current_snapshot else None) or datetime.now(UTC)

    def in_scope(state_type: str, region: str) -> bool:
        return (wanted_types is None or state_type in wanted_types) and (
            wanted_regions is None or region in wanted_regions
        )

    before: dict[str, _State] = {}
    for item in previous:
        state = _state(item)
        if in_scope(state.resource_type, state.region):
            before[state.arn] = state
    after: dict[str, _State] = {}
    ids: dict[str, str] = {}
    for resource in current:
        if in_scope(resource.resource_type, resource.region):
            after[resource.arn] = _state(resource)
            ids[resource.arn] = resource.resource_id

    notes: list[str] = []
    failed_now = _failed_scope(current_snapshot)
    failed_then = _failed_scope(baseline)
    removed = [s for arn, s in sorted(before.items()) if arn not in after and not _unread(s, failed_now)]
    added = [s for arn, s in sorted(after.items()) if arn not in before and not _unread(s, failed_then)]
    # Resources in shards one side could not read are unobserved there: neither removed nor added.
    unobserved = [
        (s, "current") for arn, s in sorted(before.items()) if arn not in after and _unread(s, failed_now)
    ] + [(s, "baseline") for arn, s in sorted(after.items()) if arn not in before and _unread(s, failed_then)]
    unread_now = sum(1 for _, side in unobserved if side == "current")
    unread_then = len(unobserved) - unread_now
    if unread_now:
        notes.append(
            f"{unread_now} baseline resource(s) are in shards this scan could not read: unobserved "
            "(see resources_unobserved), not removed."
        )
    if unread_then:
        notes.append(
            f"{unread_then} resource(s) are in shards the baseline could not read: unobserved "
            "(see resources_unobserved), not added."
        )

    diffs: list[_Diff] = []
    for arn in sorted(before.keys() & after.keys()):
        for diff in _tag_diffs(after[arn], before[arn].tags, after[arn].tags):
            if wanted_keys is None or diff.tag in wanted_keys or diff.previous_key in wanted_keys:
                diffs.append(diff)

    drifted = sorted({diff.resource_arn for diff in diffs})
    types = sorted({after[arn].resource_type for arn in drifted})
    verdict_before = _violations_by_resource((before[arn] for arn in drifted), policy, types)
    verdict_after = _violations_by_resource((after[arn] for arn in drifted), policy, types)
    required_by_type = {t: {tag.name.lower(): tag.name for tag in policy.required_for(t)} for t in types}
    optional = {tag.name for tag in policy.optional_tags}
    prohibited = set(policy.prohibited_tags)

    drifts: list[TagDrift] = []
    for diff in diffs:
        severity, reason = _classify(
            diff,
            required_by_type[diff.resource_type],
            optional,
            prohibited,
            verdict_before.get(diff.resource_arn, {}),
            verdict_after.get(diff.resource_arn, {}),
        )
        drifts.append(TagDrift(**asdict(diff), severity=severity, reason=reason))
    drifts.sort(key=lambda d: (SEVERITY_ORDER[d.severity], d.resource_arn, d.tag, d.previous_key or ""))
    by_severity = dict.fromkeys(SEVERITY_ORDER, 0)
    by_account: dict[str, int] = {}
    for drift in drifts:
        by_severity[drift.severity] += 1
        # The account the resource was read in: an S3 bucket's ARN names none.
        account = after[drift.resource_arn].account_id
        by_account[account] = by_account.get(account, 0) + 1
    total = len(drifts)
    truncated = limit is not None and max(total, len(added), len(removed), len(unobserved)) > limit
    listed = drifts[:limit] if limit is not None else drifts

    start = baseline.created_at if baseline else end - CLOUDTRAIL_RETENTION
    if end - start > CLOUDTRAIL_RETENTION and listed and events is not None:
        start = end - CLOUDTRAIL_RETENTION
        notes.append("The baseline is older than CloudTrail's 90 days: earlier changes are not attributed.")
    listed = _attribute(listed, ids, events, start, end, notes)
    if truncated:
        notes.append(f"Lists are cut at {limit} entries; the totals count everything.")

    def changes(states: list[_State]) -> list[ResourceChange]:
        return [
            ResourceChange(resource_arn=s.arn, resource_type=s.resource_type, region=s.region)
            for s in (states[:limit] if limit is not None else states)
        ]

    unobserved_listed = unobserved[:limit] if limit is not None else unobserved

    return DriftResult(
        drift_detected=listed,
        total_drifts=total,
        by_severity=by_severity,
        by_account=dict(sorted(by_account.items(), key=lambda item: (-item[1], item[0]))),
        threshold=threshold,
        threshold_exceeded=None if threshold is None else total >= threshold,
        baseline_snapshot_id=baseline.snapshot_id if baseline else None,
        baseline_taken_at=baseline.created_at if baseline else None,
        observed_at=end,
        resources_compared=len(before.keys() & after.keys()),
        resources_added=changes(added),
        resources_removed=changes(removed),
        total_resources_added=len(added),
        total_resources_removed=len(removed),
        resources_unobserved=[
            UnobservedResource(
                resource_arn=s.arn, resource_type=s.resource_type, region=s.region, unobserved_in=side
            )
            for s, side in unobserved_listed
        ],
        total_resources_unobserved=len(unobserved),
        baseline_coverage=Coverage.of(baseline) if baseline else None,
        current_coverage=Coverage.of(current_snapshot) if current_snapshot else None,
        truncated=truncated,
        notes=notes,
    )

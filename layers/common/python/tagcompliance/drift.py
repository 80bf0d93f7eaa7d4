"""Tag drift: how resources' tags changed since a baseline snapshot, how much it matters, and who did it.

``detect_drift`` compares two views of the same scope: the baseline's per-resource tag state (from
the store) and the current resources. It is pure given its inputs: who changed a tag comes from an
injected ``TagChangeEvents`` port (``CloudTrailTagEvents`` in production, an in-memory fake in
tests: moto does not implement CloudTrail ``LookupEvents``).

Severity is judged with the compliance engine under the policy given (the current one), on the
resource before and after the change:

- critical: a tag required for the resource's type now fails the policy because of this change
  (it was removed, its new value is invalid, or its key lost its exact case);
- warning: a required tag's valid value was replaced by another valid value, or a prohibited tag
  was added or changed;
- info: a required tag was fixed (it failed the policy before, it passes now), and every change
  to an optional tag or a tag the policy does not name.

A key that changed only in case (``environment`` -> ``Environment``) is one ``changed`` drift with
``previous_key`` set, not a removal plus an addition. Resources that appeared or disappeared since
the baseline are listed apart (``resources_added`` / ``resources_removed``): they are not tag drift.

``choose_baseline`` picks the snapshot to compare with: the latest one of the same scope taken at
or before ``now - lookback_days``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import boto3
from botocore.config import Config
from pydantic import BaseModel, Field

from .aws import RETRY_CONFIG, AwsClients, describe_aws_error
from .compliance import Resource, Violation, compile_policy, evaluate
from .errors import InvalidInputError, TagComplianceError
from .policy import TaggingPolicy
from .resources import region_filter, resolve_resource_types
from .store import ResourceStateRecord, SnapshotRecord, Store

DriftChange = Literal["added", "removed", "changed"]
DriftSeverity = Literal["critical", "warning", "info"]
Attribution = Literal["cloudtrail", "unavailable"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
CLOUDTRAIL_RETENTION = timedelta(days=90)  # LookupEvents only sees the last 90 days
CLOUDTRAIL_DELIVERY_NOTE = (
    "CloudTrail delivers events up to about 15 minutes after the call and LookupEvents keeps 90 days"
)

_MARKUP = re.compile(r"<[^>]*>")
MAX_REASON_CHARS = 300


def _short_reason(error: BaseException) -> str:
    """An error as one line of text for a note (an HTML error page reduced to its words)."""
    text = " ".join(_MARKUP.sub(" ", str(error)).split()) or type(error).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


# --- the port: who changed tags, and when ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagChangeEvent:
    """One API call that changed tags, as an audit trail recorded it."""

    event_id: str
    event_name: str  # CreateTags, UntagResource, PutBucketTagging, ...
    event_time: datetime  # timezone-aware
    actor: str | None  # who: the caller's ARN (IAM user, assumed-role session) or user name
    resources: tuple[str, ...]  # the ARNs / ids the event names, among those looked up
    tag_keys: tuple[str, ...] | None = None  # keys the request named; None when unknown or "all tags"


class TagEventsUnavailableError(TagComplianceError):
    """Tag-change events could not be read; the message says why (shown to the user as a note)."""


class TagEventsIncompleteError(TagEventsUnavailableError):
    """Some events were read but the lookup stopped early; ``events`` holds those read."""

    def __init__(self, message: str, events: Sequence[TagChangeEvent]) -> None:
        super().__init__(message)
        self.events = list(events)


class TagChangeEvents(Protocol):
    """Where tag changes are looked up (CloudTrail in production, a fake in tests)."""

    def lookup(
        self, region: str, resource_arns_or_ids: Sequence[str], start: datetime, end: datetime
    ) -> list[TagChangeEvent]:
        """Tag-changing events in ``region`` between ``start`` and ``end`` naming any of the resources.

        Raise ``TagEventsUnavailableError`` (or any exception) when they cannot be read, and
        ``TagEventsIncompleteError`` with the events read so far when the lookup stopped early.
        """
        ...


# Event names that change tags, by the service field of the resource's ARN. Each LookupEvents call
# filters on one event name, so only the names that can touch the resources at hand are queried.
_TAG_EVENTS_BY_ARN_SERVICE: dict[str, tuple[str, ...]] = {
    "ec2": ("CreateTags", "DeleteTags"),
    "rds": ("AddTagsToResource", "RemoveTagsFromResource"),
    "elasticache": ("AddTagsToResource", "RemoveTagsFromResource"),
    "s3": ("PutBucketTagging", "DeleteBucketTagging"),
    "elasticloadbalancing": ("AddTags", "RemoveTags"),
    "es": ("AddTags", "RemoveTags"),
    "sqs": ("TagQueue", "UntagQueue"),
    "kinesis": ("AddTagsToStream", "RemoveTagsFromStream", "TagResource", "UntagResource"),
    "elasticfilesystem": ("TagResource", "UntagResource", "CreateTags", "DeleteTags"),
}
_DEFAULT_TAG_EVENTS = ("TagResource", "UntagResource")  # Lambda, ECS, EKS, DynamoDB, SNS, Secrets Manager
_TAGGING_API_EVENTS = ("TagResources", "UntagResources")  # the Resource Groups Tagging API: any type
TAG_EVENT_NAMES: tuple[str, ...] = tuple(
    sorted(
        {
            *(name for names in _TAG_EVENTS_BY_ARN_SERVICE.values() for name in names),
            *_DEFAULT_TAG_EVENTS,
            *_TAGGING_API_EVENTS,
        }
    )
)
# What an event can do to a tag: set it, remove it, or replace the whole set (S3).
_SETS = frozenset(
    {
        "CreateTags",
        "AddTagsToResource",
        "TagResource",
        "TagResources",
        "AddTags",
        "TagQueue",
        "AddTagsToStream",
    }
)
_REMOVES = frozenset(
    {
        "DeleteTags",
        "RemoveTagsFromResource",
        "UntagResource",
        "UntagResources",
        "RemoveTags",
        "UntagQueue",
        "RemoveTagsFromStream",
        "DeleteBucketTagging",
    }
)
_REMOVES_ALL = frozenset({"DeleteBucketTagging"})


def tag_event_names_for(resource_arns_or_ids: Iterable[str]) -> list[str]:
    """The event names worth looking up for these resources (all of them when no ARN says more)."""
    services = {
        value.split(":", 3)[2]
        for value in resource_arns_or_ids
        if value.startswith("arn:") and value.count(":") >= 5
    }
    if not services:
        return list(TAG_EVENT_NAMES)
    names: set[str] = set(_TAGGING_API_EVENTS)
    for service in services:
        names.update(_TAG_EVENTS_BY_ARN_SERVICE.get(service, _DEFAULT_TAG_EVENTS))
    return sorted(names)


def _strings_outside_tags(value: Any) -> Iterator[str]:
    """Every string of a request that is not inside a tag structure: resource ids, ARNs, names."""
    if isinstance(value, str):
        yield value
        if value.startswith(("https://", "http://")):  # SQS queue URLs end with the queue name
            yield value.rstrip("/").rsplit("/", 1)[-1]
    elif isinstance(value, dict):
        for key, item in value.items():
            if "tag" not in str(key).lower():
                yield from _strings_outside_tags(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_outside_tags(item)


def _tag_keys_in(value: Any, under_tags: bool, found: list[str]) -> None:
    """Collect the tag keys a request names, whatever shape the service gives its tags."""
    if isinstance(value, dict):
        key_entry = next((item for name, item in value.items() if str(name).lower() == "key"), None)
        if under_tags and isinstance(key_entry, str):  # {"key": ..., "value": ...} in any case
            found.append(key_entry)
            return
        if under_tags and value and all(isinstance(item, str) for item in value.values()):
            found.extend(value)  # {"Team": "x"}: the map form (Lambda, TagResources)
            return
        for name, item in value.items():
            lowered = str(name).lower()
            if (under_tags or "tag" in lowered) and lowered in ("tagkeys", "keys") and isinstance(item, list):
                found.extend(entry for entry in item if isinstance(entry, str))
            else:
                _tag_keys_in(item, under_tags or "tag" in lowered, found)
    elif isinstance(value, list):
        for item in value:
            _tag_keys_in(item, under_tags, found)


def parse_cloudtrail_event(raw: dict[str, Any], wanted: set[str]) -> TagChangeEvent | None:
    """A LookupEvents record as a TagChangeEvent, or None when it names none of ``wanted``."""
    detail: dict[str, Any] = {}
    text = raw.get("CloudTrailEvent")
    if isinstance(text, str):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            detail = parsed
    parameters = detail.get("requestParameters") or {}
    names = {str(item.get("ResourceName")) for item in raw.get("Resources") or [] if item.get("ResourceName")}
    names.update(_strings_outside_tags(parameters))
    matched = tuple(sorted(names & wanted))
    if not matched:
        return None
    event_name = str(raw.get("EventName") or detail.get("eventName") or "")
    keys: list[str] = []
    if event_name not in _REMOVES_ALL:
        _tag_keys_in(parameters, False, keys)
    identity = detail.get("userIdentity") or {}
    actor = identity.get("arn") or raw.get("Username") or identity.get("principalId")
    moment = raw.get("EventTime")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if not isinstance(moment, datetime):
        when = detail.get("eventTime")
        if not isinstance(when, str):
            return None
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return TagChangeEvent(
        event_id=str(raw.get("EventId") or detail.get("eventID") or ""),
        event_name=event_name,
        event_time=moment,
        actor=str(actor) if actor else None,
        resources=matched,
        tag_keys=tuple(dict.fromkeys(keys)) or None,
    )


class CloudTrailTagEvents:
    """The ``TagChangeEvents`` port over CloudTrail ``LookupEvents`` (management events, 90 days).

    LookupEvents filters on one attribute per call, so each tag-changing event name that can touch
    the resources is looked up in turn over the window, and events naming none of the resources are
    dropped. Cost is bounded: at most ``max_pages_per_event_name`` pages of 50 events per name, and
    the lookup stops after ``time_budget_seconds`` (LookupEvents allows 2 requests a second per
    account and region), reporting what it read as incomplete.

    The CloudTrail client is built here rather than taken from ``AwsClients`` because it needs few
    retries: with the scan's eight adaptive attempts an unavailable CloudTrail costs about a minute
    before the drift result can say so, which is all an MCP client waits. It uses the same endpoint
    and, when given, the same boto3 session as ``clients``.
    """

    def __init__(
        self,
        clients: AwsClients,
        *,
        session: boto3.session.Session | None = None,
        max_pages_per_event_name: int = 5,
        max_attempts: int = 3,
        time_budget_seconds: float = 20.0,
    ) -> None:
        if max_pages_per_event_name < 1:
            raise ValueError("max_pages_per_event_name must be at least 1")
        self._clients = clients
        self._session = session
        self._max_pages = max_pages_per_event_name
        self._config = RETRY_CONFIG.merge(Config(retries={"mode": "adaptive", "max_attempts": max_attempts}))
        self._budget = time_budget_seconds
        self._by_region: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 sessions are not safe to build clients from concurrently

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._by_region.get(region)
            if client is None:
                session = self._session or boto3.session.Session()
                client = session.client(
                    "cloudtrail",
                    region_name=region,
                    endpoint_url=self._clients.endpoint_url,
                    config=self._config,
                )
                self._by_region[region] = client
            return client

    def lookup(
        self, region: str, resource_arns_or_ids: Sequence[str], start: datetime, end: datetime
    ) -> list[TagChangeEvent]:
        wanted = {value for value in resource_arns_or_ids if value}
        if not wanted:
            return []
        deadline = time.monotonic() + self._budget
        found: dict[str, TagChangeEvent] = {}
        try:
            client = self._client(region)
        except Exception as error:
            raise TagEventsUnavailableError(f"CloudTrail in {region}: {describe_aws_error(error)}") from error
        for event_name in tag_event_names_for(wanted):
            params: dict[str, Any] = {
                "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event_name}],
                "StartTime": start,
                "EndTime": end,
                "MaxResults": 50,
            }
            for page_number in range(1, self._max_pages + 1):
                if time.monotonic() > deadline:
                    raise TagEventsIncompleteError(
                        f"CloudTrail lookup in {region} stopped after {self._budget:g} s "
                        f"(before reading {event_name} events)",
                        list(found.values()),
                    )
                try:
                    response = client.lookup_events(**params)
                except Exception as error:
                    message = f"CloudTrail LookupEvents in {region}: {describe_aws_error(error)}"
                    if found:
                        raise TagEventsIncompleteError(message, list(found.values())) from error
                    raise TagEventsUnavailableError(message) from error
                for raw in response.get("Events") or []:
                    event = parse_cloudtrail_event(raw, wanted)
                    if event is not None:
                        found[event.event_id or f"{event_name}-{len(found)}"] = event
                token = response.get("NextToken")
                if not token:
                    break
                if page_number == self._max_pages:
                    raise TagEventsIncompleteError(
                        f"CloudTrail lookup in {region} read only the latest {self._max_pages * 50} "
                        f"{event_name} events of the period",
                        list(found.values()),
                    )
                params["NextToken"] = token
        return list(found.values())


# --- the result -------------------------------------------------------------------------------


class TagDrift(BaseModel):
    resource_arn: str
    resource_type: str
    region: str
    tag: str = Field(description="The tag key as it is now (as it was, for a removal).")
    previous_key: str | None = Field(
        default=None, description="Set when the key changed only in case: the key as it was."
    )
    change: DriftChange
    old_value: str | None
    new_value: str | None
    severity: DriftSeverity
    reason: str = Field(description="Why this severity, in words.")
    changed_at: datetime | None = None
    changed_by: str | None = None
    event_name: str | None = None
    attribution: Attribution = "unavailable"


class ResourceChange(BaseModel):
    resource_arn: str
    resource_type: str
    region: str


class DriftResult(BaseModel):
    drift_detected: list[TagDrift] = Field(description="Most severe first, then by ARN and tag key.")
    total_drifts: int = Field(description="All drifts found, also when drift_detected is truncated.")
    by_severity: dict[str, int]
    threshold: int | None = None
    threshold_exceeded: bool | None = Field(
        default=None, description="total_drifts >= threshold; null when no threshold was given."
    )
    baseline_snapshot_id: str | None = None
    baseline_taken_at: datetime | None = None
    observed_at: datetime
    resources_compared: int = Field(description="Resources present in the baseline and now.")
    resources_added: list[ResourceChange] = Field(description="Resources that appeared since the baseline.")
    resources_removed: list[ResourceChange] = Field(description="Resources gone since the baseline.")
    total_resources_added: int
    total_resources_removed: int
    truncated: bool = False
    notes: list[str] = Field(default_factory=list)


# --- detection ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _State:
    arn: str
    resource_type: str
    region: str
    account_id: str
    tags: dict[str, str]


@dataclass(slots=True)
class _Diff:
    resource: _State
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
            diffs.append(_Diff(resource, renamed, key, "changed", old[key], new[renamed]))
        else:
            diffs.append(_Diff(resource, key, None, "removed", old[key], None))
    for key in added:
        if key in waiting.get(key.lower(), ()):
            diffs.append(_Diff(resource, key, None, "added", None, new[key]))
    for key in sorted(key for key in old if key in new and old[key] != new[key]):
        diffs.append(_Diff(resource, key, None, "changed", old[key], new[key]))
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
            notes.append(f"Attribution in {region} is partial: {_short_reason(error)}.")
        except Exception as error:  # never fail the drift result for want of attribution
            notes.append(f"Attribution unavailable in {region}: {_short_reason(error)}.")
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
            if drift.change == "removed" and event.event_name in _SETS:
                continue
            if drift.change != "removed" and event.event_name in _REMOVES:
                continue
        if best is None or (event.event_time, event.event_id) > (best.event_time, best.event_id):
            best = event
    return best


def _failed_scope(snapshot: SnapshotRecord | None) -> tuple[set[tuple[str, str]], set[str]]:
    shards: set[tuple[str, str]] = set()
    arns: set[str] = set()
    for entry in (snapshot.failed_shards if snapshot else None) or []:
        if entry.get("resource_arn"):
            arns.add(str(entry["resource_arn"]))
        else:
            shards.add((str(entry.get("region")), str(entry.get("resource_type"))))
    return shards, arns


def _unread(state: _State, failed: tuple[set[tuple[str, str]], set[str]]) -> bool:
    return (state.region, state.resource_type) in failed[0] or state.arn in failed[1]


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
    unread_now = sum(1 for arn, s in before.items() if arn not in after and _unread(s, failed_now))
    unread_then = sum(1 for arn, s in after.items() if arn not in before and _unread(s, failed_then))
    if unread_now:
        notes.append(
            f"{unread_now} baseline resource(s) are in shards this scan could not read: "
            "not reported as removed."
        )
    if unread_then:
        notes.append(
            f"{unread_then} resource(s) are in shards the baseline could not read: not reported as added."
        )

    diffs: list[_Diff] = []
    for arn in sorted(before.keys() & after.keys()):
        for diff in _tag_diffs(after[arn], before[arn].tags, after[arn].tags):
            if wanted_keys is None or diff.tag in wanted_keys or diff.previous_key in wanted_keys:
                diffs.append(diff)

    drifted = sorted({diff.resource.arn for diff in diffs})
    types = sorted({after[arn].resource_type for arn in drifted})
    verdict_before = _violations_by_resource((before[arn] for arn in drifted), policy, types)
    verdict_after = _violations_by_resource((after[arn] for arn in drifted), policy, types)
    required_by_type = {t: {tag.name.lower(): tag.name for tag in policy.required_for(t)} for t in types}
    optional = {tag.name for tag in policy.optional_tags}
    prohibited = set(policy.prohibited_tags)

    drifts: list[TagDrift] = []
    for diff in diffs:
        arn = diff.resource.arn
        severity, reason = _classify(
            diff,
            required_by_type[diff.resource.resource_type],
            optional,
            prohibited,
            verdict_before.get(arn, {}),
            verdict_after.get(arn, {}),
        )
        drifts.append(
            TagDrift(
                resource_arn=arn,
                resource_type=diff.resource.resource_type,
                region=diff.resource.region,
                tag=diff.tag,
                previous_key=diff.previous_key,
                change=diff.change,
                old_value=diff.old_value,
                new_value=diff.new_value,
                severity=severity,
                reason=reason,
            )
        )
    drifts.sort(key=lambda d: (SEVERITY_ORDER[d.severity], d.resource_arn, d.tag, d.previous_key or ""))
    by_severity = dict.fromkeys(SEVERITY_ORDER, 0)
    for drift in drifts:
        by_severity[drift.severity] += 1
    total = len(drifts)
    truncated = limit is not None and max(total, len(added), len(removed)) > limit
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

    return DriftResult(
        drift_detected=listed,
        total_drifts=total,
        by_severity=by_severity,
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
        truncated=truncated,
        notes=notes,
    )


# --- the baseline -----------------------------------------------------------------------------

_PAGE = 500


def _snapshots_between(store: Store, since: datetime, until: datetime) -> Iterator[SnapshotRecord]:
    """Every snapshot with since <= created_at < until, oldest first, read page by page.

    The store pages by time only, so each page starts at the previous page's last timestamp and
    skips the snapshots already read there; a full page that never leaves one timestamp is read
    again with a larger limit instead.
    """
    limit = _PAGE
    seen: set[str] = set()  # ids already read at the timestamp ``since``
    while True:
        page = store.list_snapshots(since=since, until=until, limit=limit)
        yield from (snapshot for snapshot in page if snapshot.snapshot_id not in seen)
        if len(page) < limit:
            return
        last = page[-1].created_at
        seen = {snapshot.snapshot_id for snapshot in page if snapshot.created_at == last}
        if last == since:
            limit *= 2
        since = last


def choose_baseline(
    store: Store,
    scope: tuple[Sequence[str], Sequence[str], str | Sequence[str]],
    lookback_days: int | None,
    now: datetime | None = None,
    *,
    exclude_snapshot_id: str | None = None,
) -> SnapshotRecord | None:
    """The latest snapshot of the same scope taken at or before ``now - lookback_days``.

    ``scope`` is (resource types, regions, accounts), compared as sets; an account id alone means
    that one account, matched against each snapshot's ``covered_accounts``. Without
    ``lookback_days`` it is the latest one taken before ``now``. ``exclude_snapshot_id`` skips the
    current scan when it is already stored. None means there is no baseline yet: the caller says
    so and keeps the current scan as the first one.
    """
    if lookback_days is not None and (
        isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 0
    ):
        raise InvalidInputError(f"lookback_days must be a whole number of 0 or more, got {lookback_days!r}")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    types, regions, accounts = scope
    wanted = (
        sorted(set(types)),
        sorted(set(regions)),
        sorted({accounts} if isinstance(accounts, str) else set(accounts)),
    )
    # list_snapshots' upper bound is exclusive: one microsecond more makes it "at or before".
    until = now if lookback_days is None else now - timedelta(days=lookback_days) + timedelta(microseconds=1)
    oldest = store.list_snapshots(limit=1)
    if not oldest:
        return None
    floor = oldest[0].created_at
    # Search backwards in disjoint windows of doubling size: recent history first, all of it at worst.
    window = timedelta(days=1)
    end = until
    while end > floor:
        start = max(end - window, floor)
        best: SnapshotRecord | None = None
        for snapshot in _snapshots_between(store, start, end):
            if (
                snapshot.snapshot_id != exclude_snapshot_id
                and (
                    sorted(set(snapshot.resource_types)),
                    sorted(set(snapshot.regions)),
                    sorted(set(snapshot.covered_accounts)),
                )
                == wanted
            ):
                best = snapshot  # oldest first: the last match is the latest
        if best is not None:
            return best
        end = start
        window *= 2
    return None

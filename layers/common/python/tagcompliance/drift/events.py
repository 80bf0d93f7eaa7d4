"""Who changed a tag and when: the ``TagChangeEvents`` port and its CloudTrail adapter."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
from botocore.config import Config

from tagcompliance.aws import RETRY_CONFIG, AwsClients, describe_aws_error
from tagcompliance.errors import TagComplianceError

CLOUDTRAIL_RETENTION = timedelta(days=90)  # LookupEvents only sees the last 90 days
CLOUDTRAIL_DELIVERY_NOTE = (
    "CloudTrail delivers events up to about 15 minutes after the call and LookupEvents keeps 90 days"
)

_MARKUP = re.compile(r"<[^>]*>")
MAX_REASON_CHARS = 300


def short_reason(error: BaseException) -> str:
    """An error as one line of text for a note (an HTML error page reduced to its words)."""
    text = " ".join(_MARKUP.sub(" ", str(error)).split()) or type(error).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


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
EVENTS_SETTING_TAGS = frozenset(
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
EVENTS_REMOVING_TAGS = frozenset(
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

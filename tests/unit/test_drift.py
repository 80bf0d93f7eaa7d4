"""Tag drift: the diff, severity per rule, filters, threshold, attribution, the CloudTrail adapter, baselines."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tagcompliance.compliance import Resource
from tagcompliance.drift import (
    TAG_EVENT_NAMES,
    CloudTrailTagEvents,
    TagChangeEvent,
    TagEventsIncompleteError,
    TagEventsUnavailableError,
    choose_baseline,
    detect_drift,
    parse_cloudtrail_event,
    tag_event_names_for,
)
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import parse_policy
from tagcompliance.settings import Settings
from tagcompliance.store import ResourceStateRecord, SnapshotRecord, SqliteStore

POLICY = parse_policy(
    {
        "required_tags": [
            {
                "name": "CostCenter",
                "allowed_values": ["CC-1001", "CC-2001"],
                "validation_regex": "^CC-[0-9]{4}$",
            },
            {"name": "Owner", "validation_regex": "^[a-z]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["production", "staging"]},
            {"name": "Application", "applies_to": ["ec2:instance"]},
        ],
        "optional_tags": [{"name": "Project"}],
        "prohibited_tags": ["Temp"],
    }
)
GOOD = {
    "CostCenter": "CC-1001",
    "Owner": "ana@example.com",
    "Environment": "production",
    "Application": "web",
}
ACCOUNT = "123456789012"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)


def instance(number: int, tags: dict[str, str], region: str = "us-east-1") -> Resource:
    instance_id = f"i-{number:017x}"
    return Resource(
        f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{instance_id}",
        "ec2:instance",
        region,
        ACCOUNT,
        instance_id,
        tags,
    )


def bucket(name: str, tags: dict[str, str], region: str = "us-east-1") -> Resource:
    return Resource(f"arn:aws:s3:::{name}", "s3:bucket", region, ACCOUNT, name, tags)


def snapshot(snapshot_id: str, created_at: datetime, **changes: Any) -> SnapshotRecord:
    record = SnapshotRecord(
        snapshot_id=snapshot_id,
        created_at=created_at,
        account_id=ACCOUNT,
        regions=["us-east-1"],
        resource_types=["ec2:instance", "s3:bucket"],
        policy_digest=POLICY.digest(),
        policy=POLICY.model_dump(mode="json"),
        total_resources=0,
        scanned_resources=0,
        compliant_resources=0,
        compliance_score=None,
        violation_count=0,
        counts_by_type={},
        counts_by_region={},
        counts_by_violation={},
        failed_shards=[],
    )
    return replace(record, **changes)


def drift_of(before: Resource, after_tags: dict[str, str], **kwargs: Any):
    after = replace(before, tags=after_tags)
    return detect_drift([before], [after], POLICY, observed_at=T1, **kwargs)


def rows(result) -> list[tuple[str, str, str | None, str | None, str | None, str]]:
    return [
        (d.change, d.tag, d.previous_key, d.old_value, d.new_value, d.severity) for d in result.drift_detected
    ]


# --- the diff -------------------------------------------------------------------------------------


def test_no_change_no_drift() -> None:
    result = drift_of(instance(1, GOOD), dict(GOOD))
    assert result.drift_detected == [] and result.total_drifts == 0
    assert result.by_severity == {"critical": 0, "warning": 0, "info": 0}
    assert result.resources_compared == 1


def test_added_removed_changed() -> None:
    before = instance(1, {**GOOD, "Project": "alpha", "Team": "core"})
    result = drift_of(before, {**GOOD, "Project": "beta", "Cost": "x"})
    assert sorted(rows(result)) == [
        ("added", "Cost", None, None, "x", "info"),
        ("changed", "Project", None, "alpha", "beta", "info"),
        ("removed", "Team", None, "core", None, "info"),
    ]
    assert result.total_drifts == 3 and result.by_severity["info"] == 3


def test_key_case_change_is_one_changed_drift() -> None:
    before = instance(1, {**GOOD, "project": "alpha"})
    result = drift_of(before, {**GOOD, "Project": "alpha"})
    assert rows(result) == [("changed", "Project", "project", "alpha", "alpha", "info")]


def test_key_case_and_value_change_together() -> None:
    before = instance(1, {k: v for k, v in GOOD.items() if k != "Environment"} | {"environment": "prod"})
    result = drift_of(before, dict(GOOD))
    assert rows(result) == [("changed", "Environment", "environment", "prod", "production", "info")]
    assert "fix" in result.drift_detected[0].reason


def test_case_variants_pair_deterministically() -> None:
    before = instance(1, {**GOOD, "TEAM": "a", "team": "b"})
    result = drift_of(before, {**GOOD, "Team": "a"})
    assert sorted(rows(result)) == [
        ("changed", "Team", "TEAM", "a", "a", "info"),
        ("removed", "team", None, "b", None, "info"),
    ]


# --- severity ---------------------------------------------------------------------------------------

SEVERITY_CASES = [
    # (description, before tags, after tags, expected severity)
    ("required tag removed", GOOD, {k: v for k, v in GOOD.items() if k != "Owner"}, "critical"),
    ("required tag emptied", GOOD, {**GOOD, "Owner": "  "}, "critical"),
    ("required value not allowed", GOOD, {**GOOD, "Environment": "prod"}, "critical"),
    ("required value bad format", GOOD, {**GOOD, "Owner": "Ana Smith"}, "critical"),
    (
        "invalid to another invalid",
        {**GOOD, "Environment": "prod"},
        {**GOOD, "Environment": "dev"},
        "critical",
    ),
    (
        "exact key lost its case",
        GOOD,
        {k: v for k, v in GOOD.items() if k != "Owner"} | {"owner": "ana@example.com"},
        "critical",
    ),
    ("valid to another valid", GOOD, {**GOOD, "Environment": "staging"}, "warning"),
    ("invalid fixed", {**GOOD, "Environment": "prod"}, {**GOOD, "Environment": "staging"}, "info"),
    ("missing required added validly", {k: v for k, v in GOOD.items() if k != "Owner"}, GOOD, "info"),
    (
        "key case fixed",
        {k: v for k, v in GOOD.items() if k != "Owner"} | {"OWNER": "ana@example.com"},
        GOOD,
        "info",
    ),
    ("optional tag changed", {**GOOD, "Project": "a"}, {**GOOD, "Project": "b"}, "info"),
    ("unknown tag added", GOOD, {**GOOD, "Team": "x"}, "info"),
    ("prohibited tag added", GOOD, {**GOOD, "Temp": "yes"}, "warning"),
    ("prohibited tag removed", {**GOOD, "Temp": "yes"}, GOOD, "info"),
    ("case duplicate of a valid required tag", GOOD, {**GOOD, "owner": "bob@example.com"}, "info"),
]


@pytest.mark.parametrize(
    ("description", "before", "after", "severity"), SEVERITY_CASES, ids=[c[0] for c in SEVERITY_CASES]
)
def test_severity(description: str, before: dict[str, str], after: dict[str, str], severity: str) -> None:
    result = drift_of(instance(1, before), after)
    assert [d.severity for d in result.drift_detected] == [severity], rows(result)
    assert result.drift_detected[0].reason


def test_required_is_per_resource_type() -> None:
    # Application is required for EC2 instances only: on a bucket it is an unknown tag.
    result = drift_of(bucket("logs", GOOD), {k: v for k, v in GOOD.items() if k != "Application"})
    assert rows(result) == [("removed", "Application", None, "web", None, "info")]
    result = drift_of(instance(1, GOOD), {k: v for k, v in GOOD.items() if k != "Application"})
    assert rows(result) == [("removed", "Application", None, "web", None, "critical")]


def test_severity_uses_the_policy_given() -> None:
    lenient = parse_policy({"required_tags": [{"name": "Owner"}]})
    result = detect_drift(
        [instance(1, GOOD)], [instance(1, {**GOOD, "Environment": "prod"})], lenient, observed_at=T1
    )
    assert [d.severity for d in result.drift_detected] == ["info"]


def test_ordering_is_most_severe_first_and_deterministic() -> None:
    before = [instance(n, {**GOOD, "Project": "a"}) for n in range(1, 6)]
    after = [
        replace(before[0], tags={**GOOD, "Project": "b"}),
        replace(before[1], tags={**GOOD, "Environment": "staging", "Project": "a"}),
        replace(before[2], tags={k: v for k, v in GOOD.items() if k != "CostCenter"} | {"Project": "a"}),
        replace(before[3], tags={**GOOD, "Owner": "X", "Project": "z"}),
        before[4],
    ]
    first = detect_drift(before, after, POLICY, observed_at=T1)
    shuffled_before, shuffled_after = before[:], after[:]
    random.Random(3).shuffle(shuffled_before)
    random.Random(4).shuffle(shuffled_after)
    second = detect_drift(shuffled_before, shuffled_after, POLICY, observed_at=T1)
    assert first == second
    assert [d.severity for d in first.drift_detected] == ["critical", "critical", "warning", "info", "info"]
    critical = first.drift_detected[:2]
    assert [d.resource_arn for d in critical] == sorted(d.resource_arn for d in critical)


# --- scope, filters, threshold -----------------------------------------------------------------------


def test_resources_added_and_removed_are_listed_apart() -> None:
    kept, gone, new = instance(1, GOOD), instance(2, GOOD), instance(3, {})
    result = detect_drift([kept, gone], [kept, new], POLICY, observed_at=T1)
    assert result.drift_detected == []
    assert [r.resource_arn for r in result.resources_added] == [new.arn]
    assert [r.resource_arn for r in result.resources_removed] == [gone.arn]
    assert (result.total_resources_added, result.total_resources_removed, result.resources_compared) == (
        1,
        1,
        1,
    )


def test_failed_shards_are_neither_added_nor_removed() -> None:
    kept, unread = instance(1, GOOD), bucket("logs", GOOD)
    current_snapshot = snapshot(
        "now",
        T1,
        failed_shards=[{"region": "us-east-1", "resource_type": "s3:bucket", "error": "AccessDenied"}],
    )
    result = detect_drift([kept, unread], [kept], POLICY, current_snapshot=current_snapshot)
    assert result.resources_removed == [] and result.observed_at == T1
    assert any("could not read" in note for note in result.notes)
    baseline = snapshot(
        "then",
        T0,
        failed_shards=[
            {"region": "us-east-1", "resource_type": "s3:bucket", "error": "x", "resource_arn": unread.arn}
        ],
    )
    result = detect_drift([kept], [kept, unread], POLICY, baseline=baseline, observed_at=T1)
    assert result.resources_added == [] and any("baseline could not read" in note for note in result.notes)


def test_resource_type_and_region_filters() -> None:
    east, west, box = instance(1, GOOD), instance(2, GOOD, "us-west-2"), bucket("logs", GOOD)
    after = [replace(r, tags={**GOOD, "Project": "x"}) for r in (east, west, box)]
    result = detect_drift([east, west, box], after, POLICY, observed_at=T1, resource_types=["ec2:instance"])
    assert {d.resource_arn for d in result.drift_detected} == {east.arn, west.arn}
    result = detect_drift([east, west, box], after, POLICY, observed_at=T1, regions=["us-west-2"])
    assert {d.resource_arn for d in result.drift_detected} == {west.arn}
    result = detect_drift(
        [east, west, box], after, POLICY, observed_at=T1, resource_types=["all"], regions=["all"]
    )
    assert result.total_drifts == 3


def test_tag_key_filter_is_case_sensitive_but_matches_either_side_of_a_case_change() -> None:
    before = instance(1, {**GOOD, "Project": "a", "team": "x"})
    after = {**GOOD, "Environment": "staging", "Project": "b", "Team": "x"}
    assert [d.tag for d in drift_of(before, after, tag_keys=["Environment"]).drift_detected] == [
        "Environment"
    ]
    assert drift_of(before, after, tag_keys=["environment"]).drift_detected == []
    assert [d.tag for d in drift_of(before, after, tag_keys=["team"]).drift_detected] == ["Team"]
    assert [d.tag for d in drift_of(before, after, tag_keys=["Team"]).drift_detected] == ["Team"]


def test_threshold() -> None:
    before = instance(1, GOOD)
    after = {**GOOD, "Environment": "staging", "Project": "x"}
    assert drift_of(before, after).threshold_exceeded is None
    assert drift_of(before, after, threshold=2).threshold_exceeded is True
    assert drift_of(before, after, threshold=3).threshold_exceeded is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource_types": ["ec2:instanse"]}, "unknown resource type"),
        ({"regions": ["mars-1"]}, "not AWS region names"),
        ({"tag_keys": [""]}, "tag_keys"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"limit": -1}, "limit"),
    ],
)
def test_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        drift_of(instance(1, GOOD), GOOD, **kwargs)


def test_limit_cuts_lists_but_not_totals() -> None:
    before = [instance(n, GOOD) for n in range(1, 5)]
    after = [replace(r, tags={**GOOD, "Project": "x"}) for r in before] + [instance(9, {})]
    result = detect_drift(before, after, POLICY, observed_at=T1, limit=2)
    assert len(result.drift_detected) == 2 and result.total_drifts == 4 and result.truncated
    assert result.total_resources_added == 1


def test_baseline_records_from_the_store_are_accepted() -> None:
    resource = instance(1, GOOD)
    state = ResourceStateRecord(
        "s1", resource.arn, resource.resource_type, resource.region, ACCOUNT, dict(GOOD), True
    )
    baseline = snapshot("s1", T0)
    result = detect_drift(
        iter([state]),
        [replace(resource, tags={**GOOD, "Owner": "x"})],
        POLICY,
        baseline=baseline,
        observed_at=T1,
    )
    assert rows(result) == [("changed", "Owner", None, "ana@example.com", "x", "critical")]
    assert (result.baseline_snapshot_id, result.baseline_taken_at) == ("s1", T0)


# --- attribution -----------------------------------------------------------------------------------


class FakeEvents:
    """The TagChangeEvents port in memory: events per region, and the calls made."""

    def __init__(self, events: dict[str, list[TagChangeEvent]] | None = None, error: Exception | None = None):
        self.events = events or {}
        self.error = error
        self.calls: list[tuple[str, list[str], datetime, datetime]] = []

    def lookup(
        self, region: str, resource_arns_or_ids: Sequence[str], start: datetime, end: datetime
    ) -> list[TagChangeEvent]:
        self.calls.append((region, list(resource_arns_or_ids), start, end))
        if self.error is not None:
            raise self.error
        return [e for e in self.events.get(region, []) if set(e.resources) & set(resource_arns_or_ids)]


USER = "arn:aws:iam::123456789012:user/john.doe"
ROLE = "arn:aws:sts::123456789012:assumed-role/ops/jane"


def event(
    name: str,
    at: datetime,
    resource: str,
    keys: tuple[str, ...] | None,
    actor: str = USER,
    event_id: str = "",
) -> TagChangeEvent:
    return TagChangeEvent(event_id or f"{name}-{at.isoformat()}", name, at, actor, (resource,), keys)


def test_attribution_from_events_matches_resource_key_kind_and_window() -> None:
    res = instance(1, {**GOOD, "Project": "a"})
    after = {k: v for k, v in GOOD.items() if k != "Owner"} | {"Environment": "staging", "Project": "a"}
    fake = FakeEvents(
        {
            "us-east-1": [
                event("DeleteTags", T0 + timedelta(hours=2), res.resource_id, ("Owner",), ROLE),
                event("CreateTags", T0 + timedelta(hours=1), res.resource_id, ("Environment",)),
                event("CreateTags", T0 + timedelta(hours=3), res.resource_id, ("Environment",), ROLE),
                event(
                    "CreateTags", T0 - timedelta(hours=1), res.resource_id, ("Owner",)
                ),  # before the baseline
                event(
                    "CreateTags", T0 + timedelta(hours=5), res.resource_id, ("Owner",)
                ),  # a set cannot remove
            ]
        }
    )
    result = drift_of(res, after, events=fake, baseline=snapshot("b", T0))
    by_tag = {d.tag: d for d in result.drift_detected}
    assert by_tag["Owner"].attribution == "cloudtrail" and by_tag["Owner"].changed_by == ROLE
    assert by_tag["Owner"].event_name == "DeleteTags"
    assert by_tag["Environment"].changed_at == T0 + timedelta(hours=3)  # the latest matching call
    region, names, start, end = fake.calls[0]
    assert (region, start, end) == ("us-east-1", T0, T1)
    assert set(names) == {res.arn, res.resource_id}
    assert len(fake.calls) == 1  # one lookup per region


def test_event_without_keys_matches_any_key_and_arns_match_too() -> None:
    box = bucket("logs", GOOD)
    fake = FakeEvents({"us-east-1": [event("PutBucketTagging", T0 + timedelta(minutes=5), box.arn, None)]})
    result = drift_of(
        box, {**GOOD, "Environment": "staging", "Team": "x"}, events=fake, baseline=snapshot("b", T0)
    )
    assert {(d.tag, d.attribution, d.changed_by) for d in result.drift_detected} == {
        ("Environment", "cloudtrail", USER),
        ("Team", "cloudtrail", USER),
    }


def test_unmatched_drift_is_unavailable_with_a_note() -> None:
    res = instance(1, GOOD)
    fake = FakeEvents(
        {"us-east-1": [event("CreateTags", T0 + timedelta(hours=1), res.resource_id, ("Project",))]}
    )
    result = drift_of(res, {**GOOD, "Environment": "staging"}, events=fake, baseline=snapshot("b", T0))
    drift = result.drift_detected[0]
    assert (drift.attribution, drift.changed_by, drift.changed_at) == ("unavailable", None, None)
    assert any("no matching tag event" in note for note in result.notes)


@pytest.mark.parametrize(
    "error", [TagEventsUnavailableError("AccessDenied: not allowed"), RuntimeError("boom")]
)
def test_event_source_failure_degrades_to_unavailable(error: Exception) -> None:
    res = instance(1, GOOD)
    result = drift_of(
        res, {**GOOD, "Environment": "staging"}, events=FakeEvents(error=error), baseline=snapshot("b", T0)
    )
    assert result.total_drifts == 1 and result.drift_detected[0].attribution == "unavailable"
    assert any(str(error) in note and "us-east-1" in note for note in result.notes)


def test_incomplete_lookup_uses_the_events_read() -> None:
    res = instance(1, GOOD)
    partial = [event("CreateTags", T0 + timedelta(hours=1), res.resource_id, ("Environment",))]
    fake = FakeEvents(error=TagEventsIncompleteError("read only 250 events", partial))
    result = drift_of(res, {**GOOD, "Environment": "staging"}, events=fake, baseline=snapshot("b", T0))
    assert result.drift_detected[0].attribution == "cloudtrail"
    assert any("partial" in note and "250" in note for note in result.notes)


def test_no_event_source_means_unavailable() -> None:
    result = drift_of(instance(1, GOOD), {**GOOD, "Environment": "staging"})
    assert result.drift_detected[0].attribution == "unavailable"
    assert any("not looked up" in note for note in result.notes)


def test_lookups_are_per_region_and_skipped_without_drift() -> None:
    east, west = instance(1, GOOD), instance(2, GOOD, "eu-west-1")
    fake = FakeEvents()
    detect_drift([east, west], [east, west], POLICY, events=fake, observed_at=T1)
    assert fake.calls == []
    after = [replace(east, tags={**GOOD, "Project": "x"}), replace(west, tags={**GOOD, "Project": "y"})]
    detect_drift([east, west], after, POLICY, events=fake, observed_at=T1)
    assert sorted(call[0] for call in fake.calls) == ["eu-west-1", "us-east-1"]  # one lookup per region
    # Without a baseline the window is CloudTrail's 90 days.
    assert all(end - start == timedelta(days=90) for _, _, start, end in fake.calls)


def test_naive_event_times_are_read_as_utc() -> None:
    res = instance(1, GOOD)
    naive = T0.replace(tzinfo=None) + timedelta(hours=1)
    fake = FakeEvents({"us-east-1": [event("CreateTags", naive, res.resource_id, ("Environment",))]})
    result = drift_of(res, {**GOOD, "Environment": "staging"}, events=fake, baseline=snapshot("b", T0))
    assert result.drift_detected[0].changed_at == T0 + timedelta(hours=1)


# --- the CloudTrail adapter (moto has no LookupEvents: a stub client stands in) -------------------


def cloudtrail_record(
    name: str,
    parameters: dict[str, Any],
    resources: list[str] | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "EventId": f"id-{name}",
        "EventName": name,
        "EventTime": T0 + timedelta(hours=1),
        "Username": "john.doe",
        "Resources": [{"ResourceType": "x", "ResourceName": r} for r in resources or []],
        "CloudTrailEvent": json.dumps(
            {
                "eventName": name,
                "userIdentity": identity or {"type": "IAMUser", "arn": USER},
                "requestParameters": parameters,
            }
        ),
    }


def test_parse_ec2_create_tags() -> None:
    raw = cloudtrail_record(
        "CreateTags",
        {
            "resourcesSet": {"items": [{"resourceId": "i-1"}, {"resourceId": "i-2"}]},
            "tagSet": {"items": [{"key": "Environment", "value": "i-3"}, {"key": "Owner", "value": "x"}]},
        },
    )
    parsed = parse_cloudtrail_event(raw, {"i-1", "i-3"})
    assert parsed is not None
    # A tag value equal to an id does not make the event about that resource.
    assert (
        parsed.resources == ("i-1",) and parsed.tag_keys == ("Environment", "Owner") and parsed.actor == USER
    )
    assert parse_cloudtrail_event(raw, {"i-9"}) is None


@pytest.mark.parametrize(
    ("name", "parameters", "wanted", "keys"),
    [
        (
            "PutBucketTagging",
            {
                "bucketName": "logs",
                "Tagging": {"xmlns": "http://s3", "TagSet": {"Tag": [{"Key": "Team", "Value": "a"}]}},
            },
            "logs",
            ("Team",),
        ),
        ("DeleteBucketTagging", {"bucketName": "logs", "tagging": ""}, "logs", None),
        (
            "TagResource",
            {"resource": "arn:aws:lambda:us-east-1:1:function:f", "tags": {"Team": "a", "Owner": "b"}},
            "arn:aws:lambda:us-east-1:1:function:f",
            ("Team", "Owner"),
        ),
        (
            "UntagResource",
            {"resource": "arn:aws:lambda:us-east-1:1:function:f", "tagKeys": ["Team"]},
            "arn:aws:lambda:us-east-1:1:function:f",
            ("Team",),
        ),
        (
            "AddTagsToResource",
            {"resourceName": "arn:aws:rds:us-east-1:1:db:d", "tags": [{"key": "Owner", "value": "x"}]},
            "arn:aws:rds:us-east-1:1:db:d",
            ("Owner",),
        ),
        (
            "UntagResources",
            {"resourceARNList": ["arn:a", "arn:b"], "tagKeys": ["Owner"]},
            "arn:b",
            ("Owner",),
        ),
        (
            "TagQueue",
            {"queueUrl": "https://sqs.us-east-1.amazonaws.com/1/jobs", "tags": {"Team": "a"}},
            "jobs",
            ("Team",),
        ),
    ],
)
def test_parse_other_services(
    name: str, parameters: dict[str, Any], wanted: str, keys: tuple[str, ...] | None
) -> None:
    parsed = parse_cloudtrail_event(cloudtrail_record(name, parameters), {wanted})
    assert parsed is not None and parsed.resources == (wanted,) and parsed.tag_keys == keys


def test_parse_uses_resources_and_role_sessions() -> None:
    raw = cloudtrail_record(
        "TagResource", {}, ["arn:aws:sns:us-east-1:1:t"], {"type": "AssumedRole", "arn": ROLE}
    )
    parsed = parse_cloudtrail_event(raw, {"arn:aws:sns:us-east-1:1:t"})
    assert parsed is not None and parsed.actor == ROLE and parsed.tag_keys is None


def test_event_names_follow_the_resources_services() -> None:
    assert tag_event_names_for(["arn:aws:ec2:us-east-1:1:instance/i-1", "i-1"]) == [
        "CreateTags",
        "DeleteTags",
        "TagResources",
        "UntagResources",
    ]
    assert "PutBucketTagging" in tag_event_names_for(["arn:aws:s3:::logs"])
    assert tag_event_names_for(["i-1"]) == list(TAG_EVENT_NAMES)


class StubCloudTrail:
    def __init__(self, pages: dict[str, list[dict[str, Any]]], error: Exception | None = None):
        self.pages = pages
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def lookup_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.error is not None:
            raise self.error
        name = params["LookupAttributes"][0]["AttributeValue"]
        pages = self.pages.get(name, [{}])
        index = int(params.get("NextToken", "0"))
        page = dict(pages[index])
        if index + 1 < len(pages):
            page["NextToken"] = str(index + 1)
        return page


class StubClients:
    endpoint_url = None


def adapter(stub: StubCloudTrail, **kwargs: Any) -> CloudTrailTagEvents:
    events = CloudTrailTagEvents(StubClients(), **kwargs)  # type: ignore[arg-type]
    events._by_region["us-east-1"] = stub
    return events


def ec2_page(*ids: str) -> dict[str, Any]:
    return {
        "Events": [
            {
                **cloudtrail_record(
                    "CreateTags",
                    {"resourcesSet": {"items": [{"resourceId": i}]}, "tagSet": {"items": [{"key": "Owner"}]}},
                ),
                "EventId": f"e-{i}",
            }
            for i in ids
        ]
    }


def test_adapter_paginates_per_event_name_and_filters_resources() -> None:
    stub = StubCloudTrail({"CreateTags": [ec2_page("i-1", "i-9"), ec2_page("i-2")]})
    found = adapter(stub).lookup("us-east-1", ["i-1", "i-2", "arn:aws:ec2:us-east-1:1:instance/i-1"], T0, T1)
    assert sorted(e.event_id for e in found) == ["e-i-1", "e-i-2"]
    names = [call["LookupAttributes"][0]["AttributeValue"] for call in stub.calls]
    assert names == ["CreateTags", "CreateTags", "DeleteTags", "TagResources", "UntagResources"]
    assert all(call["StartTime"] == T0 and call["EndTime"] == T1 for call in stub.calls)


def test_adapter_bounds_pages_and_reports_incomplete() -> None:
    stub = StubCloudTrail({"CreateTags": [ec2_page("i-1"), ec2_page("i-2"), ec2_page("i-3")]})
    with pytest.raises(TagEventsIncompleteError) as caught:
        adapter(stub, max_pages_per_event_name=2).lookup(
            "us-east-1", ["arn:aws:ec2:us-east-1:1:instance/i-1", "i-1", "i-3"], T0, T1
        )
    assert [e.event_id for e in caught.value.events] == ["e-i-1"]
    assert "100 CreateTags events" in str(caught.value)


def test_adapter_failure_is_unavailable_with_the_reason() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no cloudtrail:LookupEvents"}}, "LookupEvents"
    )
    with pytest.raises(TagEventsUnavailableError, match="AccessDeniedException"):
        adapter(StubCloudTrail({}, error)).lookup("us-east-1", ["i-1"], T0, T1)
    assert adapter(StubCloudTrail({})).lookup("us-east-1", [], T0, T1) == []


# --- the baseline ----------------------------------------------------------------------------------


class MemoryStore:
    """list_snapshots exactly as the SQL store answers it (since <= created_at < until, oldest first)."""

    def __init__(self, snapshots: list[SnapshotRecord]):
        self.snapshots = sorted(snapshots, key=lambda s: (s.created_at, s.snapshot_id))
        self.calls = 0

    def list_snapshots(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[SnapshotRecord]:
        self.calls += 1
        return [
            s
            for s in self.snapshots
            if (since is None or s.created_at >= since) and (until is None or s.created_at < until)
        ][:limit]


SCOPE = (["s3:bucket", "ec2:instance"], ["us-east-1"], ACCOUNT)


def test_choose_baseline_in_a_real_store(tmp_path: Path) -> None:
    store = SqliteStore(Settings(DATA_DIR=str(tmp_path)).sqlite_path)
    store.migrate()
    now = T0 + timedelta(days=30)
    records = [
        snapshot("old", now - timedelta(days=20)),
        snapshot("week", now - timedelta(days=7)),
        snapshot("week-other-scope", now - timedelta(days=7) + timedelta(hours=1), regions=["eu-west-1"]),
        snapshot("other-account", now - timedelta(days=2), account_id="999999999999"),
        snapshot("yesterday", now - timedelta(days=1)),
        snapshot("current", now),
    ]
    try:
        for record in records:
            store.save_snapshot(record, [])
        assert choose_baseline(store, SCOPE, 7, now).snapshot_id == "week"  # exactly 7 days: "at or before"
        assert choose_baseline(store, SCOPE, 3, now).snapshot_id == "week"
        assert choose_baseline(store, SCOPE, 10, now).snapshot_id == "old"
        assert choose_baseline(store, SCOPE, 25, now) is None
        assert choose_baseline(store, SCOPE, None, now).snapshot_id == "yesterday"  # strictly before now
        assert choose_baseline(store, SCOPE, 0, now, exclude_snapshot_id="current").snapshot_id == "yesterday"
        assert choose_baseline(store, SCOPE, 0, now).snapshot_id == "current"
        assert choose_baseline(store, (["ec2:instance"], ["us-east-1"], ACCOUNT), None, now) is None
        assert (
            choose_baseline(store, (SCOPE[0], ["eu-west-1"], ACCOUNT), None, now).snapshot_id
            == "week-other-scope"
        )
    finally:
        store.close()


def test_choose_baseline_with_empty_store_and_bad_input() -> None:
    assert choose_baseline(MemoryStore([]), SCOPE, 7, T1) is None  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lookback_days"):
        choose_baseline(MemoryStore([]), SCOPE, -1, T1)  # type: ignore[arg-type]


def test_choose_baseline_pages_through_busy_history() -> None:
    # 1,200 snapshots of another scope in the last hours hide the one we want behind several pages.
    now = T0 + timedelta(days=400)
    wanted = snapshot("wanted", now - timedelta(hours=5))
    noise = [
        snapshot(f"n{i:04d}", now - timedelta(hours=4) + timedelta(seconds=i), regions=["eu-west-1"])
        for i in range(1200)
    ]
    same_moment = [snapshot(f"m{i:04d}", now - timedelta(hours=5), regions=["eu-west-1"]) for i in range(700)]
    ancient = snapshot("ancient", now - timedelta(days=399))
    store = MemoryStore([wanted, *noise, *same_moment, ancient])
    assert choose_baseline(store, SCOPE, None, now).snapshot_id == "wanted"  # type: ignore[arg-type]
    # Far back: found by widening the windows, in a bounded number of reads.
    store.calls = 0
    assert choose_baseline(store, SCOPE, 30, now).snapshot_id == "ancient"  # type: ignore[arg-type]
    assert store.calls < 20

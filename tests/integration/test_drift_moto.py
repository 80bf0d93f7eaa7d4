"""Drift against the demo estate on moto: scan, change tags with boto3, scan again, compare.

The two scans are stored as snapshots the way the service stores them, the baseline is chosen from
the store and its resource states are streamed back, so this is the whole pipeline the
``detect_tag_drift`` tool runs. moto has no CloudTrail LookupEvents (HTTP 500): the real adapter
must degrade to "attribution unavailable" with the reason, quickly, and never fail the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.demo.aws import DemoAws
from services.demo.estate import EstateResource, load_demo_policy
from tagcompliance.aws import AwsClients
from tagcompliance.compliance import compile_policy, evaluate
from tagcompliance.drift import CloudTrailTagEvents, choose_baseline, detect_drift
from tagcompliance.inventory import Inventory, collect_inventory
from tagcompliance.policy import TaggingPolicy
from tagcompliance.settings import Settings
from tagcompliance.snapshots import build_snapshot, resource_states
from tagcompliance.store import SnapshotRecord, SqliteStore

REGION = "us-east-1"
TYPES = ["ec2:instance", "s3:bucket"]


def pick(
    demo: DemoAws, resource_type: str, test: Callable[[EstateResource], bool], taken: set[str]
) -> EstateResource:
    for resource in demo.estate.select([resource_type], [REGION]):
        if resource.key not in taken and test(resource):
            taken.add(resource.key)
            return resource
    raise AssertionError(f"the demo estate has no {resource_type} in {REGION} fit for this test")


def scan_and_store(
    clients: AwsClients, store: SqliteStore, policy: TaggingPolicy
) -> tuple[Inventory, SnapshotRecord]:
    inventory = collect_inventory(clients, [REGION], TYPES)
    assert not inventory.failed_shards and not inventory.unreadable
    evaluation = evaluate(inventory.resources, compile_policy(policy, TYPES))
    snapshot = build_snapshot(inventory, evaluation, policy)
    store.save_snapshot(
        snapshot, resource_states(snapshot.snapshot_id, inventory.resources, evaluation.noncompliant_arns)
    )
    return inventory, snapshot


def test_detect_drift_reports_exactly_the_changes_made(
    demo_aws: DemoAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in demo_aws.environment.items():
        monkeypatch.setenv(name, value)
    clients = AwsClients(Settings(AWS_ENDPOINT_URL=demo_aws.endpoint_url, AWS_REGION=REGION))
    policy = load_demo_policy()
    store = SqliteStore(tmp_path / "drift.sqlite3")
    store.migrate()
    taken: set[str] = set()
    compliant = pick(demo_aws, "ec2:instance", lambda r: r.compliant and r.tags is not None, taken)
    to_invalidate = pick(demo_aws, "ec2:instance", lambda r: r.compliant and r.tags is not None, taken)
    with_project = pick(
        demo_aws, "ec2:instance", lambda r: r.compliant and "Project" in (r.tags or {}), taken
    )
    miscased = pick(
        demo_aws,
        "ec2:instance",
        lambda r: [d.kind for d in r.defects] == ["wrong_case"] and r.defects[0].tag_key == "Owner",
        taken,
    )
    box = pick(demo_aws, "s3:bucket", lambda r: (r.tags or {}).get("Environment") == "production", taken)
    assert box.tags is not None and miscased.tags is not None
    old_owner_key = next(key for key in miscased.tags if key.lower() == "owner" and key != "Owner")

    try:
        arns = demo_aws.arns
        ec2 = demo_aws.client("ec2", REGION)
        s3 = demo_aws.client("s3", REGION)

        def instance_id(resource: EstateResource) -> str:
            return arns[resource.key].rsplit("/", 1)[1]

        before, baseline = scan_and_store(clients, store, policy)
        assert {arns[r.key] for r in (compliant, to_invalidate, with_project, miscased, box)} <= {
            r.arn for r in before.resources
        }

        # 1. a required tag removed; 2. a required value made invalid; 3. an optional tag changed;
        # 4. a key's case fixed (delete the wrong-cased key, add the right one, same value);
        # 5. on a bucket (the whole tag set is replaced): a required value changed to another valid
        #    one and an unknown tag added.
        ec2.delete_tags(Resources=[instance_id(compliant)], Tags=[{"Key": "CostCenter"}])
        ec2.create_tags(
            Resources=[instance_id(to_invalidate)], Tags=[{"Key": "Environment", "Value": "prod"}]
        )
        ec2.create_tags(
            Resources=[instance_id(with_project)], Tags=[{"Key": "Project", "Value": "next-platform"}]
        )
        ec2.delete_tags(Resources=[instance_id(miscased)], Tags=[{"Key": old_owner_key}])
        ec2.create_tags(
            Resources=[instance_id(miscased)], Tags=[{"Key": "Owner", "Value": miscased.tags[old_owner_key]}]
        )
        bucket_tags = {**box.tags, "Environment": "staging", "Team": "storage"}
        s3.put_bucket_tagging(
            Bucket=box.name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in bucket_tags.items()]}
        )

        after, current = scan_and_store(clients, store, policy)
        chosen = choose_baseline(
            store,
            (TYPES, [REGION], clients.account_id),
            None,
            current.created_at,
            exclude_snapshot_id=current.snapshot_id,
        )
        assert chosen is not None and chosen.snapshot_id == baseline.snapshot_id
        started = time.monotonic()
        result = detect_drift(
            store.iter_resource_states(chosen.snapshot_id),
            after.resources,
            policy,
            resource_types=TYPES,
            regions=[REGION],
            events=CloudTrailTagEvents(clients),
            baseline=chosen,
            current_snapshot=current,
        )
        elapsed = time.monotonic() - started
    finally:
        demo_aws.reset_and_reseed()
        store.close()

    found = {
        (d.resource_arn, d.change, d.tag, d.previous_key, d.old_value, d.new_value, d.severity)
        for d in result.drift_detected
    }
    assert found == {
        (arns[compliant.key], "removed", "CostCenter", None, compliant.tags["CostCenter"], None, "critical"),  # type: ignore[index]
        (
            arns[to_invalidate.key],
            "changed",
            "Environment",
            None,
            to_invalidate.tags["Environment"],
            "prod",
            "critical",
        ),  # type: ignore[index]
        (
            arns[with_project.key],
            "changed",
            "Project",
            None,
            with_project.tags["Project"],
            "next-platform",
            "info",
        ),  # type: ignore[index]
        (
            arns[miscased.key],
            "changed",
            "Owner",
            old_owner_key,
            miscased.tags[old_owner_key],
            miscased.tags[old_owner_key],
            "info",
        ),
        (arns[box.key], "changed", "Environment", None, "production", "staging", "warning"),
        (arns[box.key], "added", "Team", None, None, "storage", "info"),
    }
    assert result.total_drifts == 6 and result.by_severity == {"critical": 2, "warning": 1, "info": 3}
    assert [d.severity for d in result.drift_detected] == [
        "critical",
        "critical",
        "warning",
        "info",
        "info",
        "info",
    ]
    assert result.resources_added == [] and result.resources_removed == []
    assert result.resources_compared == len(before.resources) == len(after.resources)
    assert (result.baseline_snapshot_id, result.baseline_taken_at) == (
        baseline.snapshot_id,
        baseline.created_at,
    )
    assert result.observed_at == current.created_at and result.threshold_exceeded is None

    # moto has no LookupEvents: attribution is unavailable, the reason is given, and it did not take long.
    assert all(d.attribution == "unavailable" and d.changed_by is None for d in result.drift_detected)
    assert any(
        "Attribution unavailable in us-east-1" in note and "LookupEvents" in note for note in result.notes
    ), result.notes
    assert "<" not in " ".join(result.notes)  # the HTML error page is reduced to its text
    assert elapsed < 10

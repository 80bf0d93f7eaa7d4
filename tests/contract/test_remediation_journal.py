"""The tag remediation journal (``RemediationStore``, migration 0009) behaves the same on SQLite and
PostgreSQL: a run and its items are stored together, outcomes update items, a run is finished with its
summary, listed by time and kind, and its undo is found."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tagcompliance.errors import StoreError
from tagcompliance.store import Store
from tagcompliance.store.remediations import ItemOutcome, RemediationItemRecord, RemediationRecord

from .test_store_contract import store  # noqa: F401 - the two-backend store fixture

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
ARN_A = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
ARN_B = "arn:aws:s3:::bucket-b"


def run(
    remediation_id: str, at: datetime, kind: str = "apply", undoes: str | None = None
) -> RemediationRecord:
    return RemediationRecord(
        remediation_id=remediation_id,
        kind=kind,
        undoes=undoes,
        status="running",
        user_id="ana@example.com",
        client_id="client-1",
        account_id="123456789012",
        owner="host:1",
        created_at=at,
        updated_at=at,
        finished_at=None,
        summary={"resources": 2},
    )


def item(remediation_id: str, arn: str, resource_type: str) -> RemediationItemRecord:
    return RemediationItemRecord(
        remediation_id=remediation_id,
        resource_arn=arn,
        resource_type=resource_type,
        region="us-east-1",
        before_tags={"Owner": "old@example.com", "Näme": "ü"},
        set_tags={"Owner": "new@example.com"},
        remove_keys=["Näme"],
        after_tags={"Owner": "new@example.com"},
        status="pending",
        error=None,
        updated_at=T0,
    )


def test_a_run_and_its_items_round_trip_and_record_outcomes(store: Store) -> None:  # noqa: F811
    record = run("rem_a", T0)
    items = [item("rem_a", ARN_A, "ec2:instance"), item("rem_a", ARN_B, "s3:bucket")]
    store.create_remediation(record, items)
    assert store.get_remediation("rem_a") == record
    assert store.list_remediation_items("rem_a") == sorted(items, key=lambda i: i.resource_arn)

    later = T0 + timedelta(seconds=5)
    store.record_item_outcomes(
        "rem_a", [ItemOutcome(ARN_A, "applied"), ItemOutcome(ARN_B, "failed", "AccessDenied")], later
    )
    by_arn = {i.resource_arn: i for i in store.list_remediation_items("rem_a")}
    assert by_arn[ARN_A] == replace(items[0], status="applied", updated_at=later)
    assert by_arn[ARN_B].status == "failed" and by_arn[ARN_B].error == "AccessDenied"

    store.finish_remediation("rem_a", "completed", {"by_status": {"applied": 1, "failed": 1}}, later)
    finished = store.get_remediation("rem_a")
    assert finished is not None and finished.status == "completed" and finished.finished_at == later
    assert finished.summary == {"by_status": {"applied": 1, "failed": 1}}


def test_a_journal_is_all_or_nothing(store: Store) -> None:  # noqa: F811
    store.create_remediation(run("rem_a", T0), [item("rem_a", ARN_A, "ec2:instance")])
    # The same id again: the whole second journal is refused, nothing of it is stored.
    with pytest.raises(StoreError):
        store.create_remediation(run("rem_a", T0), [item("rem_a", ARN_B, "s3:bucket")])
    assert [i.resource_arn for i in store.list_remediation_items("rem_a")] == [ARN_A]
    # Items twice for one resource: refused as one transaction, the run row too.
    with pytest.raises(StoreError):
        store.create_remediation(run("rem_b", T0), [item("rem_b", ARN_A, "ec2:instance")] * 2)
    assert store.get_remediation("rem_b") is None


def test_runs_are_listed_by_time_and_kind_and_the_undo_is_found(store: Store) -> None:  # noqa: F811
    store.create_remediation(run("rem_a", T0), [])
    store.create_remediation(run("rem_b", T0 + timedelta(hours=1)), [])
    store.create_remediation(run("rem_u", T0 + timedelta(hours=2), kind="undo", undoes="rem_a"), [])
    assert [r.remediation_id for r in store.list_remediations()] == ["rem_a", "rem_b", "rem_u"]
    assert [r.remediation_id for r in store.list_remediations(since=T0 + timedelta(minutes=30))] == [
        "rem_b",
        "rem_u",
    ]
    assert [r.remediation_id for r in store.list_remediations(kind="apply", limit=1)] == ["rem_b"]
    undo = store.find_undo("rem_a")
    assert undo is not None and undo.remediation_id == "rem_u"
    assert store.find_undo("rem_b") is None

"""The Store contract, run against both backends: an SQLite file and a real PostgreSQL server.

PostgreSQL must be reachable at 127.0.0.1:5432 (user postgres, trust auth): these tests fail,
never skip, without it, so CI cannot pass while silently testing only SQLite.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tagcompliance.errors import InvalidInputError, StoreError
from tagcompliance.settings import Settings
from tagcompliance.store import (
    AuditRecord,
    PostgresStore,
    ResourceStateRecord,
    SnapshotRecord,
    SqliteStore,
    SqlStore,
    Store,
    open_store,
)
from tagcompliance.store.sql import SAVE_BATCH_SIZE, load_migrations
from tests.conftest import fresh_postgres_database, postgres_url_for

BACKENDS = ["sqlite", "postgresql"]
LATEST_SCHEMA_VERSION = max(migration.version for migration in load_migrations())
T0 = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated, empty store, opened the way the product opens it."""
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory() as data_dir:
            sqlite_store = open_store(Settings(DATA_DIR=data_dir, DATABASE_URL=None))
            try:
                yield sqlite_store
            finally:
                sqlite_store.close()
        return
    url = request.getfixturevalue("postgres_url")
    postgres_store = open_store(Settings(DATABASE_URL=url))
    try:
        yield postgres_store
    finally:
        postgres_store.close()
        # The database lives for the session: empty it so the next test starts clean.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE resource_tag_state, compliance_snapshots, audit_logs RESTART IDENTITY")


@pytest.fixture(params=BACKENDS)
def new_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], SqlStore]]:
    """Makes unmigrated store instances, all on one new, empty database (as separate processes would)."""
    opened: list[SqlStore] = []
    with ExitStack() as cleanup:
        make: Callable[[], SqlStore]
        if request.param == "sqlite":
            make = partial(
                SqliteStore, Path(cleanup.enter_context(tempfile.TemporaryDirectory())) / "store.sqlite3"
            )
        else:
            make = partial(PostgresStore, cleanup.enter_context(fresh_postgres_database()))

        def factory() -> SqlStore:
            opened.append(make())
            return opened[-1]

        yield factory
        for instance in opened:
            instance.close()


def make_snapshot(snapshot_id: str, created_at: datetime = T0, **changes: Any) -> SnapshotRecord:
    fields: dict[str, Any] = {
        "snapshot_id": snapshot_id,
        "created_at": created_at,
        "account_id": "123456789012",
        "regions": ["us-east-1", "eu-west-1"],
        "resource_types": ["ec2:instance", "s3:bucket"],
        "policy_digest": "sha256:" + "ab" * 32,
        "policy": {"version": "1.0", "required_tags": [{"name": "Owner", "applies_to": ["ec2:instance"]}]},
        "total_resources": 12,
        "scanned_resources": 10,
        "compliant_resources": 7,
        "compliance_score": 0.7,
        "violation_count": 4,
        "counts_by_type": {"ec2:instance": {"total": 6, "compliant": 4, "violations": 2}},
        "counts_by_region": {"us-east-1": {"total": 10, "compliant": 7, "violations": 4}},
        "counts_by_violation": {"missing_required_tag": 3, "invalid_value": 1},
        "failed_shards": [{"region": "eu-west-1", "resource_type": "s3:bucket", "error": "AccessDenied"}],
    }
    fields.update(changes)
    return SnapshotRecord(**fields)


def make_states(snapshot_id: str, count: int) -> list[ResourceStateRecord]:
    """States in shuffled order, with ARNs whose case makes locale and code point order disagree."""
    states = [
        ResourceStateRecord(
            snapshot_id=snapshot_id,
            resource_arn=f"arn:aws:ec2:us-east-1:123456789012:instance/{'i' if n % 2 else 'I'}-{n:08x}",
            resource_type="ec2:instance",
            region="us-east-1",
            account_id="123456789012",
            tags={"Owner": f"team-{n % 7}", "CostCenter": "CC-1", "Name": f"résumé-{n}"},
            compliant=n % 3 != 0,
            name=f"host-{n}" if n % 5 else None,
            vpc_id=f"vpc-{n % 4:04x}" if n % 2 else None,
        )
        for n in range(count)
    ]
    random.Random(count).shuffle(states)
    return states


def make_audit(tool_name: str, timestamp: datetime, **changes: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "timestamp": timestamp,
        "user_id": "alice@example.com",
        "tool_name": tool_name,
        "parameters": {"regions": ["us-east-1"], "filters": {"type": "ec2:instance"}},
        "result_summary": {"compliance_score": 0.7, "violations": 4},
        "duration_ms": 1234,
        "status": "success",
        "client_id": "claude-desktop",
        "ip_address": "203.0.113.7",
        "user_agent": "mcp-client/1.0",
    }
    fields.update(changes)
    return AuditRecord(**fields)


def test_migrate_again_is_a_no_op_and_reports_the_version(store: Store) -> None:
    store.save_snapshot(make_snapshot("snap-1"), make_states("snap-1", 3))

    assert store.migrate() == LATEST_SCHEMA_VERSION
    assert store.migrate() == LATEST_SCHEMA_VERSION
    assert store.info().schema_version == LATEST_SCHEMA_VERSION
    assert store.get_snapshot("snap-1") is not None


def test_migrate_from_several_processes_at_once_applies_each_migration_once(
    new_store: Callable[[], SqlStore],
) -> None:
    instances = [new_store() for _ in range(4)]
    start = threading.Barrier(len(instances))

    def migrate(instance: SqlStore) -> int:
        start.wait()
        return instance.migrate()

    with ThreadPoolExecutor(len(instances)) as pool:
        versions = list(pool.map(migrate, instances))

    assert versions == [LATEST_SCHEMA_VERSION] * len(instances)
    assert instances[0].info().schema_version == LATEST_SCHEMA_VERSION


def test_snapshot_round_trips_every_field(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    saved = make_snapshot("snap-full", created_at=T0.astimezone(paris), trigger="scheduled", scheduled=True)
    unscored = make_snapshot(
        "snap-unscored",
        created_at=T0 + timedelta(hours=1),
        compliance_score=None,
        scanned_resources=0,
        failed_shards=[],
        counts_by_violation={},
    )

    store.save_snapshot(saved, [])
    store.save_snapshot(unscored, [])

    loaded = store.get_snapshot("snap-full")
    assert loaded == saved
    assert loaded is not None and loaded.created_at.utcoffset() == timedelta(0)
    assert isinstance(loaded.compliance_score, float) and isinstance(loaded.scheduled, bool)
    assert store.get_snapshot("snap-unscored") == unscored
    assert store.get_snapshot("snap-unknown") is None


def test_list_snapshots_filters_by_time_oldest_first_with_a_limit(store: Store) -> None:
    assert store.latest_snapshot() is None
    snapshots = [make_snapshot(f"snap-{n}", created_at=T0 + timedelta(days=n)) for n in range(5)]
    for snapshot in random.Random(5).sample(snapshots, len(snapshots)):
        store.save_snapshot(snapshot, [])

    assert store.list_snapshots() == snapshots
    assert (
        store.list_snapshots(since=snapshots[1].created_at, until=snapshots[3].created_at) == snapshots[1:3]
    )
    assert store.list_snapshots(since=T0 + timedelta(days=2, seconds=1)) == snapshots[3:]
    assert store.list_snapshots(until=T0 + timedelta(microseconds=1)) == snapshots[:1]
    assert store.list_snapshots(limit=2) == snapshots[:2]
    assert store.latest_snapshot() == snapshots[-1]
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.list_snapshots(since=datetime(2025, 3, 1))  # naive: refused


def test_resource_states_stream_in_arn_order(store: Store) -> None:
    states = make_states("snap-big", 5000)
    store.save_snapshot(make_snapshot("snap-big"), iter(states))  # any iterable, even a one-shot generator
    store.save_snapshot(make_snapshot("snap-other"), make_states("snap-other", 2))

    stream = store.iter_resource_states("snap-big")
    first = next(stream)
    # A half-read stream must not hold up writers.
    store.record_audit(make_audit("check_tag_compliance", T0))
    streamed = [first, *stream]

    assert streamed == sorted(states, key=lambda state: state.resource_arn)
    assert list(store.iter_resource_states("snap-unknown")) == []


def test_save_snapshot_is_all_or_nothing(store: Store) -> None:
    states = make_states("snap-atomic", 2 * SAVE_BATCH_SIZE + 500)
    # The repeated ARN arrives in the last batch, after earlier batches were already written.
    with pytest.raises(StoreError, match="snap-atomic"):
        store.save_snapshot(make_snapshot("snap-atomic"), [*states, states[0]])

    assert store.get_snapshot("snap-atomic") is None
    assert store.list_snapshots() == []
    assert list(store.iter_resource_states("snap-atomic")) == []

    store.save_snapshot(make_snapshot("snap-atomic"), states)
    assert sum(1 for _ in store.iter_resource_states("snap-atomic")) == len(states)


def test_duplicate_snapshot_id_is_refused(store: Store) -> None:
    store.save_snapshot(make_snapshot("snap-dup"), make_states("snap-dup", 3))

    with pytest.raises(StoreError, match="snap-dup"):
        store.save_snapshot(make_snapshot("snap-dup", compliance_score=0.1), make_states("snap-dup", 5))

    assert store.get_snapshot("snap-dup") == make_snapshot("snap-dup")
    assert len(list(store.iter_resource_states("snap-dup"))) == 3


def test_state_of_another_snapshot_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="snap-b"):
        store.save_snapshot(make_snapshot("snap-a"), [*make_states("snap-a", 2), *make_states("snap-b", 1)])

    assert store.get_snapshot("snap-a") is None


def test_audit_logs_newest_first_and_filtered_by_tool(store: Store) -> None:
    records = [
        make_audit("check_tag_compliance", T0),
        make_audit(
            "find_untagged_resources",
            T0 + timedelta(seconds=1),
            status="error",
            error_message="AccessDenied",
            ip_address=None,
            client_id=None,
            user_agent=None,
        ),
        make_audit("check_tag_compliance", T0 + timedelta(seconds=2), ip_address="2001:DB8::1"),
        make_audit("check_tag_compliance", T0 + timedelta(seconds=3), ip_address="not-an-address"),
    ]
    for record in records:
        store.record_audit(record)

    logs = store.list_audit_logs()
    assert [log.timestamp for log in logs] == [record.timestamp for record in reversed(records)]
    assert all(log.id is not None for log in logs)
    assert logs[-1] == replace(records[0], id=logs[-1].id)
    assert logs[2].error_message == "AccessDenied" and logs[2].ip_address is None
    assert logs[1].ip_address == "2001:db8::1"  # canonical form
    assert logs[0].ip_address is None  # not an address: dropped on both backends alike
    assert [log.timestamp for log in store.list_audit_logs(tool_name="check_tag_compliance", limit=2)] == [
        records[3].timestamp,
        records[2].timestamp,
    ]
    assert store.list_audit_logs(tool_name="no_such_tool") == []


def test_concurrent_writes_from_eight_threads_all_land(store: Store) -> None:
    def write(worker: int) -> None:
        for n in range(3):
            snapshot_id = f"snap-w{worker}-{n}"
            store.save_snapshot(
                make_snapshot(snapshot_id, created_at=T0 + timedelta(minutes=n)), make_states(snapshot_id, 20)
            )
            for m in range(4):
                store.record_audit(make_audit(f"tool_{worker}", T0 + timedelta(seconds=m)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))

    snapshots = store.list_snapshots()
    assert len(snapshots) == 24
    assert all(len(list(store.iter_resource_states(s.snapshot_id))) == 20 for s in snapshots)
    assert len(store.list_audit_logs(limit=1000)) == 8 * 3 * 4


def test_info_names_backend_and_location(store: Store, request: pytest.FixtureRequest) -> None:
    info = store.info()

    assert info.backend == request.node.callspec.params["store"]
    assert info.schema_version == LATEST_SCHEMA_VERSION
    if info.backend == "sqlite":
        assert info.location.endswith("tagcompliance.sqlite3")
        assert info.details["journal_mode"] == "wal"
    else:
        assert info.location.startswith("postgresql://postgres@127.0.0.1:5432/tagcompliance_test_")


def test_postgres_location_never_shows_the_password(postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    # Trust authentication ignores the password, so the store opens and we can inspect what it shows.
    store = PostgresStore(postgres_url_for(database, password="hunter2-not-shown"))
    try:
        assert store.info().location == f"postgresql://postgres@127.0.0.1:5432/{database}"
    finally:
        store.close()


def test_unreachable_database_url_fails_fast_without_falling_back() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        open_store(Settings(DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/tagcompliance"))

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "PostgreSQL" in message and "postgresql://postgres@127.0.0.1:1/tagcompliance" in message
    assert "hunter2" not in message

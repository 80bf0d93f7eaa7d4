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
from psycopg import sql

from tagcompliance.errors import InvalidInputError, StoreError
from tagcompliance.settings import Settings
from tagcompliance.store import (
    CallRecord,
    ConcurrentUpdateError,
    PostgresStore,
    ResourceStateRecord,
    ScheduledAuditRecord,
    SnapshotRecord,
    SqliteStore,
    SqlStore,
    Store,
    open_store,
)
from tagcompliance.store.sql import (
    _CALL_LOG,
    _SCHEMA_MIGRATIONS_DDL,
    _SNAPSHOTS,
    _STATES,
    SAVE_BATCH_SIZE,
    load_migrations,
    render_ddl,
)
from tagcompliance.store.sqlbase import quoted_columns
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
    # The database lives for the session and other suites write to it too: every table but the
    # migration record is emptied first, so each test starts from what it asserts.
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename <> 'schema_migrations'"
            )
        ]
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )
    try:
        yield postgres_store
    finally:
        postgres_store.close()


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


def make_call(tool_name: str, timestamp: datetime, **changes: Any) -> CallRecord:
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
    return CallRecord(**fields)


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


def test_snapshot_accounts_and_counts_by_account_round_trip(store: Store) -> None:
    several = make_snapshot(
        "snap-accounts",
        account_id="999999999999",  # the account that ran the scan, not one of those scanned
        accounts=["111111111111", "222222222222", "333333333333"],
        counts_by_account={
            "111111111111": {"total": 8, "compliant": 6, "violations": 3},
            "222222222222": {"total": 4, "compliant": 1, "violations": 5},
        },
        failed_shards=[
            {
                "account_id": "333333333333",
                "region": "us-east-1",
                "resource_type": "ec2:instance",
                "error": "x",
            }
        ],
    )
    unset = make_snapshot("snap-no-accounts", created_at=T0 + timedelta(hours=1))

    store.save_snapshot(several, [])
    store.save_snapshot(unset, [])

    loaded = store.get_snapshot("snap-accounts")
    assert loaded == several
    assert loaded is not None and loaded.covered_accounts == ["111111111111", "222222222222", "333333333333"]
    assert loaded.counts_by_account["222222222222"] == {"total": 4, "compliant": 1, "violations": 5}
    plain = store.get_snapshot("snap-no-accounts")
    assert plain is not None and (plain.accounts, plain.counts_by_account) == ([], {})
    assert plain.covered_accounts == ["123456789012"]
    assert store.list_snapshots() == [several, unset]


def _state(snapshot_id: str, account: str, number: int, compliant: bool) -> ResourceStateRecord:
    return ResourceStateRecord(
        snapshot_id=snapshot_id,
        resource_arn=f"arn:aws:sqs:us-east-1:{account}:queue-{number}",
        resource_type="sqs:queue",
        region="us-east-1",
        account_id=account,
        tags={"Owner": "a@example.com"} if compliant else {},
        compliant=compliant,
    )


def test_snapshots_written_before_migration_5_gain_accounts_and_counts_by_account(
    new_store: Callable[[], SqlStore],
) -> None:
    instance = new_store()
    dialect = instance._dialect  # a store of the previous release: migrations 1 to 4 only
    older = [migration for migration in load_migrations() if migration.version <= 4]
    assert [migration.version for migration in older] == [1, 2, 3, 4]
    old_columns = [
        column for column, _ in _SNAPSHOTS.insert_kinds if column not in ("accounts", "counts_by_account")
    ]
    insert_snapshot = (
        f"INSERT INTO compliance_snapshots ({quoted_columns(old_columns)}) "
        f"VALUES ({', '.join([dialect.placeholder] * len(old_columns))})"
    )
    insert_state = (
        f"INSERT INTO resource_tag_state ({quoted_columns(column for column, _ in _STATES.insert_kinds)}) "
        f"VALUES ({', '.join([dialect.placeholder] * len(_STATES.insert_kinds))})"
    )

    def placeholders(count: int) -> str:
        return ", ".join([dialect.placeholder] * count)

    single = make_snapshot("snap-single", account_id="111111111111", total_resources=3, violation_count=9)
    joined = make_snapshot(
        "snap-joined", account_id="111111111111,222222222222", total_resources=2, violation_count=6
    )
    empty = make_snapshot("snap-empty", account_id="111111111111", total_resources=0, violation_count=0)
    mixed = make_snapshot("snap-mixed", account_id="111111111111", total_resources=2, violation_count=2)
    states = {
        # 111111111111: three queues, two compliant.
        "snap-single": [_state("snap-single", "111111111111", n, n != 0) for n in range(3)],
        # one queue in each account
        "snap-joined": [
            _state("snap-joined", "111111111111", 0, True),
            _state("snap-joined", "222222222222", 1, False),
        ],
        "snap-empty": [],
        # a state of another account in a single-account snapshot: its violations cannot be split
        "snap-mixed": [
            _state("snap-mixed", "111111111111", 0, False),
            _state("snap-mixed", "444444444444", 1, False),
        ],
    }
    with dialect.connection() as conn, dialect.transaction(conn):
        cursor = conn.cursor()
        cursor.execute(render_ddl(_SCHEMA_MIGRATIONS_DDL, dialect.ddl_types))
        for migration in older:
            for statement in migration.statements(dialect.ddl_types):
                cursor.execute(statement)
            cursor.execute(
                f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({placeholders(3)})",
                (migration.version, migration.name, dialect.encode_datetime(T0)),
            )
        for snapshot in (single, joined, empty, mixed):
            cursor.execute(insert_snapshot, instance._encode(_SNAPSHOTS, snapshot)[: len(old_columns)])
            for state in states[snapshot.snapshot_id]:
                cursor.execute(insert_state, instance._encode(_STATES, state))

    assert instance.migrate() == LATEST_SCHEMA_VERSION

    migrated = instance.get_snapshot("snap-single")
    assert migrated is not None
    assert (migrated.account_id, migrated.accounts) == ("111111111111", ["111111111111"])
    assert migrated.counts_by_account == {"111111111111": {"total": 3, "compliant": 2, "violations": 9}}
    assert replace(migrated, accounts=[], counts_by_account={}) == single  # nothing else changed

    several = instance.get_snapshot("snap-joined")
    assert several is not None
    assert several.accounts == ["111111111111", "222222222222"]
    assert several.covered_accounts == ["111111111111", "222222222222"]
    assert several.counts_by_account == {}  # per-account violations are not recoverable

    nothing = instance.get_snapshot("snap-empty")
    assert nothing is not None and (nothing.accounts, nothing.counts_by_account) == (["111111111111"], {})
    other = instance.get_snapshot("snap-mixed")
    assert other is not None and (other.accounts, other.counts_by_account) == (["111111111111"], {})

    # Snapshots written after the migration keep what they are given.
    fresh = make_snapshot(
        "snap-new",
        created_at=T0 + timedelta(days=1),
        accounts=["111111111111", "222222222222"],
        counts_by_account={"222222222222": {"total": 1, "compliant": 0, "violations": 2}},
    )
    instance.save_snapshot(fresh, [])
    assert instance.get_snapshot("snap-new") == fresh


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
    store.record_call(make_call("check_tag_compliance", T0))
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


def test_call_log_newest_first_and_filtered_by_tool(store: Store) -> None:
    records = [
        make_call("check_tag_compliance", T0),
        make_call(
            "find_untagged_resources",
            T0 + timedelta(seconds=1),
            status="error",
            error_message="AccessDenied",
            ip_address=None,
            client_id=None,
            user_agent=None,
        ),
        make_call("check_tag_compliance", T0 + timedelta(seconds=2), ip_address="2001:DB8::1"),
        make_call("check_tag_compliance", T0 + timedelta(seconds=3), ip_address="not-an-address"),
    ]
    for record in records:
        store.record_call(record)

    logs = store.list_calls()
    assert [log.timestamp for log in logs] == [record.timestamp for record in reversed(records)]
    assert all(log.id is not None for log in logs)
    assert logs[-1] == replace(records[0], id=logs[-1].id)
    assert logs[2].error_message == "AccessDenied" and logs[2].ip_address is None
    assert logs[1].ip_address == "2001:db8::1"  # canonical form
    assert logs[0].ip_address is None  # not an address: dropped on both backends alike
    assert [log.timestamp for log in store.list_calls(tool_name="check_tag_compliance", limit=2)] == [
        records[3].timestamp,
        records[2].timestamp,
    ]
    assert store.list_calls(tool_name="no_such_tool") == []


def test_calls_logged_before_migration_7_stay_in_the_call_log(new_store: Callable[[], SqlStore]) -> None:
    instance = new_store()
    dialect = instance._dialect  # a store of the previous release: the tool calls in audit_logs
    older = [migration for migration in load_migrations() if migration.version <= 6]
    assert [migration.version for migration in older] == [1, 2, 3, 4, 5, 6]
    # that release's columns: call_id came with migration 8
    kept_columns = [index for index, (column, _) in enumerate(_CALL_LOG.insert_kinds) if column != "call_id"]
    columns = [_CALL_LOG.insert_kinds[index][0] for index in kept_columns]
    insert = (
        f"INSERT INTO audit_logs ({quoted_columns(columns)}) "
        f"VALUES ({', '.join([dialect.placeholder] * len(columns))})"
    )
    earlier = [make_call("check_tag_compliance", T0), make_call("suggest_tags", T0 + timedelta(seconds=1))]
    with dialect.connection() as conn, dialect.transaction(conn):
        cursor = conn.cursor()
        cursor.execute(render_ddl(_SCHEMA_MIGRATIONS_DDL, dialect.ddl_types))
        for migration in older:
            for statement in migration.statements(dialect.ddl_types):
                cursor.execute(statement)
            cursor.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                f"VALUES ({', '.join([dialect.placeholder] * 3)})",
                (migration.version, migration.name, dialect.encode_datetime(T0)),
            )
        for record in earlier:
            encoded = instance._encode(_CALL_LOG, record)
            cursor.execute(insert, tuple(encoded[index] for index in kept_columns))

    assert instance.migrate() == LATEST_SCHEMA_VERSION

    kept = instance.list_calls()
    assert [replace(call, id=None) for call in reversed(kept)] == earlier
    # New calls continue the old ids (the PostgreSQL sequence came along with the table).
    instance.record_call(make_call("find_untagged_resources", T0 + timedelta(seconds=2)))
    newest = instance.list_calls(limit=1)[0]
    assert newest.tool_name == "find_untagged_resources"
    assert newest.id is not None and newest.id > max(call.id or 0 for call in kept)
    with dialect.connection() as conn, pytest.raises(dialect.database_errors):
        instance._execute(conn, "SELECT COUNT(*) FROM audit_logs", ()).fetchone()


def test_a_call_log_row_is_written_once_per_call_id(store: Store) -> None:
    """Replaying the call-log spool after an outage writes a row that did reach the store again:
    the call_id makes the second write a no-op, while rows without one (older rows) never collide."""
    first = make_call("check_tag_compliance", T0, call_id="call-1")
    store.record_call(first)
    store.record_call(replace(first, duration_ms=9))  # the same call, replayed
    store.record_call(make_call("check_tag_compliance", T0 + timedelta(seconds=1), call_id="call-2"))
    store.record_call(make_call("get_tagging_policy", T0))
    store.record_call(make_call("get_tagging_policy", T0))

    logs = store.list_calls()
    assert sorted(str(log.call_id) for log in logs) == ["None", "None", "call-1", "call-2"]
    assert next(log for log in logs if log.call_id == "call-1").duration_ms == first.duration_ms


def test_concurrent_writes_from_eight_threads_all_land(store: Store) -> None:
    def write(worker: int) -> None:
        for n in range(3):
            snapshot_id = f"snap-w{worker}-{n}"
            store.save_snapshot(
                make_snapshot(snapshot_id, created_at=T0 + timedelta(minutes=n)), make_states(snapshot_id, 20)
            )
            for m in range(4):
                store.record_call(make_call(f"tool_{worker}", T0 + timedelta(seconds=m)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))

    snapshots = store.list_snapshots()
    assert len(snapshots) == 24
    assert all(len(list(store.iter_resource_states(s.snapshot_id))) == 20 for s in snapshots)
    assert len(store.list_calls(limit=1000)) == 8 * 3 * 4


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
    store = open_store(Settings(DATABASE_URL=postgres_url_for(database, password="hunter2-not-shown")))
    try:
        assert store.info().location == f"postgresql://postgres@127.0.0.1:5432/{database}"
    finally:
        store.close()


def test_database_pool_size_bounds_the_connections_one_process_opens() -> None:
    """DATABASE_POOL_SIZE is what the deployment's connection budget counts per process."""
    with fresh_postgres_database() as url:
        database = url.rsplit("/", 1)[1]
        store = open_store(Settings(DATABASE_URL=url, DATABASE_POOL_SIZE=2))
        try:
            assert store.info().details["pool_max_size"] == 2
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda _: [store.info() for _ in range(10)], range(8)))
            with psycopg.connect(postgres_url_for("postgres"), autocommit=True) as admin:
                (opened,) = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
            assert 1 <= opened <= 2
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


# --- scheduled audits -------------------------------------------------------------------------


def make_schedule(schedule_id: str, next_run: datetime = T0, **changes: Any) -> ScheduledAuditRecord:
    fields: dict[str, Any] = {
        "schedule_id": schedule_id,
        "schedule_type": "daily",
        "time": "09:00",
        "timezone": "America/New_York",
        "recipients": ["finops@example.com", "https://hooks.slack.com/services/T0001/B0001/secretXYZ"],
        "format": "both",
        "next_run": next_run,
        "status": "active",
        "created_by": "alice@example.com",
        "created_at": T0 - timedelta(days=1),
        "updated_at": T0 - timedelta(days=1),
        "resource_types": ["ec2:instance", "rds:db"],
        "regions": ["us-east-1"],
    }
    fields.update(changes)
    return ScheduledAuditRecord(**fields)


def test_scheduled_audit_round_trips_every_field(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    daily = make_schedule("audit-sched-00000001", next_run=T0.astimezone(berlin))
    cron = make_schedule(
        "audit-sched-00000002",
        schedule_type="cron",
        time=None,
        cron_expression="*/30 9-17 * * MON-FRI",
        timezone="Europe/Berlin",
        recipients=["https://hooks.slack.com/services/T0001/B0001/secretXYZ"],
        format="slack",
        resource_types=[],
        regions=[],
        created_at=T0,
        updated_at=T0,
    )
    full = make_schedule(
        "audit-sched-00000003",
        schedule_type="monthly",
        time="23:59",
        day_of_month=31,
        last_run=T0 - timedelta(hours=1),
        last_run_status="error",
        last_snapshot_id="snap-1",
        last_error="AccessDenied: résumé",
        external_id="arn:aws:scheduler:us-east-1:123456789012:schedule/tag-audits/audit-sched-00000003",
        created_at=T0 + timedelta(seconds=1),
        updated_at=T0 + timedelta(seconds=1),
    )
    weekly = make_schedule("audit-sched-00000004", schedule_type="weekly", day_of_week="sunday", time="00:00")

    for record in (daily, cron, full, weekly):
        assert store.create_scheduled_audit(record) == record  # revision 0

    assert store.get_scheduled_audit(daily.schedule_id) == daily
    loaded = store.get_scheduled_audit(daily.schedule_id)
    assert loaded is not None and loaded.next_run.utcoffset() == timedelta(0)
    assert store.get_scheduled_audit(cron.schedule_id) == cron
    assert store.get_scheduled_audit(full.schedule_id) == full
    assert store.get_scheduled_audit(weekly.schedule_id) == weekly
    assert store.get_scheduled_audit("audit-sched-unknown") is None


def test_duplicate_or_invalid_scheduled_audit_is_refused(store: Store) -> None:
    store.create_scheduled_audit(make_schedule("audit-sched-dup"))

    with pytest.raises(StoreError, match="audit-sched-dup"):
        store.create_scheduled_audit(make_schedule("audit-sched-dup", format="email"))
    with pytest.raises(StoreError, match="audit-sched-bad"):
        store.create_scheduled_audit(make_schedule("audit-sched-bad", status="sleeping"))  # CHECK constraint
    with pytest.raises(InvalidInputError, match="HH:MM"):
        store.create_scheduled_audit(make_schedule("audit-sched-bad", time="9am"))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.create_scheduled_audit(make_schedule("audit-sched-bad", next_run=datetime(2025, 3, 1, 9)))

    assert store.get_scheduled_audit("audit-sched-dup") == make_schedule("audit-sched-dup")
    assert [record.schedule_id for record in store.list_scheduled_audits()] == ["audit-sched-dup"]


def test_list_scheduled_audits_oldest_first_filtered_by_status(store: Store) -> None:
    records = [
        make_schedule(f"audit-sched-{n}", created_at=T0 + timedelta(minutes=n), status=status)
        for n, status in enumerate(["active", "paused", "deleted", "active"])
    ]
    for record in random.Random(4).sample(records, len(records)):
        store.create_scheduled_audit(record)

    assert store.list_scheduled_audits() == records
    assert store.list_scheduled_audits(status="active") == [records[0], records[3]]
    assert store.list_scheduled_audits(status="deleted") == [records[2]]
    assert store.list_scheduled_audits(status="unknown") == []


def test_update_scheduled_audit_replaces_the_record_at_the_revision_it_was_read(store: Store) -> None:
    created = store.create_scheduled_audit(make_schedule("audit-sched-upd"))
    changed = replace(
        created,
        schedule_type="cron",
        time=None,
        cron_expression="0 6 * * 1",
        recipients=["ops@example.com"],
        format="email",
        status="paused",
        external_id="arn:aws:scheduler:us-east-1:123456789012:schedule/g/audit-sched-upd",
        updated_at=T0 + timedelta(hours=2),
    )

    stored = store.update_scheduled_audit(changed)

    assert stored == replace(changed, revision=1)
    assert store.get_scheduled_audit("audit-sched-upd") == stored
    # A writer still holding revision 0 is refused and changes nothing.
    with pytest.raises(ConcurrentUpdateError, match="audit-sched-upd"):
        store.update_scheduled_audit(replace(created, format="slack"))
    assert store.get_scheduled_audit("audit-sched-upd") == stored
    # Unknown: a StoreError, but not a conflict (nothing to read again).
    with pytest.raises(StoreError, match="does not exist") as raised:
        store.update_scheduled_audit(make_schedule("audit-sched-missing"))
    assert not isinstance(raised.value, ConcurrentUpdateError)
    assert store.get_scheduled_audit("audit-sched-missing") is None


def test_due_scheduled_audits_are_active_and_due_most_overdue_first(store: Store) -> None:
    now = T0
    due_late = make_schedule("audit-sched-a", next_run=now - timedelta(hours=3))
    due_now = make_schedule("audit-sched-b", next_run=now)  # exactly now is due
    due_early = make_schedule("audit-sched-c", next_run=now - timedelta(microseconds=1))
    future = make_schedule("audit-sched-d", next_run=now + timedelta(microseconds=1))
    paused = make_schedule("audit-sched-e", next_run=now - timedelta(days=1), status="paused")
    deleted = make_schedule("audit-sched-f", next_run=now - timedelta(days=1), status="deleted")
    for record in (future, paused, due_now, deleted, due_early, due_late):
        store.create_scheduled_audit(record)

    assert store.due_scheduled_audits(now) == [due_late, due_early, due_now]
    # Any offset means the same instant.
    assert store.due_scheduled_audits(now.astimezone(timezone(timedelta(hours=-5)))) == [
        due_late,
        due_early,
        due_now,
    ]
    assert store.due_scheduled_audits(now, limit=1) == [due_late]
    assert store.due_scheduled_audits(now - timedelta(days=2)) == []
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.due_scheduled_audits(datetime(2025, 3, 1))


def test_claim_scheduled_run_is_a_compare_and_set_on_next_run(store: Store) -> None:
    store.create_scheduled_audit(make_schedule("audit-sched-claim", next_run=T0))
    store.create_scheduled_audit(make_schedule("audit-sched-paused", next_run=T0, status="paused"))
    later = T0 + timedelta(days=1)
    claimed_at = T0 + timedelta(seconds=5)

    assert store.claim_scheduled_run("audit-sched-claim", T0, later, claimed_at) is True
    record = store.get_scheduled_audit("audit-sched-claim")
    assert record is not None
    assert (record.next_run, record.last_run, record.last_run_status) == (later, claimed_at, "running")
    assert record.revision == 1
    # The same run again (a second replica that read the old next_run): refused.
    assert store.claim_scheduled_run("audit-sched-claim", T0, later, claimed_at) is False
    # An equal instant written with another offset is the same next_run.
    eastern = later.astimezone(timezone(timedelta(hours=-5)))
    assert store.claim_scheduled_run("audit-sched-claim", eastern, later + timedelta(days=1), later) is True
    assert store.claim_scheduled_run("audit-sched-paused", T0, later, claimed_at) is False
    assert store.claim_scheduled_run("audit-sched-unknown", T0, later, claimed_at) is False
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.claim_scheduled_run("audit-sched-claim", datetime(2025, 3, 1), later, claimed_at)


def test_concurrent_claims_from_eight_threads_have_exactly_one_winner(store: Store) -> None:
    for n in range(5):
        store.create_scheduled_audit(make_schedule(f"audit-sched-race{n}", next_run=T0))

    def claim_all(worker: int) -> list[str]:
        start.wait()
        return [
            f"audit-sched-race{n}"
            for n in range(5)
            if store.claim_scheduled_run(
                f"audit-sched-race{n}", T0, T0 + timedelta(days=1), T0 + timedelta(seconds=worker)
            )
        ]

    start = threading.Barrier(8)
    with ThreadPoolExecutor(8) as pool:
        wins = [schedule for won in pool.map(claim_all, range(8)) for schedule in won]

    assert sorted(wins) == [f"audit-sched-race{n}" for n in range(5)]  # each once, by one thread
    assert all(record.revision == 1 for record in store.list_scheduled_audits())


def test_record_scheduled_run_only_for_the_latest_claim(store: Store) -> None:
    store.create_scheduled_audit(make_schedule("audit-sched-run", next_run=T0))
    first_run = T0 + timedelta(seconds=1)
    second_run = T0 + timedelta(days=1, seconds=1)
    store.claim_scheduled_run("audit-sched-run", T0, T0 + timedelta(days=1), first_run)

    assert store.record_scheduled_run("audit-sched-run", first_run, "snap-1", None) is True
    record = store.get_scheduled_audit("audit-sched-run")
    assert record is not None
    assert (record.last_run_status, record.last_snapshot_id, record.last_error) == ("success", "snap-1", None)

    store.claim_scheduled_run("audit-sched-run", T0 + timedelta(days=1), T0 + timedelta(days=2), second_run)
    # The first run finishing late must not overwrite the second run's state.
    assert store.record_scheduled_run("audit-sched-run", first_run, "snap-late", None) is False
    assert (
        store.record_scheduled_run("audit-sched-run", second_run, None, "Throttling: rate exceeded") is True
    )
    record = store.get_scheduled_audit("audit-sched-run")
    assert record is not None
    assert (record.last_run, record.last_run_status, record.last_error) == (
        second_run,
        "error",
        "Throttling: rate exceeded",
    )
    assert record.last_snapshot_id is None
    assert store.record_scheduled_run("audit-sched-unknown", first_run, "snap-1", None) is False


def test_schedules_written_before_migration_2_survive_it(new_store: Callable[[], SqlStore]) -> None:
    instance = new_store()
    dialect = instance._dialect  # apply only migration 1, as a store of the previous release would have
    first = load_migrations()[0]
    assert first.version == 1

    def placeholders(count: int) -> str:
        return ", ".join([dialect.placeholder] * count)

    with dialect.connection() as conn, dialect.transaction(conn):
        cursor = conn.cursor()
        cursor.execute(render_ddl(_SCHEMA_MIGRATIONS_DDL, dialect.ddl_types))
        for statement in first.statements(dialect.ddl_types):
            cursor.execute(statement)
        cursor.execute(
            f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({placeholders(3)})",
            (1, first.name, dialect.encode_datetime(T0)),
        )
        cursor.execute(
            "INSERT INTO scheduled_audits (schedule_id, schedule_type, time, timezone, recipients, format, "
            f"next_run, status, created_by, created_at) VALUES ({placeholders(10)})",
            (
                "audit-sched-old",
                "daily",
                "07:15",
                "Europe/Berlin",
                dialect.encode_text_array(["a@example.com"]),
                "email",
                dialect.encode_datetime(T0),
                "active",
                "bob",
                dialect.encode_datetime(T0),
            ),
        )

    assert instance.migrate() == LATEST_SCHEMA_VERSION
    record = instance.get_scheduled_audit("audit-sched-old")
    assert record is not None
    assert (record.time, record.timezone, record.recipients, record.next_run) == (
        "07:15",
        "Europe/Berlin",
        ["a@example.com"],
        T0,
    )
    assert (record.resource_types, record.regions, record.revision, record.last_run) == ([], [], 0, None)
    assert instance.due_scheduled_audits(T0) == [record]


# --- OAuth authorization server storage (hashes only) -------------------------------------------


def _oauth_session(grant_id: str, access: str, refresh: str | None, **changes: Any) -> Any:
    from tagcompliance.store.oauth import OAuthSessionRecord

    fields: dict[str, Any] = {
        "grant_id": grant_id,
        "client_id": "client-1",
        "user_id": "alice@example.com",
        "access_token_hash": access,
        "refresh_token_hash": refresh,
        "scopes": ["tag:read", "admin"],
        "expires_at": T0 + timedelta(hours=1),
        "refresh_expires_at": T0 + timedelta(days=30),
        "resource": "https://mcp.example.com/mcp",
        "created_at": T0,
    }
    fields.update(changes)
    return OAuthSessionRecord(**fields)


def test_oauth_client_and_code_round_trip_and_a_code_is_used_once(store: Store) -> None:
    from tagcompliance.store.oauth import OAuthClientRecord, OAuthCodeRecord

    suffix = uuid_hex()
    client = OAuthClientRecord(f"c-{suffix}", "ab" * 32, {"redirect_uris": ["http://127.0.0.1/cb"]}, T0)
    store.save_oauth_client(client)
    assert store.get_oauth_client(client.client_id) == client
    assert store.get_oauth_client("nobody") is None
    with pytest.raises(StoreError):
        store.save_oauth_client(client)

    code = OAuthCodeRecord(
        code_hash=f"{suffix:0<64}",
        grant_id=f"g-{suffix}",
        client_id=client.client_id,
        user_id="alice@example.com",
        scopes=["tag:read"],
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        redirect_uri="http://127.0.0.1/cb",
        redirect_uri_provided_explicitly=True,
        resource=None,
        expires_at=T0 + timedelta(minutes=5),
        created_at=T0,
    )
    store.save_oauth_code(code)
    assert store.get_oauth_code(code.code_hash) == code
    assert not store.consume_oauth_code(code.code_hash, T0 + timedelta(minutes=6))  # expired
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda _: store.consume_oauth_code(code.code_hash, T0), range(8)))
    assert wins.count(True) == 1
    used = store.get_oauth_code(code.code_hash)
    assert used is not None and used.used_at == T0
    assert not store.consume_oauth_code("0" * 64, T0)


def test_oauth_sessions_rotate_once_and_revoke_by_grant(store: Store) -> None:
    grant = f"g-{uuid_hex()}"
    first = _oauth_session(grant, uuid_hex() * 2, uuid_hex() * 2)
    store.create_oauth_session(first)
    found = store.find_oauth_session(access_token_hash=first.access_token_hash)
    assert found is not None and found.id is not None
    assert replace(found, id=None) == first
    assert store.find_oauth_session(refresh_token_hash=first.refresh_token_hash) == found
    assert store.find_oauth_session(access_token_hash="f" * 64) is None
    with pytest.raises(InvalidInputError):
        store.find_oauth_session()

    later = T0 + timedelta(minutes=50)
    successors = [_oauth_session(grant, uuid_hex() * 2, uuid_hex() * 2, created_at=later) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda s: store.rotate_oauth_session(first.refresh_token_hash, s, later), successors)
        )
    assert results.count(True) == 1  # concurrent refreshes with one token: exactly one wins
    winner = successors[results.index(True)]
    rotated = store.find_oauth_session(refresh_token_hash=first.refresh_token_hash)
    assert rotated is not None and rotated.rotated_at == later
    for loser in (s for s, won in zip(successors, results, strict=True) if not won):
        assert store.find_oauth_session(access_token_hash=loser.access_token_hash) is None
    # a token of another grant cannot rotate this one
    other = _oauth_session(f"g-{uuid_hex()}", uuid_hex() * 2, uuid_hex() * 2)
    assert not store.rotate_oauth_session(winner.refresh_token_hash, other, later)

    assert store.revoke_oauth_grant(grant, later) == 2
    assert store.revoke_oauth_grant(grant, later) == 0
    revoked = store.find_oauth_session(access_token_hash=winner.access_token_hash)
    assert revoked is not None and revoked.revoked_at == later
    assert not store.rotate_oauth_session(winner.refresh_token_hash, other, later)


def test_expired_oauth_rows_are_deleted(store: Store) -> None:
    grant = f"g-{uuid_hex()}"
    live = _oauth_session(grant, uuid_hex() * 2, uuid_hex() * 2)
    dead = _oauth_session(grant, uuid_hex() * 2, None, refresh_expires_at=None)
    store.create_oauth_session(live)
    store.create_oauth_session(dead)
    assert store.delete_expired_oauth(T0 + timedelta(hours=2)) >= 1
    assert store.find_oauth_session(access_token_hash=dead.access_token_hash) is None
    assert store.find_oauth_session(access_token_hash=live.access_token_hash) is not None  # refreshable


def test_oauth_consents_match_exactly_expire_and_revoke_the_clients_tokens(store: Store) -> None:
    from tagcompliance.store.oauth import OAuthConsentRecord

    user, client, uri = f"u-{uuid_hex()}", f"c-{uuid_hex()}", "https://app.example.com/cb"
    read = OAuthConsentRecord(uuid_hex(), user, client, uri, ["tag:read"], T0, T0 + timedelta(days=30))
    store.save_oauth_consent(read)
    assert store.find_oauth_consent(user, client, uri, ["tag:read"], T0) == read
    # each element of the key counts: scopes (admin newly asked), redirect URI, client, user, expiry
    assert store.find_oauth_consent(user, client, uri, ["tag:read", "admin"], T0) is None
    assert store.find_oauth_consent(user, client, uri + "2", ["tag:read"], T0) is None
    assert store.find_oauth_consent(user, "other", uri, ["tag:read"], T0) is None
    assert store.find_oauth_consent("someone-else", client, uri, ["tag:read"], T0) is None
    assert store.find_oauth_consent(user, client, uri, ["tag:read"], T0 + timedelta(days=31)) is None

    # a new consent for the same client and redirect URI replaces the earlier one
    both = OAuthConsentRecord(
        uuid_hex(),
        user,
        client,
        uri,
        ["admin", "tag:read"],
        T0 + timedelta(seconds=1),
        T0 + timedelta(days=30),
    )
    store.save_oauth_consent(both)
    assert store.find_oauth_consent(user, client, uri, ["tag:read", "admin"], T0) == both
    assert store.list_oauth_consents(user, T0) == [both]

    session = _oauth_session(
        f"g-{uuid_hex()}", uuid_hex() * 2, uuid_hex() * 2, user_id=user, client_id=client
    )
    store.create_oauth_session(session)
    assert store.revoke_oauth_consent("someone-else", both.consent_id, T0) is None
    assert store.revoke_oauth_consent(user, both.consent_id, T0) == both
    assert store.list_oauth_consents(user, T0) == []
    revoked = store.find_oauth_session(access_token_hash=session.access_token_hash)
    assert revoked is not None and revoked.revoked_at == T0

    expiring = OAuthConsentRecord(uuid_hex(), user, client, uri, ["tag:read"], T0, T0 + timedelta(hours=1))
    store.save_oauth_consent(expiring)
    assert store.delete_expired_oauth(T0 + timedelta(hours=2)) >= 1
    assert store.list_oauth_consents(user, T0) == []


def test_oauth_clients_never_used_are_removed(store: Store) -> None:
    from tagcompliance.store.oauth import OAuthClientRecord

    used = OAuthClientRecord(f"c-{uuid_hex()}", None, {"redirect_uris": ["http://127.0.0.1/cb"]}, T0)
    unused = OAuthClientRecord(f"c-{uuid_hex()}", None, {"redirect_uris": ["http://127.0.0.1/cb"]}, T0)
    recent = OAuthClientRecord(
        f"c-{uuid_hex()}", None, {"redirect_uris": ["http://127.0.0.1/cb"]}, T0 + timedelta(hours=5)
    )
    for client in (used, unused, recent):
        store.save_oauth_client(client)
    store.mark_oauth_client_used(used.client_id, T0 + timedelta(minutes=1))
    store.mark_oauth_client_used(used.client_id, T0 + timedelta(minutes=2))  # the first use is kept
    found = store.get_oauth_client(used.client_id)
    assert found is not None and found.last_used_at == T0 + timedelta(minutes=1)
    assert store.delete_unused_oauth_clients(T0 + timedelta(hours=1)) >= 1
    assert store.get_oauth_client(unused.client_id) is None
    assert store.get_oauth_client(used.client_id) == found
    assert store.get_oauth_client(recent.client_id) == recent


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex


# --- agent safety (tagcompliance.safety) ------------------------------------------------------

from tagcompliance.store.base import BeliefRecord, ConfirmationRecord, RegretEventRecord  # noqa: E402


def _states_of(snapshot_id: str, counts: dict[tuple[str, str], int]) -> list[ResourceStateRecord]:
    return [
        ResourceStateRecord(
            snapshot_id=snapshot_id,
            resource_arn=f"arn:aws:{type_id.split(':')[0]}:{region}:123456789012:{type_id}/{n:06d}",
            resource_type=type_id,
            region=region,
            account_id="123456789012",
            tags={},
            compliant=False,
        )
        for (type_id, region), count in counts.items()
        for n in range(count)
    ]


def test_inventory_counts_use_the_newest_successful_read_of_each_pair(store: Store) -> None:
    # Older: both types in both regions. Newer: only us-east-1, and s3 there failed.
    old = make_snapshot("inv-old", T0, failed_shards=[])
    store.save_snapshot(
        old,
        _states_of(
            "inv-old",
            {
                ("ec2:instance", "us-east-1"): 3,
                ("ec2:instance", "eu-west-1"): 2,
                ("s3:bucket", "us-east-1"): 4,
            },
        ),
    )
    new = make_snapshot(
        "inv-new",
        T0 + timedelta(hours=1),
        regions=["us-east-1"],
        failed_shards=[{"region": "us-east-1", "resource_type": "s3:bucket", "error": "AccessDenied"}],
    )
    store.save_snapshot(new, _states_of("inv-new", {("ec2:instance", "us-east-1"): 5}))
    counts = {(c.resource_type, c.region): (c.resources, c.snapshot_id) for c in store.inventory_counts()}
    assert counts == {
        ("ec2:instance", "us-east-1"): (5, "inv-new"),
        ("ec2:instance", "eu-west-1"): (2, "inv-old"),
        ("s3:bucket", "us-east-1"): (4, "inv-old"),  # the newer read failed: the older one stands
        ("s3:bucket", "eu-west-1"): (0, "inv-old"),  # in scope, nothing found: a known zero
    }
    filtered = store.inventory_counts(["s3:bucket"], ["eu-west-1"])
    assert [(c.resource_type, c.region, c.resources) for c in filtered] == [("s3:bucket", "eu-west-1", 0)]
    assert filtered[0].taken_at == T0
    assert store.inventory_counts(["lambda:function"], None) == []  # never read: unknown, not zero


def test_inventory_counts_are_fast_at_100k_resources(store: Store) -> None:
    counts = {
        (type_id, region): 10_000
        for type_id in ("ec2:instance", "s3:bucket")
        for region in ("us-east-1", "eu-west-1", "us-west-2", "ap-south-1", "sa-east-1")
    }
    snapshot = make_snapshot("inv-big", regions=sorted({r for _, r in counts}), failed_shards=[])
    store.save_snapshot(snapshot, _states_of("inv-big", counts))
    started = time.monotonic()
    found = store.inventory_counts()
    elapsed = time.monotonic() - started
    assert sum(c.resources for c in found) == 100_000 and len(found) == 10
    assert elapsed < 2.0, f"inventory_counts took {elapsed:.2f}s over 100,000 resource states"


def test_confirmation_tokens_round_trip_and_are_consumed_once(store: Store) -> None:
    record = ConfirmationRecord(
        token_hash="ab" * 32,
        organization="acme",
        user_id="alice",
        client_id="claude",
        operation="check_tag_compliance",
        parameters={"regions": ["us-east-1"], "resource_types": ["ec2:instance"]},
        parameters_digest="cd" * 32,
        estimate={"resources": 42},
        created_at=T0,
        expires_at=T0 + timedelta(minutes=10),
        belief_id="b1",
    )
    store.save_confirmation(record)
    assert store.get_confirmation("ab" * 32) == record
    assert store.get_confirmation("ef" * 32) is None
    assert store.consume_confirmation("ab" * 32, T0 + timedelta(minutes=11)) is False  # expired
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(
            pool.map(lambda _: store.consume_confirmation("ab" * 32, T0 + timedelta(minutes=1)), range(8))
        )
    assert wins.count(True) == 1
    used = store.get_confirmation("ab" * 32)
    assert used is not None and used.used_at == T0 + timedelta(minutes=1)
    with pytest.raises(StoreError):
        store.save_confirmation(record)  # the same token twice


def test_beliefs_round_trip_filter_and_record_outcomes(store: Store) -> None:
    def belief(belief_id: str, minutes: int, **changes: Any) -> BeliefRecord:
        fields: dict[str, Any] = {
            "belief_id": belief_id,
            "created_at": T0 + timedelta(minutes=minutes),
            "organization": "acme",
            "user_id": "alice",
            "tool_name": "check_tag_compliance",
            "stage": "commit",
            "understood": {"regions": ["us-east-1"]},
            "assumptions": ["regions omitted: default"],
            "alternatives": [{"parameter": "regions", "options": []}],
            "estimate": {"resources": 42},
            "warnings": [{"rule_id": "region_coverage"}],
        }
        fields.update(changes)
        return BeliefRecord(**fields)

    first = belief("b1", 0, client_id="claude")
    store.record_belief(first)
    store.record_belief(belief("b2", 1, stage="clarification", user_id="bob"))
    store.record_belief(belief("b3", 2, organization="other"))
    assert store.list_beliefs("acme") == [belief("b2", 1, stage="clarification", user_id="bob"), first]
    assert [b.belief_id for b in store.list_beliefs("acme", stage="commit")] == ["b1"]
    assert [b.belief_id for b in store.list_beliefs(user_id="bob")] == ["b2"]
    assert [b.belief_id for b in store.list_beliefs(since=T0 + timedelta(minutes=2))] == ["b3"]
    assert [b.belief_id for b in store.list_beliefs(limit=1)] == ["b3"]
    outcome = {"total_resources": 0, "regions": ["us-east-1"]}
    assert store.update_belief_outcome("b1", outcome, False, "zero found", T0, stage="executed")
    updated = store.list_beliefs("acme", stage="executed")[0]
    assert (updated.outcome, updated.outcome_matched, updated.outcome_notes, updated.resolved_at) == (
        outcome,
        False,
        "zero found",
        T0,
    )
    assert store.update_belief_outcome("missing", outcome, None, None, T0) is False


def test_regret_events_resolve_once_and_count_corrections(store: Store) -> None:
    def event(rule_id: str, user_id: str = "alice", organization: str = "acme") -> RegretEventRecord:
        return RegretEventRecord(
            created_at=T0,
            organization=organization,
            user_id=user_id,
            tool_name="check_tag_compliance",
            rule_id=rule_id,
            parameter="regions",
            value=["eu-west-1"],
        )

    first = store.record_regret_event(event("region_coverage"))
    second = store.record_regret_event(event("excluded_types"))
    store.record_regret_event(event("region_coverage", user_id="bob"))
    store.record_regret_event(event("region_coverage", organization="other"))
    assert first.id is not None and second.id is not None and first.id != second.id
    assert store.open_regret_events("acme", "alice", "check_tag_compliance") == [first, second]
    assert store.resolve_regret_event(first.id, "corrected", T0) is True
    assert store.resolve_regret_event(first.id, "kept", T0) is False  # already resolved
    assert store.resolve_regret_event(second.id, "kept", T0) is True
    with pytest.raises(InvalidInputError):
        store.resolve_regret_event(second.id, "shown", T0)
    assert store.open_regret_events("acme", "alice", "check_tag_compliance") == []
    assert store.regret_correction_counts("acme") == {"region_coverage": 1}
    assert store.regret_correction_counts("nobody") == {}

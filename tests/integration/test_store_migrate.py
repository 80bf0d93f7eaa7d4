"""Copying an embedded SQLite store into PostgreSQL: ``python -m operations.store_migration``.

A SQLite store filled through the real Store API is copied into a fresh PostgreSQL database and
read back through the PostgreSQL store; the per-table checksums must match, a second run must be
refused, ``--force`` must replace the target's rows, a target changed after the copy must fail
verification, a failed copy must leave nothing behind, and bad arguments must give one clear line.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
import pytest

from operations.store_migration import transfer
from operations.store_migration.cli import EXIT_ERROR, EXIT_MISMATCH, EXIT_OK, main
from operations.store_migration.report import MigrationError, VerificationError
from operations.store_migration.transfer import migrate_sqlite_to_postgres, verify_copy
from operations.store_migration.values import column_kind, normalise, row_digest
from tagcompliance.store import (
    CallRecord,
    PostgresStore,
    ResourceStateRecord,
    ScheduledAuditRecord,
    SnapshotRecord,
    SqliteStore,
    Store,
)
from tagcompliance.store.sql import load_migrations
from tagcompliance.store.sqlite import SqliteDialect
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATES_PER_SNAPSHOT = 1200  # more than one COPY / fetch batch (1000), and the batch size 7 below
T0 = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)  # near a DST change, with microseconds
LATEST_VERSION = max(migration.version for migration in load_migrations())


# --- a populated source ----------------------------------------------------------------------


def _snapshot(snapshot_id: str, created_at: datetime, score: float | None) -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=snapshot_id,
        created_at=created_at,
        account_id="123456789012",
        regions=["us-east-1", "eu-west-1"],
        resource_types=["ec2:instance", "s3:bucket"],
        policy_digest="d" * 64,
        policy={"version": "1.0", "required_tags": [{"name": "Owner", "allowed_values": ["team-*"]}]},
        total_resources=STATES_PER_SNAPSHOT,
        scanned_resources=STATES_PER_SNAPSHOT,
        compliant_resources=STATES_PER_SNAPSHOT // 3,
        compliance_score=score,
        violation_count=7,
        counts_by_type={"ec2:instance": {"total": 3, "compliant": 1, "violations": 2}},
        counts_by_region={"us-east-1": {"total": 3, "compliant": 1, "violations": 2}},
        counts_by_violation={"missing_tag": 5, "invalid_value": 2},
        failed_shards=[
            {"region": "eu-west-1", "resource_type": "s3:bucket", "error": "Throttling \u2013 retry"}
        ],
        trigger="scheduled" if score is None else "manual",
        scheduled=score is None,
    )


def _states(snapshot_id: str) -> Iterator[ResourceStateRecord]:
    for index in range(STATES_PER_SNAPSHOT):
        yield ResourceStateRecord(
            snapshot_id=snapshot_id,
            resource_arn=f"arn:aws:ec2:us-east-1:123456789012:instance/i-{index:017x}",
            resource_type="ec2:instance",
            region="us-east-1",
            account_id="123456789012",
            tags={"Owner": f"team-{index % 5}", "Name": "caf\u00e9 \u2603", "Empty": ""} if index % 4 else {},
            compliant=index % 3 == 0,
            name=None if index % 2 else f"web-{index}",
            vpc_id="vpc-0abc" if index % 7 == 0 else None,
        )


def _schedule(schedule_id: str, **fields: Any) -> ScheduledAuditRecord:
    values: dict[str, Any] = {
        "schedule_id": schedule_id,
        "schedule_type": "daily",
        "time": "09:30",
        "timezone": "Europe/Berlin",
        "recipients": ["ops@example.com", "https://hooks.slack.com/services/T/B/x"],
        "format": "both",
        "next_run": T0 + timedelta(days=1),
        "status": "active",
        "created_by": "alice",
        "created_at": T0,
        "updated_at": T0,
        "resource_types": ["ec2:instance"],
        "regions": ["us-east-1"],
    }
    values.update(fields)
    return ScheduledAuditRecord(**values)


def _fill(store: Store) -> None:
    store.save_snapshot(_snapshot("snap-1", T0, 33.333333333333336), _states("snap-1"))
    store.save_snapshot(_snapshot("snap-2", T0 + timedelta(hours=6), None), _states("snap-2"))
    for index, (ip, status) in enumerate(
        [("10.0.0.1", "success"), ("2001:db8::1", "error"), (None, "success"), ("192.168.1.0/24", "success")]
    ):
        store.record_call(
            CallRecord(
                timestamp=T0 + timedelta(seconds=index),
                user_id=f"user-{index}",
                tool_name="check_tag_compliance",
                parameters={
                    "resource_types": ["ec2:instance"],
                    "limit": 10,
                    "ratio": 0.1,
                    "nested": {"b": 1, "a": None},
                },
                result_summary={"score": 1e20, "ok": True, "text": "\u00fcber"},
                duration_ms=120 + index,
                status=status,
                error_message="boom" if status == "error" else None,
                client_id="claude" if index % 2 else None,
                ip_address=ip,
                user_agent="pytest",
            )
        )
    store.create_scheduled_audit(_schedule("daily-ops"))
    store.create_scheduled_audit(
        _schedule("cron-fin", schedule_type="cron", time=None, cron_expression="0 6 * * 1-5", format="email")
    )
    weekly = store.create_scheduled_audit(_schedule("weekly", schedule_type="weekly", day_of_week="monday"))
    # A claimed, recorded and edited schedule: last_run, status, revision and snapshot id are set.
    assert store.claim_scheduled_run("weekly", weekly.next_run, weekly.next_run + timedelta(days=7), T0)
    assert store.record_scheduled_run("weekly", T0, "snap-1", None)
    current = store.get_scheduled_audit("weekly")
    assert current is not None
    store.update_scheduled_audit(replace(current, status="paused", updated_at=T0 + timedelta(minutes=5)))


def _source_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {row[0] for row in rows} - {"schema_migrations"}


_CHECK_LITERAL = re.compile(r"\(\(?(\w+)\)?(?:::\w+(?: \w+)?)? = ANY .*?'([^']*)'")


def _filler(kind: str, column: str, row: int, max_length: int | None, literal: str | None) -> Any:
    """A value for ``column`` in the SQLite dialect's encoding (row 1 leaves nullable ones NULL)."""
    match kind:
        case "json":
            return json.dumps({"row": row, "nested": [1.5, None, "caf\u00e9"], "b": True})
        case "timestamptz":
            return f"2026-01-0{row + 1}T12:00:00.{row:06d}+00:00"
        case "bool":
            return row % 2
        case "array":
            return json.dumps(["a", f"b{row}"])
        case "time":
            return f"0{row + 8}:30"
        case "inet":
            return f"10.0.0.{row + 1}"
        case "int":
            return row + 1
        case "number":
            return 1.25 + row
    text = literal if literal is not None else f"{column}-{row}-\u00e9"
    return text[:max_length] if max_length else text


def _parents_first(conn: sqlite3.Connection, tables: set[str]) -> list[str]:
    """Tables in name order, but each after the tables its foreign keys reference (filled first)."""
    order: list[str] = []
    pending = set(tables)
    while pending:
        ready = sorted(
            table
            for table in pending
            if not ({row[2] for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')} - {table})
            & pending
        )
        assert ready, f"foreign keys form a cycle among {sorted(pending)}"
        order += ready
        pending -= set(ready)
    return order


def _fill_tables_the_store_api_does_not_write(path: Path, catalog_url: str) -> None:
    """Two rows in every table still empty (tables of other features, or added by later migrations).

    Generic, so a table added by a new migration is filled without touching this test: each column
    gets a value of its PostgreSQL type (read from a database migrated by the same code), the first
    literal of a CHECK ... IN (...) constraint on it, or a value of the row its foreign key names.
    """
    with psycopg.connect(catalog_url) as catalog, sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for table in _parents_first(conn, _source_tables(path)):
            if conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]:
                continue
            columns = catalog.execute(
                "SELECT column_name, data_type, character_maximum_length, is_nullable = 'YES', "
                "COALESCE(column_default LIKE 'nextval(%%', FALSE) OR is_identity = 'YES' "
                "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            ).fetchall()
            assert columns, f"{table} is in the SQLite store but not in a PostgreSQL one at the same version"
            literals: dict[str, str] = {}
            for (definition,) in catalog.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
                (table,),
            ):
                if match := _CHECK_LITERAL.search(definition):
                    literals.setdefault(match.group(1), match.group(2))
            references = {
                row[3]: (row[2], row[4]) for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')
            }
            for row in range(2):
                values: dict[str, Any] = {}
                for name, data_type, max_length, nullable, generated in columns:
                    if generated:
                        continue
                    if name in references:
                        parent, key = references[name]
                        values[name] = conn.execute(f'SELECT "{key}" FROM "{parent}" LIMIT 1').fetchone()[0]
                    elif nullable and row == 1:
                        values[name] = None
                    else:
                        values[name] = _filler(
                            column_kind(data_type), name, row, max_length, literals.get(name)
                        )
                quoted = ", ".join(f'"{name}"' for name in values)
                conn.execute(
                    f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(values))})',
                    list(values.values()),
                )


@pytest.fixture
def source(tmp_path: Path, postgres_url: str) -> Path:
    path = tmp_path / "store" / "tagcompliance.db"
    store = SqliteStore(path)
    try:
        store.migrate()
        _fill(store)
    finally:
        store.close()
    catalog = PostgresStore(postgres_url)  # the session's database, migrated by this code
    try:
        catalog.migrate()
    finally:
        catalog.close()
    _fill_tables_the_store_api_does_not_write(path, postgres_url)
    return path


@pytest.fixture
def target() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def _read_all(store: Store) -> dict[str, Any]:
    snapshots = store.list_snapshots(limit=100)
    return {
        "snapshots": snapshots,
        "states": {s.snapshot_id: list(store.iter_resource_states(s.snapshot_id)) for s in snapshots},
        "calls": store.list_calls(limit=1000),
        "schedules": store.list_scheduled_audits(),
    }


def _read_sqlite(path: Path) -> dict[str, Any]:
    store = SqliteStore(path)
    try:
        return _read_all(store)
    finally:
        store.close()


def _pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


# --- the copy --------------------------------------------------------------------------------


def test_copy_reads_back_equal_through_the_postgres_store(source: Path, target: str) -> None:
    tables = _source_tables(source)
    report = migrate_sqlite_to_postgres(source, target, batch_size=7)

    assert report.ok and report.copied and not report.truncated
    assert report.schema_version == LATEST_VERSION
    # Every table of the source, whatever migrations exist today, was copied and verified.
    assert {table.table for table in report.tables} == tables
    by_table = {table.table: table for table in report.tables}
    assert by_table["resource_tag_state"].source_rows == 2 * STATES_PER_SNAPSHOT
    assert by_table["compliance_snapshots"].target_rows == 2
    assert by_table["call_log"].target_rows == 4
    assert by_table["scheduled_audits"].target_rows == 3
    assert all(table.source_checksum == table.target_checksum for table in report.tables)
    assert len({table.source_checksum for table in report.tables if table.source_rows}) == len(
        [table for table in report.tables if table.source_rows]
    )
    # Parents before children: the foreign key of resource_tag_state holds on PostgreSQL.
    order = [table.table for table in report.tables]
    assert order.index("compliance_snapshots") < order.index("resource_tag_state")

    expected = _read_sqlite(source)
    postgres = PostgresStore(target)
    try:
        assert postgres.info().schema_version == LATEST_VERSION
        assert _read_all(postgres) == expected
        # Sequences were moved past the copied ids: new rows do not collide.
        assert report.sequences["call_log.id"] == 5
        postgres.record_call(replace(expected["calls"][0], id=None, user_id="after-copy"))
        newest = postgres.list_calls(limit=1)[0]
        assert (newest.user_id, newest.id) == ("after-copy", 5)
        postgres.create_scheduled_audit(_schedule("after-copy"))
        ids = [row[0] for row in _pg_rows(target, "SELECT id FROM scheduled_audits ORDER BY id")]
        assert len(ids) == len(set(ids)) == 4
    finally:
        postgres.close()

    # An independent verification of the committed copy agrees (after the two inserts: no longer).
    again = verify_copy(source, target)
    assert {t.table for t in again.tables if not t.match} == {"call_log", "scheduled_audits"}


def test_every_source_table_holds_rows_so_the_copy_is_exercised(source: Path) -> None:
    with sqlite3.connect(source) as conn:
        empty = [
            name
            for name in sorted(_source_tables(source))
            if conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] == 0
        ]
    # A table added by a new migration lands here: fill it in _fill (or the raw helper) above.
    assert not empty, f"tables without rows in the test source: {empty}"


def test_second_run_is_refused_and_force_replaces_the_rows(
    source: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--source", str(source), "--target", target]) == EXIT_OK
    first = capsys.readouterr()
    assert "All " in first.out and "tables match" in first.out and "resource_tag_state" in first.out

    # Something written to the target after the copy, then a second run: refused, nothing changed.
    with psycopg.connect(target) as conn:
        conn.execute("DELETE FROM resource_tag_state WHERE resource_arn LIKE '%0001'")
        conn.execute("UPDATE scheduled_audits SET status = 'deleted' WHERE schedule_id = 'daily-ops'")
    before = _pg_rows(target, "SELECT COUNT(*) FROM resource_tag_state")
    assert main(["--source", f"sqlite:///{source}", "--target", target]) == EXIT_ERROR
    refused = capsys.readouterr()
    assert "already holds data in" in refused.err and "call_log (4 rows)" in refused.err
    assert "--force" in refused.err and "no row was written" in refused.err
    assert "Traceback" not in refused.err
    assert _pg_rows(target, "SELECT COUNT(*) FROM resource_tag_state") == before
    assert not verify_copy(source, target).ok

    assert main(["--source", str(source), "--target", target, "--force"]) == EXIT_OK
    forced = capsys.readouterr()
    assert "after emptying the target (--force)" in forced.out
    report = verify_copy(source, target)
    assert report.ok and not report.copied
    assert _pg_rows(target, "SELECT status FROM scheduled_audits WHERE schedule_id = 'daily-ops'") == [
        ("active",)
    ]


def test_verification_detects_a_changed_or_missing_row(
    source: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate_sqlite_to_postgres(source, target)
    assert verify_copy(source, target).ok

    with psycopg.connect(target) as conn:  # same row count, one value changed
        conn.execute(
            'UPDATE resource_tag_state SET tags = tags || \'{"Owner": "mallory"}\'::jsonb '
            "WHERE resource_arn = (SELECT MIN(resource_arn) FROM resource_tag_state WHERE tags ? 'Owner')"
        )
    changed = verify_copy(source, target)
    bad = {table.table: table for table in changed.tables if not table.match}
    assert set(bad) == {"resource_tag_state"}
    assert bad["resource_tag_state"].source_rows == bad["resource_tag_state"].target_rows
    assert bad["resource_tag_state"].source_checksum != bad["resource_tag_state"].target_checksum

    with psycopg.connect(target) as conn:  # a row gone
        conn.execute("DELETE FROM call_log WHERE id = 2")
    missing = verify_copy(source, target)
    counts = {
        table.table: (table.source_rows, table.target_rows) for table in missing.tables if not table.match
    }
    assert counts["call_log"] == (4, 3)

    assert main(["--source", str(source), "--target", target, "--verify-only"]) == EXIT_MISMATCH
    output = capsys.readouterr().out
    assert "MISMATCH in " in output and "call_log" in output and "resource_tag_state" in output


def test_checksum_is_independent_of_row_order_and_spelling() -> None:
    rows = [[1, "a"], [2, "b"], [3, "c"]]
    total = sum(row_digest(row) for row in rows) % 2**256
    assert total == sum(row_digest(row) for row in reversed(rows)) % 2**256
    # The same value as SQLite stores it and as psycopg returns it from PostgreSQL.
    assert normalise("timestamptz", "2026-03-29T02:59:59.123456+02:00") == normalise("timestamptz", T0)
    assert normalise("json", '{"b": 1.0, "a": [1e20]}') == normalise("json", {"a": [1e20], "b": 1.0})
    assert row_digest([normalise("json", '{"x": 100000000000000000000}')]) == row_digest(
        [normalise("json", '{"x": 1e20}')]
    )
    assert normalise("bool", 1) is normalise("bool", True) is True
    assert normalise("array", '["a", "b"]') == normalise("array", ["a", "b"])
    assert normalise("inet", "10.0.0.1") == normalise("inet", "10.0.0.1/32")
    assert normalise("time", "09:30") == "09:30:00"
    assert row_digest([normalise("json", '{"x": 1}')]) != row_digest([normalise("json", '{"x": "1"}')])


def test_a_failed_copy_leaves_nothing_behind(source: Path, target: str) -> None:
    # A bad value in the last table copied (after others were already written in the transaction).
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE scheduled_audits SET recipients = 'not json' WHERE schedule_id = 'weekly'")
    with pytest.raises(
        MigrationError, match=r"scheduled_audits\.recipients, source row \d+: 'not json' is not a"
    ):
        migrate_sqlite_to_postgres(source, target)
    for table in _source_tables(source):
        assert _pg_rows(target, f'SELECT COUNT(*) FROM "{table}"') == [(0,)], table


def test_a_mismatch_found_inside_the_copy_rolls_it_back(
    source: Path, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a lossy write: the value read back differs from the one read from the source.
    real = transfer.to_target

    def lossy(kind: Any, value: Any) -> Any:
        return "changed" if value == "check_tag_compliance" else real(kind, value)

    monkeypatch.setattr(transfer, "to_target", lossy)
    with pytest.raises(VerificationError, match="verification failed for call_log") as failure:
        migrate_sqlite_to_postgres(source, target)
    assert [table.table for table in failure.value.report.tables if not table.match] == ["call_log"]
    assert _pg_rows(target, "SELECT COUNT(*) FROM call_log") == [(0,)]
    assert _pg_rows(target, "SELECT COUNT(*) FROM resource_tag_state") == [(0,)]


# --- schema versions ---------------------------------------------------------------------------


def test_source_at_another_schema_version_is_refused(source: Path, target: str) -> None:
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', '2030-01-01T00:00:00+00:00')")
    with pytest.raises(
        MigrationError,
        match=rf"schema version 9999, newer than this tagcompliance \(version {LATEST_VERSION}\)",
    ):
        migrate_sqlite_to_postgres(source, target)

    with sqlite3.connect(source) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version >= ?", (LATEST_VERSION,))
    with pytest.raises(MigrationError, match=rf"expects {LATEST_VERSION}: pass --upgrade-source"):
        migrate_sqlite_to_postgres(source, target)
    assert _pg_rows(target, "SELECT to_regclass('call_log') IS NULL") == [(True,)]  # untouched


def test_target_at_a_newer_schema_version_is_refused(source: Path, target: str) -> None:
    with psycopg.connect(target) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TIMESTAMPTZ)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', NOW())")
    with pytest.raises(
        MigrationError,
        match=r"the target postgresql://postgres@127\.0\.0\.1:5432/\S+ is at schema version 9999",
    ):
        migrate_sqlite_to_postgres(source, target)


# --- bad arguments: one clear line, no traceback -----------------------------------------------


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "operations.store_migration", *args],
        cwd=ROOT,  # the command runs from a checkout of the repository
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"},
    )


def test_bad_arguments_give_a_clear_error_and_a_non_zero_exit(
    tmp_path: Path, source: Path, target: str
) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n" * 10)
    plain_sqlite = tmp_path / "other.db"
    with sqlite3.connect(plain_sqlite) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    cases = [
        (["--source", str(tmp_path / "missing.db"), "--target", target], "missing.db does not exist"),
        (["--source", str(tmp_path), "--target", target], "is not a file"),
        (["--source", str(text_file), "--target", target], "is not a SQLite database"),
        (["--source", str(plain_sqlite), "--target", target], "not a tagcompliance store"),
        (["--source", "sqlite://relative.db", "--target", target], "is not a SQLite URL"),
        (
            ["--source", str(source), "--target", "mysql://root@localhost/db"],
            "target must be a PostgreSQL URL",
        ),
        (
            ["--source", str(source), "--target", "postgresql://nobody:s3cret@127.0.0.1:1/db"],
            "could not connect to the target postgresql://nobody@127.0.0.1:1/db",
        ),
        (["--source", str(source), "--target", target, "--batch-size", "0"], "batch size must be at least 1"),
    ]
    for args, message in cases:
        completed = _run_cli(*args)
        assert completed.returncode == EXIT_ERROR, (args, completed.stderr)
        assert message in completed.stderr, (args, completed.stderr)
        assert "Traceback" not in completed.stderr and "s3cret" not in completed.stderr
        assert completed.stdout == ""
    usage = _run_cli("--source", str(source))
    assert usage.returncode == 2 and "--target" in usage.stderr and "Traceback" not in usage.stderr
    both = _run_cli("--source", str(source), "--target", target, "--verify-only", "--force")
    assert both.returncode == 2 and "cannot be combined" in both.stderr
    # None of them created the missing source or wrote to the target.
    assert not (tmp_path / "missing.db").exists()
    assert _pg_rows(target, "SELECT to_regclass('call_log') IS NULL") == [(True,)]


def test_upgrade_source_migrates_an_older_store_first(tmp_path: Path, target: str) -> None:
    """A store written by an older release: migrations up to 6, so its tool calls are still in
    audit_logs (migration 7 renamed it) and every later migration is applied by the upgrade."""
    older = [migration for migration in load_migrations() if migration.version <= 6]
    assert [migration.version for migration in older] == [1, 2, 3, 4, 5, 6]
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for migration in older:
            for statement in migration.statements(SqliteDialect.ddl_types):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, "2026-01-01T00:00:00.000000+00:00"),
            )
        conn.execute(
            # the previous release logged tool calls in audit_logs; migration 7 renames it to call_log
            "INSERT INTO audit_logs (timestamp, user_id, tool_name, parameters, result_summary, duration_ms, status) "
            "VALUES ('2026-01-01T00:00:00.000000+00:00', 'bob', 'list_tags', '{}', '{}', 5, 'success')"
        )
    with pytest.raises(MigrationError, match=rf"version {older[-1].version}, this tagcompliance expects"):
        migrate_sqlite_to_postgres(path, target)

    report = migrate_sqlite_to_postgres(path, target, upgrade_source=True)
    assert report.ok and report.schema_version == LATEST_VERSION
    assert {table.table for table in report.tables} == _source_tables(path)
    assert {table.table: table.target_rows for table in report.tables}["call_log"] == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION


def test_memory_stays_flat_as_the_store_grows(tmp_path: Path) -> None:
    """Ten times the rows, about the same peak: rows are streamed, never all held at once."""

    def peak_for(count: int) -> int:
        path = tmp_path / f"{count}.db"
        store = SqliteStore(path)
        try:
            store.migrate()
            states = (
                replace(state, resource_arn=f"{state.resource_arn}-{index}", tags={"Owner": f"team-{index}"})
                for index in range(count)
                for state in islice(_states("big"), 1)
            )
            store.save_snapshot(_snapshot("big", T0, 50.0), states)
        finally:
            store.close()
        with fresh_postgres_database() as url:
            tracemalloc.start()
            try:
                report = migrate_sqlite_to_postgres(path, url)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert report.ok and {t.table: t.target_rows for t in report.tables}["resource_tag_state"] == count
        return peak

    small, large = peak_for(2_000), peak_for(20_000)
    assert large < 2 * small + 1_000_000, (small, large)

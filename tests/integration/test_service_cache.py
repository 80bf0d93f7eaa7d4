"""The service's in-memory cache of evaluated snapshots gives exactly a fresh evaluation's answers.

A cached check is a lookup (snapshot id + policy digest -> the evaluated observation), so these
tests pin what it must never change: the same violations, counts and pages as evaluating the
stored snapshot from scratch with the reference loop, the same answer from a process that loads
the snapshot from the store, the streamed export equal to the materialised one, and a policy
change that yields a new evaluation rather than the remembered one.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.demo.aws import DemoAws
from tagcompliance.aws import AwsClients
from tagcompliance.cache import MemoryCache, ObjectLRU
from tagcompliance.compliance import compile_policy
from tagcompliance.export import export_violations
from tagcompliance.policy import parse_policy
from tagcompliance.reports import report_summary, write_markdown
from tagcompliance.service import ComplianceService
from tagcompliance.snapshots import resource_from_state
from tagcompliance.store import open_store
from tests.compliance_reference import evaluate_reference
from tests.e2e.helpers import gateway_settings

TYPES = ["ec2:instance", "s3:bucket", "lambda:function", "rds:db", "dynamodb:table"]


@pytest.fixture(scope="module")
def aws(demo_aws: DemoAws) -> Iterator[DemoAws]:
    patch = pytest.MonkeyPatch()
    for name, value in demo_aws.environment.items():
        patch.setenv(name, value)
    for name in ("DATABASE_URL", "REDIS_URL", "POLICY_PATH", "SCAN_REGIONS", "DATA_DIR"):
        patch.delenv(name, raising=False)
    yield demo_aws
    patch.undo()


def make_service(aws: DemoAws, data_dir: Path, cache: MemoryCache, **overrides: str) -> ComplianceService:
    settings = gateway_settings(aws, data_dir, **overrides)
    return ComplianceService(settings, AwsClients(settings), open_store(settings), cache)


def reference_violations(service: ComplianceService, snapshot_id: str) -> list[tuple]:
    """The stored snapshot evaluated from scratch by the plain loop, under the snapshot's policy."""
    snapshot = service.store.get_snapshot(snapshot_id)
    assert snapshot is not None
    resources = [resource_from_state(state) for state in service.store.iter_resource_states(snapshot_id)]
    policy = parse_policy(snapshot.policy, "snapshot")
    result = evaluate_reference(resources, compile_policy(policy, snapshot.resource_types))
    return result.violations


def all_pages(service: ComplianceService, regions: list[str], **arguments: object) -> tuple[list, list]:
    answers = [service.check_compliance(TYPES, regions, page_size=7, **arguments)]  # type: ignore[arg-type]
    while answers[-1].next_cursor:
        answers.append(service.check_compliance(cursor=answers[-1].next_cursor))
    keyed = [
        (v.resource_arn, v.violation_type, v.tag_key, v.current_value) for a in answers for v in a.violations
    ]
    return answers, keyed


def test_cached_answers_equal_a_fresh_evaluation(aws: DemoAws, tmp_path: Path) -> None:
    cache = MemoryCache()
    regions = list(aws.regions)
    service = make_service(aws, tmp_path, cache)
    first = service.check_compliance(TYPES, regions, page_size=7)
    assert not first.cached and first.violation_count > 7  # several pages below
    again, again_keyed = all_pages(service, regions)
    assert all(answer.cached for answer in again) and again[0].snapshot_id == first.snapshot_id
    expected = reference_violations(service, first.snapshot_id)
    assert again_keyed == [(v.resource_arn, v.violation_type, v.tag_key, v.current_value) for v in expected]
    assert again[0].violation_count == len(expected)
    assert again[0].model_dump(exclude={"cached"}) == first.model_dump(exclude={"cached"})
    # Another process (same store and cache, nothing in its memory) loads the snapshot and agrees.
    other = make_service(aws, tmp_path, cache)
    loaded, loaded_keyed = all_pages(other, regions)
    assert loaded_keyed == again_keyed
    assert [a.model_dump() for a in loaded] == [a.model_dump() for a in again]
    warnings = service.check_compliance(TYPES, regions, severity="warnings_only", page_size=1000)
    errors = service.check_compliance(TYPES, regions, severity="errors_only", page_size=1000)
    assert warnings.violation_count == len([v for v in expected if v.severity == "warning"])
    assert [v.tag_key for v in errors.violations] == [v.tag_key for v in expected if v.severity == "error"]


def test_a_policy_change_is_a_new_evaluation(aws: DemoAws, tmp_path: Path) -> None:
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps({"required_tags": [{"name": "Owner"}]}), encoding="utf-8")
    service = make_service(aws, tmp_path, MemoryCache(), POLICY_PATH=str(policy_path))
    regions = list(aws.regions)
    before = service.check_compliance(TYPES, regions, page_size=1000)
    assert service.check_compliance(TYPES, regions).cached
    assert {v.tag_key for v in before.violations} <= {"Owner"}
    policy_path.write_text(json.dumps({"required_tags": [{"name": "CostCenter"}]}), encoding="utf-8")
    stat = policy_path.stat()
    os.utime(policy_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = service.check_compliance(TYPES, regions, page_size=1000)
    assert not after.cached and after.snapshot_id != before.snapshot_id
    assert {v.tag_key for v in after.violations} == {"CostCenter"}
    expected = reference_violations(service, after.snapshot_id)
    assert [(v.resource_arn, v.tag_key) for v in after.violations] == [
        (v.resource_arn, v.tag_key) for v in expected
    ]
    # The earlier snapshot still answers its own cursor under its own policy.
    assert {v.tag_key for v in reference_violations(service, before.snapshot_id)} <= {"Owner"}


def test_streamed_exports_equal_the_materialised_export(aws: DemoAws, tmp_path: Path) -> None:
    service = make_service(aws, tmp_path, MemoryCache())
    regions = list(aws.regions)
    exported = service.export_violations(TYPES, regions, to_file=True)
    assert exported.file_path is not None
    streamed = Path(exported.file_path).read_bytes().decode("utf-8")  # CRLF kept
    snapshot = service.store.get_snapshot(exported.snapshot_id)
    assert snapshot is not None
    expected = io.StringIO()
    export_violations(
        reference_violations(service, exported.snapshot_id),
        out=expected,
        policy=parse_policy(snapshot.policy, "snapshot"),
        account_id=snapshot.account_id,
    )
    assert streamed == expected.getvalue() and exported.row_count > 0
    page = service.export_violations(TYPES, regions, limit=5)
    pieces = [page.data or ""]
    while page.next_cursor:
        page = service.export_violations(cursor=page.next_cursor, limit=5)
        pieces.append((page.data or "").split("\r\n", 1)[1])  # later pages repeat the header
    assert "".join(pieces) == expected.getvalue()


def test_the_object_cache_is_bounded_by_count_and_weight() -> None:
    lru: ObjectLRU[str, int] = ObjectLRU(max_entries=2, max_weight=10)
    lru.put("a", 1, 4)
    lru.put("b", 2, 4)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3, 4)  # over the weight: b, the least recent, goes
    assert (lru.get("b"), lru.get("a"), lru.get("c"), lru.weight) == (None, 1, 3, 8)
    lru.put("d", 4, 1)  # over the count: a goes
    assert (lru.get("a"), len(lru)) == (None, 2)
    assert not lru.put("huge", 5, 11) and lru.get("huge") is None


def test_streamed_reports_equal_reports_built_from_the_materialised_list(
    aws: DemoAws, tmp_path: Path
) -> None:
    service = make_service(aws, tmp_path, MemoryCache())
    regions = list(aws.regions)
    csv_report = service.compliance_report("csv", TYPES, regions)
    expected_violations = reference_violations(service, csv_report.snapshot_id)
    expected_csv = io.StringIO()
    export_violations(expected_violations, out=expected_csv)
    assert not csv_report.truncated and csv_report.content == expected_csv.getvalue()
    # Inline or not, the whole report is a file too (an MCP client reads it as a resource).
    assert csv_report.file_path is not None
    assert Path(csv_report.file_path).read_bytes().decode("utf-8") == expected_csv.getvalue()  # CRLF kept
    markdown = service.compliance_report("markdown", TYPES, regions)
    snapshot = service.store.get_snapshot(markdown.snapshot_id)
    assert snapshot is not None
    expected_markdown = io.StringIO()
    write_markdown(report_summary(snapshot, expected_violations), expected_violations, expected_markdown)
    assert markdown.summary == report_summary(snapshot, expected_violations)
    if not markdown.truncated:
        assert markdown.content == expected_markdown.getvalue()
    else:  # too long to inline: the file holds it all, the answer a preview
        written = Path(markdown.file_path).read_bytes().decode("utf-8")
        assert written == expected_markdown.getvalue()
        assert expected_markdown.getvalue().startswith(markdown.content) and markdown.truncated
    assert not list((tmp_path / "reports").glob("*.part"))

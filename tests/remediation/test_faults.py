"""Remediation under faults and races, against a moto server process through the official client:
one region refusing writes, a crash between journal and write, a concurrent edit before undo, a dry
run (zero write requests, counted at the server), and a change set that differs from the token's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client

from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.requests import ApplyRemediationRequest, TagChange
from tagcompliance.resilience import CallBudget, budget_scope
from tagcompliance.safety.tokens import Caller
from tagcompliance.tagging.service import TagRemediation
from tests.conftest import fresh_postgres_database
from tests.e2e.helpers import call, call_error

from .conftest import CREDENTIALS, REPO_ROOT, FaultyAwsProcess, settings_for
from .estate import seed, tags_now

pytestmark = pytest.mark.anyio

GOOD = {"CostCenter": "CC-2001", "Owner": "ops@example.com"}
WRITE_OPERATIONS = ("TagResources", "UntagResources", "PutBucketTagging", "DeleteBucketTagging", "CreateTags")


def writes(aws: FaultyAwsProcess) -> dict[str, int]:
    return {name: n for name, n in aws.requests().items() if any(op in name for op in WRITE_OPERATIONS)}


async def test_one_region_refusing_fails_its_resources_and_applies_the_rest(
    aws: FaultyAwsProcess, client: Client
) -> None:
    arns = seed(aws)
    names = ["instance", "table", "instance-west", "table-west", "bucket"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    changes = [{"resource_arn": arns[name], "set_tags": GOOD} for name in names]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    aws.deny_writes("eu-west-1")
    result = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    outcome = {r["resource_arn"]: r for r in result["resources"]}
    assert result["applied"] == 3 and result["failed"] == 2
    for name in ("instance-west", "table-west"):
        assert outcome[arns[name]]["status"] == "failed"
        assert "AccessDenied" in outcome[arns[name]]["error"] and "eu-west-1" in outcome[arns[name]]["error"]
        assert tags_now(aws, arns[name]) == before[name]
    for name in ("instance", "table", "bucket"):
        assert outcome[arns[name]]["status"] == "applied"
        assert tags_now(aws, arns[name]) == {**before[name], **GOOD}
    # undo touches only what was applied
    aws.deny_writes()
    undo = await call(client, "undo_tag_remediation", remediation_id=result["remediation_id"])
    assert undo["intent_commit"]["details"]["resources"] == 3
    done = await call(
        client,
        "undo_tag_remediation",
        remediation_id=result["remediation_id"],
        confirmation_token=undo["confirmation_token"],
    )
    assert done["applied"] == 3
    assert {name: tags_now(aws, arns[name]) for name in names} == before


async def test_dry_run_makes_zero_write_requests(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    changes = [{"resource_arn": arns[n], "set_tags": GOOD} for n in ("instance", "bucket", "table-west")]
    aws.reset_counts()
    answer = await call(client, "apply_tag_remediation", changes=changes, dry_run=True)
    assert answer["safety"] == "dry_run" and answer["confirmation_token"] is None
    assert answer["intent_commit"]["details"]["to_write"] == 3
    reads = aws.requests()
    assert any("GetResources" in name for name in reads), reads  # it did read the tags
    assert writes(aws) == {}


async def test_token_refuses_a_changed_change_set(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    changes = [{"resource_arn": arns["instance"], "set_tags": GOOD}]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    token = commit["confirmation_token"]
    # Another value than committed: refused.
    other = [{"resource_arn": arns["instance"], "set_tags": {**GOOD, "CostCenter": "CC-1001"}}]
    message = await call_error(client, "apply_tag_remediation", changes=other, confirmation_token=token)
    assert "differ from the intent commit" in message and "changes" in message
    # The same arguments, but the resource's tags changed since the commit: the diff differs, refused.
    commit = await call(client, "apply_tag_remediation", changes=changes)
    aws.client("ec2").create_tags(
        Resources=[arns["instance"].rsplit("/", 1)[1]], Tags=[{"Key": "Owner", "Value": "x@example.com"}]
    )
    aws.reset_counts()
    message = await call_error(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    assert "change_set_digest" in message
    assert writes(aws) == {}


async def test_concurrent_edit_is_detected_at_undo(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    names = ["instance", "bucket", "table"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    changes = [{"resource_arn": arns[name], "set_tags": GOOD} for name in names]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    applied = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    # Someone edits the bucket's tags after the remediation.
    edited = {**tags_now(aws, arns["bucket"]), "Owner": "someone@example.com"}
    aws.client("s3").put_bucket_tagging(
        Bucket=arns["bucket"].rsplit(":", 1)[1],
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in edited.items()]},
    )
    rid = applied["remediation_id"]
    commit = await call(client, "undo_tag_remediation", remediation_id=rid)
    diffs = {d["resource_arn"]: d for d in commit["intent_commit"]["details"]["diffs"]}
    assert "tags changed since the remediation (Owner)" in diffs[arns["bucket"]]["note"]
    undone = await call(
        client, "undo_tag_remediation", remediation_id=rid, confirmation_token=commit["confirmation_token"]
    )
    outcome = {r["resource_arn"]: r for r in undone["resources"]}
    assert outcome[arns["bucket"]]["status"] == "skipped" and undone["skipped"] == 1
    assert tags_now(aws, arns["bucket"]) == edited
    assert (
        tags_now(aws, arns["instance"]) == before["instance"]
        and tags_now(aws, arns["table"]) == before["table"]
    )


async def test_force_restores_an_edited_resource(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    before = tags_now(aws, arns["table"])
    changes = [{"resource_arn": arns["table"], "set_tags": GOOD}]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    applied = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    aws.client("dynamodb").tag_resource(ResourceArn=arns["table"], Tags=[{"Key": "Extra", "Value": "1"}])
    rid = applied["remediation_id"]
    commit = await call(client, "undo_tag_remediation", remediation_id=rid, force=True)
    assert any("force restores it" in r for r in commit["intent_commit"]["details"]["regrets"])
    await call(
        client,
        "undo_tag_remediation",
        remediation_id=rid,
        force=True,
        confirmation_token=commit["confirmation_token"],
    )
    assert tags_now(aws, arns["table"]) == before


async def test_crash_between_journal_and_write_is_recovered(
    aws: FaultyAwsProcess, runtime: Runtime, client: Client
) -> None:
    arns = seed(aws)
    names = ["instance", "table", "instance-west", "table-west"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    changes = [{"resource_arn": arns[name], "set_tags": GOOD} for name in names]
    env = {**os.environ, **CREDENTIALS}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.remediation.crashing_apply",
            aws.endpoint_url,
            str(Path(runtime.settings.data_dir)),
            json.dumps(changes),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("written rem_"), child.stderr.read() if child.stderr else line
    rid = line.split()[1]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # The first request (one region) reached AWS, its outcome was never journaled; the other region's
    # request was never sent. The journal says so: everything is still pending.
    record = runtime.store.get_remediation(rid)
    assert record is not None and record.status == "running"
    items = {item.resource_arn: item for item in runtime.store.list_remediation_items(rid)}
    assert {item.status for item in items.values()} == {"pending"}
    written = [n for n in names if tags_now(aws, arns[n]) == {**before[n], **GOOD}]
    assert written and len(written) < len(names)

    commit = await call(client, "undo_tag_remediation", remediation_id=rid)
    recovered = {item.resource_arn: item for item in runtime.store.list_remediation_items(rid)}
    for name in names:
        expected = "applied" if name in written else "failed"
        assert recovered[arns[name]].status == expected, name
    assert runtime.store.get_remediation(rid).status == "interrupted"  # type: ignore[union-attr]
    assert commit["intent_commit"]["details"]["to_write"] == len(written)
    done = await call(
        client, "undo_tag_remediation", remediation_id=rid, confirmation_token=commit["confirmation_token"]
    )
    assert done["applied"] == len(written) and done["recovered"] is True
    assert {name: tags_now(aws, arns[name]) for name in names} == before


async def test_a_journal_that_cannot_be_stored_writes_nothing(aws: FaultyAwsProcess, tmp_path: Path) -> None:
    """The journal is the audit of every write: PostgreSQL refusing its rows (a real trigger raising)
    means no tag is written and the caller is told why."""
    arns = seed(aws)
    before = tags_now(aws, arns["instance"])
    with fresh_postgres_database() as url:
        runtime = build_runtime(settings_for(aws.endpoint_url, tmp_path, DATABASE_URL=url), "memory")
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "CREATE FUNCTION refuse_journal() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'journal volume is full'; END $$"
                )
                conn.execute(
                    "CREATE TRIGGER refuse_journal BEFORE INSERT ON tag_remediations "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_journal()"
                )
            async with Client(build_server(runtime)) as client:
                changes = [{"resource_arn": arns["instance"], "set_tags": GOOD}]
                commit = await call(client, "apply_tag_remediation", changes=changes)
                aws.reset_counts()
                message = await call_error(
                    client,
                    "apply_tag_remediation",
                    changes=changes,
                    confirmation_token=commit["confirmation_token"],
                )
            assert "journal" in message and "journal volume is full" in message, message
            assert writes(aws) == {}
            assert tags_now(aws, arns["instance"]) == before
            assert runtime.store.list_remediations() == []
        finally:
            runtime.close()


async def test_throttled_writes_are_retried_with_backoff(aws: FaultyAwsProcess, client: Client) -> None:
    arns = seed(aws)
    names = ["instance", "volume", "table"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    changes = [{"resource_arn": arns[name], "set_tags": GOOD} for name in names]
    commit = await call(client, "apply_tag_remediation", changes=changes)
    aws.reset_counts()
    aws.throttle_writes(3)  # the first three TagResources attempts are throttled
    result = await call(
        client, "apply_tag_remediation", changes=changes, confirmation_token=commit["confirmation_token"]
    )
    assert result["applied"] == 3 and result["failed"] == 0
    assert writes(aws) == {"tagging:TagResources@us-east-1": 4}  # 3 throttled + 1 for all three ARNs
    assert all(tags_now(aws, arns[name]) == {**before[name], **GOOD} for name in names)


def test_a_call_stopped_mid_run_fails_what_was_not_sent_and_closes_the_journal(
    aws: FaultyAwsProcess, runtime: Runtime
) -> None:
    """The call is cancelled (as a client's cancellation or shutdown does) once the first region's
    request is answered (regions are written in name order: eu-west-1 first): the other region's
    request is never sent, its resources fail with the reason, and the run ends completed with an
    exact journal."""
    arns = seed(aws)
    names = ["instance", "table", "instance-west", "table-west"]
    before = {name: tags_now(aws, arns[name]) for name in names}
    remediation = TagRemediation(runtime.service)
    changes = [TagChange(resource_arn=arns[name], set_tags=GOOD) for name in names]
    plan = remediation.plan_apply(ApplyRemediationRequest(changes=changes))
    budget = CallBudget.lasting(60)
    journal = runtime.store.record_item_outcomes

    def journal_then_cancel(remediation_id: str, outcomes: Any, at: Any) -> None:
        journal(remediation_id, outcomes, at)
        budget.cancel()

    runtime.store.record_item_outcomes = journal_then_cancel  # type: ignore[method-assign]
    aws.reset_counts()
    with budget_scope(budget):
        result = remediation.execute(plan, Caller(user_id="local:test"))
    runtime.store.record_item_outcomes = journal  # type: ignore[method-assign]
    outcome = {r.resource_arn: r for r in result.resources}
    assert result.status == "completed" and result.applied == 2 and result.failed == 2
    for name in ("instance", "table"):
        assert "stopped before the request was sent" in (outcome[arns[name]].error or "")
        assert tags_now(aws, arns[name]) == before[name]
    for name in ("instance-west", "table-west"):
        assert outcome[arns[name]].status == "applied"
        assert tags_now(aws, arns[name]) == {**before[name], **GOOD}
    assert writes(aws) == {"tagging:TagResources@eu-west-1": 1}
    stored = {
        item.resource_arn: item.status for item in runtime.store.list_remediation_items(result.remediation_id)
    }
    assert sorted(stored.values()) == ["applied", "applied", "failed", "failed"]

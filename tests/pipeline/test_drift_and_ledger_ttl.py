"""The drift step finds a tag changed between two runs; ledger items carry their DynamoDB TTL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from tagcompliance.audits import AuditRequest, AuditScope, InProcessRunner, snapshot_id_for
from tagcompliance.aws import AwsClients

from .conftest import LEDGER_REGION, policy_loader
from .ledger_tables import ledger_table

REGION = "us-west-2"


def test_a_tag_changed_between_two_runs_is_reported_as_drift(settings, store, pipeline_env):
    queue = next(
        r
        for r in pipeline_env.estate.select(["sqs:queue"])
        if r.region == REGION and r.tags and "Environment" in r.tags
    )
    old_value = queue.tags["Environment"]
    new_value = f"drift-{secrets.token_hex(2)}"
    sqs = pipeline_env.client("sqs", REGION)
    url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    with ledger_table(
        f"tagc-ttl-{secrets.token_hex(4)}", LEDGER_REGION, settings.aws_endpoint_url, ttl_days=3
    ) as ledger:
        clients = AwsClients(settings)
        runner = InProcessRunner(clients, store, ledger, policy_loader(settings), settings=settings)
        scope = AuditScope(account_id=clients.account_id, regions=[REGION], resource_types=["sqs:queue"])
        try:
            runner.run(AuditRequest(run_id="drift-before", scope=scope))
            sqs.tag_queue(QueueUrl=url, Tags={"Environment": new_value})
            runner.run(AuditRequest(run_id="drift-after", scope=scope))
            status = runner.status("drift-after")

            # Every ledger item expires ttl_days after its last write; the table has TTL switched on.
            expiry = ledger.expiry_of("drift-after")
            shard_expiry = ledger.expiry_of("drift-after", f"{clients.account_id}/{REGION}/sqs:queue")
            for value in (expiry, shard_expiry):
                assert value is not None
                assert abs(value - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=5)
            ttl = pipeline_env.client("dynamodb", LEDGER_REGION).describe_time_to_live(
                TableName=ledger.table_name
            )["TimeToLiveDescription"]
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
        finally:
            sqs.tag_queue(QueueUrl=url, Tags={"Environment": old_value})  # the estate as it was

    drift = status.drift
    assert drift is not None and drift["baseline_snapshot_id"] == snapshot_id_for("drift-before")
    assert drift["total_drifts"] == 1
    (change,) = drift["drifts"]
    assert change["resource_arn"].endswith(f":{queue.name}")
    assert (change["tag"], change["old_value"], change["new_value"]) == ("Environment", old_value, new_value)
    assert status.notifications == []  # no recipients for this run

"""The audit pipeline at organization scale: a plan of 10,000+ shards through the real ASL's
Distributed Map on moto (``tests/pipeline/scale.py``: the real plan / scan-batch / aggregate
handlers, the DynamoDB ledger, AssumeRole into every account).

Figures: shards, seconds, shards/s, the largest history of any one execution (target < 25,000
events, Step Functions' limit for a Standard execution) and the largest state payload (target
< 256 KB). moto enforces neither limit: both are measured from the histories.
"""

from __future__ import annotations

import tempfile
from typing import Any

from .common import POLICY_PATH, environment, figure

ACCOUNTS = 90
REGIONS = 7
REACHABLE = 1  # accounts really scanned; AssumeRole into the others is refused (fast failed shards)
PLAN_BUCKET_REGION = "ap-southeast-2"  # outside the scanned regions (tests/pipeline/scale.py REGIONS)
HISTORY_LIMIT = 25_000
PAYLOAD_LIMIT = 256 * 1024


def run(
    accounts: int = ACCOUNTS, regions: int = REGIONS, reachable: int = REACHABLE, demo: Any | None = None
) -> dict[str, Any]:
    """The run on ``demo`` (a running ``DemoAws``), or on a moto server of its own."""
    from services.demo.aws import start_demo_aws
    from tagcompliance.audits import MemoryLedger
    from tagcompliance.settings import Settings
    from tagcompliance.store import open_store
    from tests.pipeline.machine import create_plan_bucket, deployed_audit_machine
    from tests.pipeline.scale import run_at_scale

    own = demo is None
    demo = demo or start_demo_aws(seed=7)
    try:
        with environment(demo.environment), tempfile.TemporaryDirectory() as data_dir:
            bucket = create_plan_bucket(demo, PLAN_BUCKET_REGION)
            settings = Settings(
                AWS_ENDPOINT_URL=demo.endpoint_url,
                AWS_REGION=demo.regions[0],
                POLICY_PATH=str(POLICY_PATH),
                DATA_DIR=data_dir,
                AUDIT_PLAN_BUCKET=bucket,
                LOCAL_SCHEDULER_INTERVAL_SECONDS=0,
            )
            store = open_store(settings)
            try:
                # In-memory ledger: moto's DynamoDB re-sorts a whole partition per query page.
                with deployed_audit_machine(demo, bucket) as machine:
                    result = run_at_scale(
                        endpoint_url=demo.endpoint_url,
                        settings=settings,
                        store=store,
                        ledger=MemoryLedger(),
                        sfn_client=machine.client,
                        state_machine_arn=machine.arn,
                        accounts=accounts,
                        regions=regions,
                        reachable=reachable,
                        timeout=900,
                    )
            finally:
                store.close()
    finally:
        if own:
            demo.stop()
    accounted = result.ledger_ok + result.ledger_failed
    return {
        "name": "7. Audit pipeline at organization scale (Distributed Map)",
        "figures": [
            figure(
                "shards planned",
                result.shards,
                "shards",
                op=">=",
                target=10_000,
                reason="a smaller estate was asked for",
                to_close="run with the default size (90 accounts x 7 regions x 16 types)",
            ),
            figure(
                "shards accounted for (ok or failed, in the ledger and the aggregate)",
                accounted,
                "shards",
                op="==",
                target=result.shards,
                reason=f"{result.ledger_other} shards neither ok nor failed",
                to_close="find the child executions that ended without reporting (details)",
            ),
            figure(
                "execution",
                1 if result.execution_status == "SUCCEEDED" else 0,
                "succeeded",
                op="==",
                target=1,
                reason=f"the execution ended {result.execution_status}",
                to_close="read the execution's history for the failed state",
            ),
            figure("seconds", result.seconds, "s"),
            figure("throughput", round(result.shards_per_second, 1), "shards/s"),
            figure(
                "largest history of any one execution",
                result.largest_history_events,
                "events",
                op="<",
                target=HISTORY_LIMIT,
                reason="an execution would fail on AWS (Standard history limit)",
                to_close="smaller batches per child execution",
            ),
            figure(
                "largest state payload",
                result.largest_payload_bytes,
                "bytes",
                op="<",
                target=PAYLOAD_LIMIT,
                reason="a state would fail on AWS (States.DataLimitExceeded)",
                to_close="keep results in the ledger: find the state carrying them",
            ),
        ],
        "details": {
            "accounts": accounts,
            "regions": regions,
            "reachable_accounts": reachable,
            "child_executions": result.child_executions,
            "parent_history_events": result.parent_history_events,
            "largest_child_history_events": result.largest_child_history_events,
            "ledger_ok": result.ledger_ok,
            "ledger_failed": result.ledger_failed,
            "note": "moto costs about a second of CPU per really scanned account-region; the other "
            "accounts refuse AssumeRole so the run exercises the orchestration of every shard; the "
            "ledger is in memory (moto's DynamoDB takes minutes to query a 10,000-row run)",
        },
    }

"""Organization scale: a plan of more than 10,000 shards through the real ASL's Distributed Map.

90 accounts x 7 regions x 16 resource types (all but EC2's) = 10,080 shards in 630 child
executions, through AssumeRole: one account really scanned (112 shards, a few secrets), the others refusing
AssumeRole (their shards fail fast: see ``scale`` for why, on moto). The run must end SUCCEEDED with every shard in the
ledger as ok or failed and the aggregate agreeing, no execution's history reaching Step
Functions' 25,000 events, and no state payload reaching 256 KB. The ledger is the in-memory
one (the same contract as DynamoDB's): see ``scale`` for why.
"""

from __future__ import annotations

import pytest

from tagcompliance.audits import MemoryLedger

from .scale import TYPES, run_at_scale

pytestmark = pytest.mark.slow

ACCOUNTS = 90
REGIONS = 7
REACHABLE = 1
HISTORY_LIMIT = 25_000  # events of one Standard execution
PAYLOAD_LIMIT = 256 * 1024  # bytes of one state's input or output


def test_ten_thousand_shards_through_the_distributed_map(
    settings, store, state_machine, pipeline_env, capsys
):
    # The in-memory ledger: moto's DynamoDB takes minutes per query of a 10,000-row partition (scale).
    ledger = MemoryLedger()
    run = run_at_scale(
        endpoint_url=pipeline_env.endpoint_url,
        settings=settings,
        store=store,
        ledger=ledger,
        sfn_client=state_machine.client,
        state_machine_arn=state_machine.arn,
        accounts=ACCOUNTS,
        regions=REGIONS,
        reachable=REACHABLE,
        timeout=900,
    )
    with capsys.disabled():
        print(
            f"\n[scale] {run.shards} shards in {run.batches} child executions: {run.seconds} s "
            f"({run.shards_per_second:.0f} shards/s); largest history {run.largest_history_events} events "
            f"(parent {run.parent_history_events}); largest payload {run.largest_payload_bytes} bytes"
        )
    assert run.shards >= 10_000
    assert run.execution_status == "SUCCEEDED"
    # Every shard accounted for: the ledger holds each as ok or failed, the aggregate agrees.
    assert run.ledger_other == 0
    assert run.ledger_ok + run.ledger_failed == run.shards
    assert run.ledger_failed == run.expected_failed == run.outcome_failed_shards
    assert run.ledger_ok == REACHABLE * REGIONS * len(TYPES)
    assert run.outcome_resources == run.expected_resources > 0
    # One child execution per account-region (the batch size covers every type).
    assert run.child_executions == ACCOUNTS * REGIONS
    assert run.largest_history_events < HISTORY_LIMIT
    assert run.largest_payload_bytes < PAYLOAD_LIMIT
    assert run.execution_output_bytes < PAYLOAD_LIMIT

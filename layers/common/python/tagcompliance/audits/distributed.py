"""The Distributed Map side of the pipeline: the plan in S3, one account-region batch per child.

The state machine never carries the plan or the shard results: the plan step writes the plan's
batches to S3 (the Map's ``ItemReader`` reads them) and returns where they are; each child
execution scans one batch and writes its shard results to the ledger; the aggregate step reads
them from there. Whatever a child could not report (it timed out, it crashed, the Map gave up)
is recorded as a failed shard before the run is aggregated or failed, so every planned shard
ends in the ledger as ok or failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import zip_longest

from tagcompliance.aws import AwsClients
from tagcompliance.errors import TagComplianceError

from .ledger import Ledger
from .models import AuditPlan, BatchReport, PlannedRun, Shard, ShardBatch, ShardResult
from .pipeline import (
    DEFAULT_ROLE_NAME,
    ShardThrottledError,
    backoff_delay,
    failed_shard_result,
    scan_account_region,
)

PLAN_PREFIX = "plans/"
NO_RESULT = "no result recorded: the child execution scanning this shard ended without reporting it"


def plan_batches(shards: list[Shard], batch_size: int) -> list[ShardBatch]:
    """Group shards by (account, region), at most ``batch_size`` types a batch.

    Batches are interleaved across account-regions (every account-region's first batch, then
    every second one, ...): when an account-region needs several batches, they sit far apart in
    the plan, so the Map, which starts children in plan order, rarely runs two of them at once.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    groups: dict[tuple[str, str], list[str]] = {}
    for shard in shards:
        groups.setdefault((shard.account_id, shard.region), []).append(shard.resource_type)
    chunked = [
        [(account, region, types[start : start + batch_size]) for start in range(0, len(types), batch_size)]
        for (account, region), types in groups.items()
    ]
    batches: list[ShardBatch] = []
    for round_ in zip_longest(*chunked):
        for item in round_:
            if item is not None:
                account, region, types = item
                batches.append(
                    ShardBatch(
                        batch_id=f"b{len(batches):06d}",
                        account_id=account,
                        region=region,
                        resource_types=types,
                    )
                )
    return batches


def plan_key(run_id: str) -> str:
    return f"{PLAN_PREFIX}{run_id}.json"


def publish_plan(
    plan: AuditPlan,
    clients: AwsClients,
    bucket: str | None,
    batch_size: int,
    max_concurrency: int,
    tolerated_failure_percentage: float,
) -> PlannedRun:
    """Write the plan's batches to ``s3://bucket/plans/<run id>.json`` (a JSON array, what the
    Map's ``ItemReader`` reads) and return its location and counts."""
    if not bucket:
        raise TagComplianceError(
            "AUDIT_PLAN_BUCKET is not set: the state machine's Distributed Map reads the plan from S3"
        )
    batches = plan_batches(plan.shards, batch_size)
    body = json.dumps([batch.model_dump(mode="json") for batch in batches], separators=(",", ":"))
    key = plan_key(plan.run_id)
    clients.client("s3").put_object(
        Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json"
    )
    return PlannedRun(
        run_id=plan.run_id,
        correlation_id=plan.correlation_id,
        plan_bucket=bucket,
        plan_key=key,
        shard_count=len(plan.shards),
        batch_count=len(batches),
        max_concurrency=max_concurrency,
        tolerated_failure_percentage=tolerated_failure_percentage,
    )


def run_batch(
    run_id: str,
    batch: ShardBatch,
    clients: AwsClients,
    ledger: Ledger,
    *,
    role_name: str = DEFAULT_ROLE_NAME,
    concurrency: int = 4,
    attempts: int = 4,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchReport:
    """Scan one batch: at most ``concurrency`` calls at a time into its account-region, throttled
    shards retried (exponential backoff, full jitter) up to ``attempts`` scans, then recorded as
    failed. Shards the ledger holds as done are not scanned again (a retried child)."""
    shards = batch.shards
    done = ledger.batch_started(run_id, shards)
    pending = [shard for shard in shards if shard.shard_id not in done]
    results: list[ShardResult] = []
    for attempt in range(attempts):
        if not pending:
            break
        throttled: list[Shard] = []
        errors: dict[str, ShardThrottledError] = {}
        for shard, outcome in zip(
            pending, scan_account_region(run_id, pending, clients, role_name, concurrency), strict=True
        ):
            if isinstance(outcome, ShardThrottledError):
                throttled.append(shard)
                errors[shard.shard_id] = outcome
            else:
                results.append(outcome.model_copy(update={"attempts": attempt + 1}))
        pending = throttled
        if not pending:
            break
        if attempt + 1 == attempts:
            results.extend(
                failed_shard_result(
                    run_id, shard, f"ShardThrottledError: {errors[shard.shard_id]}"
                ).model_copy(update={"attempts": attempts})
                for shard in pending
            )
        else:
            sleep(backoff_delay(attempt, backoff_seconds))
    ledger.record_shards(results)
    return BatchReport(
        run_id=run_id,
        batch_id=batch.batch_id,
        ok=sum(1 for result in results if result.status == "ok"),
        failed=sum(1 for result in results if result.status == "failed"),
        already_done=len(done),
        resources=sum(result.resource_count for result in results),
    )


def record_batch_failure(run_id: str, batch: ShardBatch, error: str, ledger: Ledger) -> BatchReport:
    """A child execution failed for good: every shard of its batch not done is recorded failed."""
    failed = ledger.record_shards([failed_shard_result(run_id, shard, error) for shard in batch.shards])
    return BatchReport(
        run_id=run_id, batch_id=batch.batch_id, failed=failed, already_done=len(batch.shards) - failed
    )


def close_unfinished_shards(plan: AuditPlan, ledger: Ledger, error: str = NO_RESULT) -> int:
    """Record every planned shard that is neither ok nor failed as failed; return how many."""
    final = {row.shard_id for row in ledger.progress(plan.run_id) if row.status in ("ok", "failed")}
    missing = [shard for shard in plan.shards if shard.shard_id not in final]
    if missing:
        ledger.record_shards([failed_shard_result(plan.run_id, shard, error) for shard in missing])
    return len(missing)

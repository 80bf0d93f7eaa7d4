"""The shard ledger: one row per (run id, shard id), plus one row describing the run.

Rows are keyed by run and shard, so a retried or re-run shard overwrites its own row and never
counts twice; progress can be read while a run is under way. A shard's full result (resources
and tags) is kept zlib-compressed in its row so the aggregate step can read it without passing
it through Step Functions (whose state is limited to 256 KB). A DynamoDB item holds 400 KB, so a
single shard is limited to a few thousand resources; larger shards need an S3 payload store. The
run's row keeps its plan without the shards (they follow from the scope), so its size does not
grow with the organization. A Distributed Map batch reads and writes its shards' rows in a few
batch requests (``batch_started`` / ``record_shards``), whatever the batch size.

``DynamoLedger`` (pynamodb) is what deployed runs and the Step Functions runner use;
``MemoryLedger`` serves the in-process runner when no table is configured.
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.attributes import (
    BinaryAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from .models import AuditOutcome, AuditPlan, AuditRequest, Shard, ShardProgress, ShardResult, ShardStatus
from .pipeline import plan_audit

RUN_ROW = "#run"
TTL_ATTRIBUTE = "expires_at"  # the table's DynamoDB TTL attribute (the CDK stack sets the same name)
DEFAULT_TTL_DAYS = 30


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger(Protocol):
    def start_run(self, plan: AuditPlan, runner: str, record_pending: bool = True) -> None:
        """Record the plan and every shard as pending (shards already done stay done).

        ``record_pending=False`` records the plan only: a shard without a row is pending (the
        Distributed Map's plan step, where thousands of pending rows would cost minutes of writes).
        """
        ...

    def shard_started(self, run_id: str, shard_id: str) -> ShardResult | None:
        """Mark a shard running; return its stored result when it already completed."""
        ...

    def record_shard(self, result: ShardResult) -> None: ...

    def batch_started(self, run_id: str, shards: list[Shard]) -> dict[str, ShardResult]:
        """Mark a batch's shards running (few requests, whatever the batch size); return the stored
        results of those already completed, by shard id."""
        ...

    def record_shards(self, results: list[ShardResult]) -> int:
        """``record_shard`` for many results at once; each adds its ``attempts`` to the shard's.
        Returns how many were written (a failure never replaces a completed shard)."""
        ...

    def shard_results(self, run_id: str) -> list[ShardResult]: ...

    def progress(self, run_id: str) -> list[ShardProgress]: ...

    def finish_run(self, run_id: str, outcome: AuditOutcome | None, error: str | None = None) -> None: ...

    def record_step(self, run_id: str, step: str, result: Any) -> None:
        """Keep what a step after aggregate reported (``drift``, ``notifications``) with the run."""
        ...

    def run(self, run_id: str) -> dict[str, Any] | None:
        """``{"plan", "status", "runner", "outcome", "error", "steps"}`` or None for an unknown run."""
        ...


def _pack(result: ShardResult) -> bytes:
    return zlib.compress(result.model_dump_json().encode(), 6)


def _unpack(data: bytes) -> ShardResult:
    return ShardResult.model_validate_json(zlib.decompress(data))


class _LedgerRow(Model):
    """Table schema; bound to a table name / region / endpoint by ``_row_model``."""

    class Meta:
        table_name = "unbound"

    run_id = UnicodeAttribute(hash_key=True)
    shard_id = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    resource_count = NumberAttribute(default=0)
    error = UnicodeAttribute(null=True)
    started_at = UTCDateTimeAttribute(null=True)
    finished_at = UTCDateTimeAttribute(null=True)
    payload = BinaryAttribute(null=True, legacy_encoding=False)
    runner = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True, attr_name=TTL_ATTRIBUTE)


@lru_cache(maxsize=16)
def _row_model(table_name: str, region: str, host: str | None) -> type[_LedgerRow]:
    meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})
    return type(f"LedgerRow_{abs(hash((table_name, region, host)))}", (_LedgerRow,), {"Meta": meta})


class DynamoLedger:
    """Every item written expires ``ttl_days`` after its last write (DynamoDB TTL on ``expires_at``)."""

    def __init__(
        self, table_name: str, region: str, endpoint_url: str | None = None, ttl_days: int = DEFAULT_TTL_DAYS
    ) -> None:
        if ttl_days < 1:
            raise ValueError(f"ledger ttl_days must be at least 1, got {ttl_days}")
        self._row = _row_model(table_name, region, endpoint_url)
        self.ttl = timedelta(days=ttl_days)

    @property
    def table_name(self) -> str:
        return str(self._row.Meta.table_name)

    @property
    def row_model(self) -> type[_LedgerRow]:
        """The table's schema bound to this ledger's table (the CDK stack creates it when deployed)."""
        return self._row

    def _expiry(self) -> datetime:
        return _now() + self.ttl

    def _new(self, run_id: str, shard_id: str, **fields: Any) -> _LedgerRow:
        return self._row(run_id, shard_id, expires_at=self._expiry(), **fields)

    def _get(self, run_id: str, shard_id: str) -> _LedgerRow | None:
        try:
            return self._row.get(run_id, shard_id, consistent_read=True)
        except DoesNotExist:
            return None

    def start_run(self, plan: AuditPlan, runner: str, record_pending: bool = True) -> None:
        existing = {row.shard_id: row for row in self._row.query(plan.run_id, consistent_read=True)}
        run_row = existing.get(RUN_ROW)
        if run_row is None or run_row.status != "succeeded":
            self._new(
                plan.run_id,
                RUN_ROW,
                status="running",
                runner=runner,
                payload=_pack_run(plan, None),
                started_at=_now(),
            ).save()
        if not record_pending:
            return
        with self._row.batch_write() as batch:
            for shard in plan.shards:
                if shard.shard_id not in existing:
                    batch.save(self._new(plan.run_id, shard.shard_id, status="pending"))

    def shard_started(self, run_id: str, shard_id: str) -> ShardResult | None:
        row = self._get(run_id, shard_id)
        if row is not None and row.status == "ok" and row.payload:
            return _unpack(row.payload)
        if row is None:
            row = self._new(run_id, shard_id, status="pending")
            row.save()
        row.update(
            actions=[
                self._row.status.set("running"),
                self._row.attempts.add(1),
                self._row.started_at.set(_now()),
                self._row.expires_at.set(self._expiry()),
            ]
        )
        return None

    def record_shard(self, result: ShardResult) -> None:
        existing = self._get(result.run_id, result.shard.shard_id)
        if existing is not None and existing.status == "ok" and result.status != "ok":
            return  # a late failure report never overwrites a completed shard
        self._new(
            result.run_id,
            result.shard.shard_id,
            status=result.status,
            attempts=existing.attempts if existing is not None else 1,
            resource_count=result.resource_count,
            error=result.error,
            started_at=existing.started_at if existing is not None else None,
            finished_at=_now(),
            payload=_pack(result),
        ).save()

    def _rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _LedgerRow]:
        # BatchGetItem: pynamodb sends 100 keys a request and retries unprocessed keys.
        return {(row.run_id, row.shard_id): row for row in self._row.batch_get(keys, consistent_read=True)}

    def batch_started(self, run_id: str, shards: list[Shard]) -> dict[str, ShardResult]:
        rows = self._rows([(run_id, shard.shard_id) for shard in shards])
        done: dict[str, ShardResult] = {}
        with self._row.batch_write() as batch:
            for shard in shards:
                row = rows.get((run_id, shard.shard_id))
                if row is not None and row.status == "ok" and row.payload:
                    done[shard.shard_id] = _unpack(row.payload)
                    continue
                attempts = int(row.attempts or 0) if row is not None else 0
                batch.save(
                    self._new(run_id, shard.shard_id, status="running", attempts=attempts, started_at=_now())
                )
        return done

    def record_shards(self, results: list[ShardResult]) -> int:
        rows = self._rows([(result.run_id, result.shard.shard_id) for result in results])
        written = 0
        with self._row.batch_write() as batch:
            for result in results:
                row = rows.get((result.run_id, result.shard.shard_id))
                if row is not None and row.status == "ok" and result.status != "ok":
                    continue  # a late failure report never overwrites a completed shard
                batch.save(
                    self._new(
                        result.run_id,
                        result.shard.shard_id,
                        status=result.status,
                        attempts=(int(row.attempts or 0) if row is not None else 0) + result.attempts,
                        resource_count=result.resource_count,
                        error=result.error,
                        started_at=row.started_at if row is not None else None,
                        finished_at=_now(),
                        payload=_pack(result),
                    )
                )
                written += 1
        return written

    def _shard_rows(self, run_id: str) -> list[_LedgerRow]:
        return [row for row in self._row.query(run_id, consistent_read=True) if row.shard_id != RUN_ROW]

    def shard_results(self, run_id: str) -> list[ShardResult]:
        return [
            _unpack(row.payload)
            for row in self._shard_rows(run_id)
            if row.status in ("ok", "failed") and row.payload
        ]

    def progress(self, run_id: str) -> list[ShardProgress]:
        return [
            ShardProgress(
                shard_id=row.shard_id,
                status=row.status,
                attempts=int(row.attempts or 0),
                resource_count=int(row.resource_count or 0),
                error=row.error,
                started_at=row.started_at,
                finished_at=row.finished_at,
            )
            for row in self._shard_rows(run_id)
        ]

    def finish_run(self, run_id: str, outcome: AuditOutcome | None, error: str | None = None) -> None:
        row = self._get(run_id, RUN_ROW)
        plan, _, steps = _unpack_run(row.payload) if row is not None and row.payload else (None, None, {})
        self._new(
            run_id,
            RUN_ROW,
            status="succeeded" if outcome is not None else "failed",
            runner=row.runner if row is not None else None,
            error=error,
            started_at=row.started_at if row is not None else None,
            finished_at=_now(),
            payload=_pack_run(plan, outcome, steps),
        ).save()

    def record_step(self, run_id: str, step: str, result: Any) -> None:
        row = self._get(run_id, RUN_ROW)
        if row is None:
            raise LookupError(f"audit run {run_id} is not in the ledger")
        plan, outcome, steps = _unpack_run(row.payload) if row.payload else (None, None, {})
        row.payload = _pack_run(plan, outcome, {**steps, step: result})
        row.expires_at = self._expiry()
        row.save()

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._get(run_id, RUN_ROW)
        if row is None:
            return None
        plan, outcome, steps = _unpack_run(row.payload) if row.payload else (None, None, {})
        return {
            "plan": plan,
            "status": row.status,
            "runner": row.runner,
            "outcome": outcome,
            "error": row.error,
            "steps": steps,
        }

    def expiry_of(self, run_id: str, shard_id: str = RUN_ROW) -> datetime | None:
        """When a ledger item expires (for inspection and tests)."""
        row = self._get(run_id, shard_id)
        return row.expires_at if row is not None else None


def _pack_run(
    plan: AuditPlan | None, outcome: AuditOutcome | None, steps: dict[str, Any] | None = None
) -> bytes:
    body = {
        # Without its shards: they follow from the scope (plan_shards), and 170,000 of them
        # (500 accounts) would not fit a 400 KB item even compressed.
        "plan": plan.model_dump(mode="json", exclude={"shards"}) if plan is not None else None,
        "outcome": outcome.model_dump(mode="json") if outcome is not None else None,
        "steps": steps or {},
    }
    return zlib.compress(json.dumps(body, default=str).encode())


def _unpack_run(data: bytes) -> tuple[AuditPlan | None, AuditOutcome | None, dict[str, Any]]:
    body = json.loads(zlib.decompress(data))
    plan = _plan_of(body["plan"]) if body.get("plan") else None
    outcome = AuditOutcome.model_validate(body["outcome"]) if body.get("outcome") else None
    return plan, outcome, dict(body.get("steps") or {})


def _plan_of(data: dict[str, Any]) -> AuditPlan:
    if "shards" in data:  # a row written before plans were stored without their shards
        return AuditPlan.model_validate(data)
    return plan_audit(AuditRequest.model_validate(data))


class MemoryLedger:
    """The same contract in memory, for in-process runs without a ledger table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}
        self._shards: dict[str, dict[str, dict[str, Any]]] = {}

    def start_run(self, plan: AuditPlan, runner: str, record_pending: bool = True) -> None:
        with self._lock:
            run = self._runs.get(plan.run_id)
            if run is None or run["status"] != "succeeded":
                self._runs[plan.run_id] = {
                    "plan": plan,
                    "status": "running",
                    "runner": runner,
                    "outcome": None,
                    "error": None,
                    "steps": {},
                }
            shards = self._shards.setdefault(plan.run_id, {})
            for shard in plan.shards if record_pending else []:
                shards.setdefault(shard.shard_id, {"status": "pending", "attempts": 0, "result": None})

    def shard_started(self, run_id: str, shard_id: str) -> ShardResult | None:
        with self._lock:
            row = self._shards.setdefault(run_id, {}).setdefault(
                shard_id, {"status": "pending", "attempts": 0, "result": None}
            )
            if row["status"] == "ok" and row["result"] is not None:
                return row["result"]
            row.update(status="running", attempts=row["attempts"] + 1, started_at=_now())
            return None

    def record_shard(self, result: ShardResult) -> None:
        with self._lock:
            row = self._shards.setdefault(result.run_id, {}).setdefault(
                result.shard.shard_id, {"status": "pending", "attempts": 1, "result": None}
            )
            if row["status"] == "ok" and result.status != "ok":
                return
            row.update(status=result.status, result=result, finished_at=_now())

    def batch_started(self, run_id: str, shards: list[Shard]) -> dict[str, ShardResult]:
        done: dict[str, ShardResult] = {}
        with self._lock:
            rows = self._shards.setdefault(run_id, {})
            for shard in shards:
                row = rows.setdefault(shard.shard_id, {"status": "pending", "attempts": 0, "result": None})
                if row["status"] == "ok" and row["result"] is not None:
                    done[shard.shard_id] = row["result"]
                else:
                    row.update(status="running", started_at=_now())
        return done

    def record_shards(self, results: list[ShardResult]) -> int:
        written = 0
        for result in results:
            with self._lock:
                row = self._shards.setdefault(result.run_id, {}).setdefault(
                    result.shard.shard_id, {"status": "pending", "attempts": 0, "result": None}
                )
                if row["status"] == "ok" and result.status != "ok":
                    continue
                row.update(
                    status=result.status,
                    result=result,
                    attempts=row["attempts"] + result.attempts,
                    finished_at=_now(),
                )
                written += 1
        return written

    def shard_results(self, run_id: str) -> list[ShardResult]:
        with self._lock:
            rows = self._shards.get(run_id, {}).values()
            return [row["result"] for row in rows if row["result"] is not None]

    def progress(self, run_id: str) -> list[ShardProgress]:
        with self._lock:
            items = list(self._shards.get(run_id, {}).items())
        return [
            ShardProgress(
                shard_id=shard_id,
                status=_status(row["status"]),
                attempts=row["attempts"],
                resource_count=row["result"].resource_count if row["result"] is not None else 0,
                error=row["result"].error if row["result"] is not None else None,
                started_at=row.get("started_at"),
                finished_at=row.get("finished_at"),
            )
            for shard_id, row in sorted(items)
        ]

    def finish_run(self, run_id: str, outcome: AuditOutcome | None, error: str | None = None) -> None:
        with self._lock:
            run = self._runs.setdefault(run_id, {"plan": None, "runner": "in_process", "steps": {}})
            run.update(status="succeeded" if outcome is not None else "failed", outcome=outcome, error=error)

    def record_step(self, run_id: str, step: str, result: Any) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise LookupError(f"audit run {run_id} is not in the ledger")
            run["steps"] = {**run.get("steps", {}), step: result}

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self._runs.get(run_id)
            return {"steps": {}, **run} if run is not None else None


def _status(value: str) -> ShardStatus:
    assert value in ("pending", "running", "ok", "failed")
    return value  # type: ignore[return-value]

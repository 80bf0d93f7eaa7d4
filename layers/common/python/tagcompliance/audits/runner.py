"""Two runners, one result: the in-process runner (thread pool) and the Step Functions runner.

Both start a run and return its id at once; ``status`` reads its progress from the shard ledger
while it runs and its outcome once it is done. ``build_runner`` picks Step Functions when
``STATE_MACHINE_ARN`` is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tagcompliance.aws import AwsClients, describe_aws_error
from tagcompliance.errors import TagComplianceError
from tagcompliance.observability import correlation_id as current_correlation_id
from tagcompliance.observability import in_current_context, log_context
from tagcompliance.policy import TaggingPolicy, load_policy
from tagcompliance.settings import Settings
from tagcompliance.store import ScheduledAuditRecord, Store

from .ledger import DynamoLedger, Ledger, MemoryLedger
from .models import (
    AuditOutcome,
    AuditPlan,
    AuditRequest,
    AuditScope,
    AuditStatus,
    Shard,
    new_run_id,
    snapshot_id_for,
)
from .pipeline import DEFAULT_ROLE_NAME, ShardThrottledError, backoff_delay, outcome_of
from .steps import (
    PolicyLoader,
    build_scope,
    detect_run_drift,
    finish_run,
    notify_run,
    record_shard_failure,
    record_step_failure,
    run_shard,
    start_run,
)


def audit_status(run_id: str, ledger: Ledger, store: Store) -> AuditStatus:
    """A run's progress from the ledger; its outcome once done (also for runs only the store knows)."""
    run = ledger.run(run_id)
    shards = ledger.progress(run_id)
    if run is None:
        snapshot = store.get_snapshot(snapshot_id_for(run_id))
        if snapshot is None:
            return AuditStatus(run_id=run_id, status="unknown", error="no audit run with this id")
        return AuditStatus(
            run_id=run_id, status="succeeded", outcome=outcome_of(run_id, snapshot, created=False)
        )
    plan: AuditPlan | None = run["plan"]
    return AuditStatus(
        run_id=run_id,
        correlation_id=plan.correlation_id if plan is not None else None,
        status=run["status"],
        runner=run["runner"] or "unknown",
        shards_total=len(plan.shards) if plan is not None else len(shards),
        shards_done=sum(1 for shard in shards if shard.status in ("ok", "failed")),
        shards_failed=sum(1 for shard in shards if shard.status == "failed"),
        resources_scanned=sum(shard.resource_count for shard in shards),
        shards=shards,
        outcome=run["outcome"],
        drift=run["steps"].get("drift"),
        notifications=run["steps"].get("notifications"),
        error=run["error"]
        or "; ".join(f"{name}: {value}" for name, value in run["steps"].items() if name.endswith("_error"))
        or None,
    )


class AuditRunner:
    """What both runners share: a run is started from its scope, then ``launch``ed in the background."""

    store: Store
    ledger: Ledger

    def start(
        self,
        scope: AuditScope,
        run_id: str | None = None,
        policy: TaggingPolicy | None = None,
        schedule_id: str | None = None,
        recipients: list[str] | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Start a run in the background and return its id (a job handle). Its correlation id is
        ``correlation_id``, else the one of the work that starts it (a tool call's), else its run id."""
        run_id = run_id or new_run_id()
        request = AuditRequest(
            run_id=run_id,
            scope=scope,
            policy=policy.model_dump(mode="json") if policy is not None else None,
            schedule_id=schedule_id,
            recipients=list(recipients or []),
            correlation_id=correlation_id or current_correlation_id() or run_id,
        )
        self.launch(request)
        return request.run_id

    def launch(self, request: AuditRequest) -> None:
        raise NotImplementedError

    def status(self, run_id: str) -> AuditStatus:
        return audit_status(run_id, self.ledger, self.store)


class InProcessRunner(AuditRunner):
    """Plan, scan (thread pool) and aggregate in this process, with the same functions as the Lambdas."""

    def __init__(
        self,
        clients: AwsClients,
        store: Store,
        ledger: Ledger,
        policy_loader: PolicyLoader,
        max_workers: int = 16,
        shard_attempts: int = 4,
        backoff_seconds: float = 1.0,
        settings: Settings | None = None,
    ) -> None:
        """``settings`` given: runs also detect drift and notify (as the state machine does after
        aggregate), and other accounts are assumed with its ``audit_role_name``."""
        self.clients = clients
        self.store = store
        self.ledger = ledger
        self.policy_loader = policy_loader
        self.max_workers = max_workers
        self.shard_attempts = shard_attempts
        self.backoff_seconds = backoff_seconds
        self.settings = settings
        self.role_name = settings.audit_role_name if settings is not None else DEFAULT_ROLE_NAME
        self._threads: dict[str, threading.Thread] = {}

    def _scan(self, run_id: str, shard: Shard) -> None:
        # The state machine's Map task, in a thread: retry throttling with backoff, record the rest.
        with log_context(shard_id=shard.shard_id):
            self._scan_shard(run_id, shard)

    def _scan_shard(self, run_id: str, shard: Shard) -> None:
        for attempt in range(self.shard_attempts):
            try:
                run_shard(run_id, shard, self.clients, self.ledger, self.role_name)
                return
            except ShardThrottledError as error:
                if attempt + 1 == self.shard_attempts:
                    record_shard_failure(run_id, shard, f"ShardThrottledError: {error}", self.ledger)
                    return
                time.sleep(backoff_delay(attempt, self.backoff_seconds))
            except Exception as error:
                record_shard_failure(run_id, shard, describe_aws_error(error), self.ledger)
                return

    def run(self, request: AuditRequest) -> AuditOutcome:
        """Run to completion in the calling thread (idempotent per run id); its log lines carry the
        run's ids, as the Lambdas' do."""
        with log_context(run_id=request.run_id, correlation_id=request.correlation_id):
            return self._run(start_run(request, self.ledger, "in_process"))

    def _run(self, plan: AuditPlan) -> AuditOutcome:
        # Pool threads start from an empty context: each scan runs in a copy of this one.
        scan = in_current_context(lambda shard: self._scan(plan.run_id, shard))
        try:
            with ThreadPoolExecutor(self.max_workers, thread_name_prefix="audit") as pool:
                list(pool.map(scan, plan.shards))
        except Exception as error:
            self.ledger.finish_run(plan.run_id, None, describe_aws_error(error))
            raise
        outcome = finish_run(plan.run_id, self.ledger, self.store, self.policy_loader)
        if self.settings is not None:
            self.follow_up(plan.run_id)
        return outcome

    def follow_up(self, run_id: str) -> None:
        """Drift detection, then notification: a failure of either is recorded, the snapshot stays."""
        assert self.settings is not None
        try:
            detect_run_drift(run_id, self.ledger, self.store)
        except Exception as error:
            record_step_failure(run_id, "drift", describe_aws_error(error), self.ledger)
        try:
            notify_run(run_id, self.ledger, self.store, self.clients, self.settings)
        except Exception as error:
            record_step_failure(run_id, "notify", describe_aws_error(error), self.ledger)

    def launch(self, request: AuditRequest) -> None:
        def work(plan: AuditPlan) -> None:
            try:
                self._run(plan)
            except Exception:  # recorded in the ledger by _run(); nothing else to do in a thread
                return

        with log_context(run_id=request.run_id, correlation_id=request.correlation_id):
            # Record the plan before returning, so status() knows the run at once.
            plan = start_run(request, self.ledger, "in_process")
            # The run's lines also carry who started it (the tool call's user, tool, session).
            thread = threading.Thread(
                target=in_current_context(work), args=(plan,), name=f"audit-{request.run_id}", daemon=True
            )
        self._threads[request.run_id] = thread
        thread.start()

    def wait(self, run_id: str, timeout: float = 600.0) -> AuditStatus:
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
        return self.status(run_id)


class StepFunctionsRunner(AuditRunner):
    """Start the deployed state machine; read progress from the ledger and the execution."""

    def __init__(
        self,
        sfn_client: Any,
        state_machine_arn: str,
        store: Store,
        ledger: Ledger,
        poll_seconds: float = 1.0,
    ) -> None:
        self.sfn = sfn_client
        self.state_machine_arn = state_machine_arn
        self.store = store
        self.ledger = ledger
        self.poll_seconds = poll_seconds

    def execution_arn(self, execution_name: str) -> str:
        # arn:aws:states:REGION:ACCOUNT:stateMachine:NAME -> ...:execution:NAME:EXECUTION
        prefix, name = self.state_machine_arn.rsplit(":stateMachine:", 1)
        return f"{prefix}:execution:{name}:{execution_name}"

    def launch(self, request: AuditRequest, execution_name: str | None = None) -> None:
        """Start an execution named after the run (or ``execution_name`` to re-run a run id)."""
        self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=execution_name or request.run_id,
            input=request.model_dump_json(),
        )

    def describe(self, execution_name: str) -> dict[str, Any]:
        return self.sfn.describe_execution(executionArn=self.execution_arn(execution_name))

    def status(self, run_id: str, execution_name: str | None = None) -> AuditStatus:
        status = audit_status(run_id, self.ledger, self.store)
        if status.status in ("running", "unknown"):
            try:
                execution = self.describe(execution_name or run_id)
            except Exception:  # not started through this runner, or not yet visible
                return status
            state = execution["status"]
            if state in ("FAILED", "TIMED_OUT", "ABORTED"):
                detail = execution.get("error") or state
                cause = execution.get("cause")
                status.status = "failed"
                status.error = f"execution {state}: {detail}" + (f" ({cause})" if cause else "")
            elif state == "SUCCEEDED" and status.outcome is None:
                output = json.loads(execution.get("output") or "null")
                if isinstance(output, dict) and "snapshot_id" in output:
                    status.outcome = AuditOutcome.model_validate(output)
                    status.status = "succeeded"
            status.runner = "step_functions"
        return status

    def wait(self, run_id: str, timeout: float = 600.0, execution_name: str | None = None) -> AuditStatus:
        """Poll the execution (the source of truth for this runner) until it ends, then report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.describe(execution_name or run_id)["status"]
            except Exception:  # not visible yet
                state = "RUNNING"
            if state != "RUNNING":
                break
            time.sleep(self.poll_seconds)
        return self.status(run_id, execution_name)


def build_ledger(settings: Settings) -> Ledger:
    if settings.audit_ledger_table:
        return DynamoLedger(
            settings.audit_ledger_table,
            settings.audit_ledger_region or settings.aws_region,
            settings.aws_endpoint_url,
            settings.audit_ledger_ttl_days,
        )
    return MemoryLedger()


def build_runner(
    settings: Settings,
    clients: AwsClients,
    store: Store,
    policy_loader: PolicyLoader | None = None,
) -> InProcessRunner | StepFunctionsRunner:
    """Step Functions when ``STATE_MACHINE_ARN`` is set (needs ``AUDIT_LEDGER_TABLE``), else in-process."""
    ledger = build_ledger(settings)
    if settings.state_machine_arn:
        if isinstance(ledger, MemoryLedger):
            raise ValueError("STATE_MACHINE_ARN needs AUDIT_LEDGER_TABLE: the Lambdas report progress there")
        return StepFunctionsRunner(
            clients.client("stepfunctions"),
            settings.state_machine_arn,
            store,
            ledger,
            settings.audit_poll_seconds,
        )
    return InProcessRunner(
        clients,
        store,
        ledger,
        policy_loader or (lambda: load_policy(settings.policy_path).policy),
        max_workers=settings.scan_max_workers,
        shard_attempts=settings.audit_shard_attempts,
        settings=settings,
    )


def scheduled_audit_runner(
    runner: InProcessRunner | StepFunctionsRunner,
    settings: Settings,
    clients: AwsClients,
    timeout: float = 3600.0,
) -> Callable[[ScheduledAuditRecord], str]:
    """The local scheduler loop's ``run_audit``: one scheduled audit as a pipeline run (trigger
    ``scheduled``, the schedule's recipients notified), returning the snapshot id once it is done."""

    def run(record: ScheduledAuditRecord) -> str:
        scope = build_scope(settings, clients, list(record.resource_types), list(record.regions), "scheduled")
        run_id = runner.start(scope, schedule_id=record.schedule_id)
        status = runner.wait(run_id, timeout)
        if status.outcome is None:
            raise TagComplianceError(
                f"scheduled audit run {run_id} ended {status.status}: {status.error or 'no snapshot'}"
            )
        return status.outcome.snapshot_id

    return run

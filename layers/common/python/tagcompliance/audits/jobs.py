"""Large scans as jobs: when a check would take too long for one tool call, run it as an audit.

MCP clients give up on a call after about 60 seconds. ``LargeScanJobs.check_or_start`` estimates a
check's scan from the stored inventory counts (``tagcompliance.safety.estimates``); above
``AUDIT_ASYNC_THRESHOLD_SECONDS`` it starts an audit run of the same scope (same accounts,
regions, types and policy) and answers with a job handle instead of blocking. Once the run is done
its snapshot answers the scope within the cache TTL (the newest snapshot covering a scope does), so
the next check is served from it at once.

Which job runs for a scope is kept in the cache (Redis when configured), not in this process: a
check that reaches another gateway task while the job runs answers with the same job rather than
starting a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tagcompliance.cache import Cache
from tagcompliance.models import AuditJob, ComplianceCheckResult, ScopeInfo
from tagcompliance.policy import TaggingPolicy
from tagcompliance.safety.estimates import estimate_scope
from tagcompliance.scope import GATE_ESTIMATE, Scope
from tagcompliance.settings import Settings
from tagcompliance.store import Store

from .models import AuditScope, snapshot_id_for
from .runner import InProcessRunner, StepFunctionsRunner

ScopeKey = str
JOB_PREFIX = "job:"
# How long a scope remembers its running job: longer than any audit run (the Step Functions
# state machine's own timeout is one hour).
JOB_TTL_SECONDS = 2 * 3600


class LargeScanJobs:
    def __init__(
        self,
        runner: InProcessRunner | StepFunctionsRunner,
        settings: Settings,
        store: Store,
        cache: Cache,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.store = store
        self.cache = cache

    def check_or_start(
        self, scope: Scope, policy: TaggingPolicy, policy_source: str, force_refresh: bool
    ) -> ComplianceCheckResult | None:
        """A job-handle result when the check must run as a job; None to answer it in the call.

        Asked only when no stored snapshot answers the scope (``ComplianceService.large_scan_job``).
        The scan's estimate is the safety gate's when the call was guarded (``GATE_ESTIMATE``)."""
        account_id, regions, type_ids = scope.account_id, scope.regions, scope.resource_types
        key = scope.cache_key("scan", policy.digest())
        run_id = self.cache.get(JOB_PREFIX + key)
        if isinstance(run_id, str):
            status = self.runner.status(run_id)
            if status.status == "running":
                return self._handle(run_id, "running", scope, policy_source, None)
            # Done: a job's snapshot within the cache TTL answered before this is asked (the service's
            # ``cached_observation`` finds the newest snapshot covering the scope); one older than
            # that, or a failed job, leaves this scope to be estimated again.
            self.cache.delete(JOB_PREFIX + key)
        if not force_refresh and isinstance(self.cache.get(key), str):
            return None  # a stored answer exists: served within the call
        gate_estimate = GATE_ESTIMATE.get()
        seconds = (
            gate_estimate.seconds
            if gate_estimate is not None
            else estimate_scope(self.store, type_ids, regions, workers=self.settings.scan_max_workers).seconds
            * len(scope.audited_accounts)  # the gate's estimate counts the accounts already
        )
        if seconds <= self.settings.audit_async_threshold_seconds:
            return None
        audit_scope = AuditScope(
            account_id=account_id, accounts=scope.accounts, regions=regions, resource_types=type_ids
        )
        run_id = self.runner.start(audit_scope, policy=policy)
        self.cache.set(JOB_PREFIX + key, run_id, JOB_TTL_SECONDS)
        return self._handle(run_id, "running", scope, policy_source, seconds)

    def _handle(
        self,
        run_id: str,
        status: str,
        scope: Scope,
        policy_source: str,
        estimated_seconds: float | None,
    ) -> ComplianceCheckResult:
        note = (
            f"This scope is too large to scan within one call (estimated {estimated_seconds:.0f} s): "
            if estimated_seconds is not None
            else "A scan of this scope is already running: "
        )
        return ComplianceCheckResult(
            compliance_score=None,
            score_note=note + f"it runs as audit job {run_id}. Poll get_audit_status(run_id) for progress "
            "and the result, then call check_tag_compliance again for the violations. Nothing below is a "
            "result yet.",
            total_resources=0,
            scanned_resources=0,
            compliant_resources=0,
            violation_count=0,
            violations_by_type={},
            by_resource_type={},
            by_region={},
            violations=[],
            failed_shards=[],
            scope=ScopeInfo(
                account_id=scope.account_id,
                regions=scope.regions,
                resource_types=scope.resource_types,
                accounts=scope.audited_accounts,
            ),
            snapshot_id=snapshot_id_for(run_id),
            scanned_at=datetime.now(UTC),
            cached=False,
            policy_source=policy_source,
            job=AuditJob(run_id=run_id, status=status, estimated_seconds=estimated_seconds),
        )

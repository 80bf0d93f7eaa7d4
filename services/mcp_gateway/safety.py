"""Gateway wiring of the agent-safety layer (``tagcompliance.safety``).

Each tool that scans, costs money or writes builds a ``SafetyRequest`` and calls ``SafetyGate.run``:
the core decides (clarify, commit, dry run, proceed); only ``proceed`` runs the tool's work. A
tool's output schema is widened to "its result or a ``SafetyResponse``" so clients validate both
(``sdk_adapter.allow_safety_responses``). The belief log tool is in ``tools/intents``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from pydantic import BaseModel

from tagcompliance.errors import InvalidInputError, TagComplianceError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.resources import parse_arn
from tagcompliance.safety.engine import Proceed, SafetyEngine, SafetyRequest, ScopeRequest
from tagcompliance.safety.estimates import (
    CostExplorerEstimate,
    ScopeEstimate,
    estimate_cost_explorer,
    estimate_scope,
    estimate_seconds,
)
from tagcompliance.safety.models import SafetyResponse
from tagcompliance.safety.policy import SafetyPolicy
from tagcompliance.safety.tokens import Caller
from tagcompliance.scope import GATE_ESTIMATE

from .runtime import Runtime, _login_name, run_tool

logger = logging.getLogger("tagcompliance.gateway.safety")
ResultT = TypeVar("ResultT", bound=BaseModel)


def current_caller(runtime: Runtime) -> Caller:
    """The caller as the call log names it: the token's subject and client, or the local user."""
    token = get_access_token()
    if token is not None:
        return Caller(user_id=token.subject or f"client:{token.client_id}", client_id=token.client_id)
    return Caller(user_id=f"local:{_login_name()}" if runtime.transport == "stdio" else "anonymous")


class ScopeArguments(Protocol):
    """A tool's scope arguments (a scanning tool's request, or an export's filters)."""

    @property
    def resource_types(self) -> list[str] | None: ...
    @property
    def regions(self) -> list[str] | None: ...
    @property
    def accounts(self) -> list[str] | None: ...


class SafetyGate:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.policy = SafetyPolicy.for_organization(runtime.settings)
        self.engine = SafetyEngine(runtime.store, self.policy, runtime.settings.scan_max_workers)

    def scope(
        self,
        arguments: ScopeArguments,
        period: tuple[Any, Any] | None = None,
        period_matters: bool = False,
    ) -> ScopeRequest:
        """The scope a call's arguments ask for, with what the gate needs to ask back about it."""
        settings = self.runtime.settings
        scopes = self.runtime.service.scopes
        # Only when accounts are configured is anyone asked which (no AWS call otherwise).
        configured = settings.audit_accounts_from_organizations or bool(settings.audit_accounts)
        try:
            accounts_known = scopes.configured_accounts() if configured else []
        except TagComplianceError:  # Organizations cannot list them: nothing to offer; ["all"] says why
            accounts_known = []
        return ScopeRequest(
            resource_types=list(arguments.resource_types) if arguments.resource_types else None,
            regions=list(arguments.regions) if arguments.regions else None,
            period=period,
            period_matters=period_matters,
            default_regions=list(settings.default_regions),
            accounts=list(arguments.accounts) if arguments.accounts else None,
            own_account=scopes.clients.account_id if configured else None,
            configured_accounts=accounts_known,
        )

    def arn_estimate(self, arns: Iterable[str], regions: list[str] | None) -> ScopeEstimate | None:
        """The scan validating or suggesting for these ARNs implies (their types in their regions)."""
        types: set[str] = set()
        arn_regions: set[str] = set()
        for arn in arns:
            try:
                parsed = parse_arn(arn)
            except InvalidInputError:
                continue  # the tool itself reports it
            types.add(parsed.resource_type)
            arn_regions.update(
                [parsed.region] if parsed.region else regions or self.runtime.settings.default_regions
            )
        if not types:
            return None
        return estimate_scope(self.runtime.store, sorted(types), sorted(arn_regions), self.engine.workers)

    def cost_estimate(
        self,
        resource_types: list[str] | None,
        tag_keys: list[str] | None,
        include_resource_estimates: bool,
        accounts: list[str] | None = None,
    ) -> CostExplorerEstimate:
        """Cost Explorer requests of a cost question: one per tag, and one more per tag grouped by
        account when several accounts are asked about (from the management account; at most)."""
        policy = self.runtime.service.loaded_policy.policy
        if tag_keys:
            keys = len(set(tag_keys))
        else:
            types = resource_types if resource_types and resource_types != ["all"] else None
            names = {
                tag.name
                for tag in policy.required_tags
                if types is None or any(tag.applies(type_id) for type_id in types)
            }
            keys = len(names)
        if accounts and accounts != [self.runtime.service.clients.account_id]:
            keys *= 2
        return estimate_cost_explorer(
            keys, include_resource_estimates, 100 if include_resource_estimates else 0
        )

    def organizations_estimate(self, policy_id: str | None, use_effective: bool) -> ScopeEstimate:
        """Organizations requests of import_aws_tag_policy: list, describe or the effective policy."""
        calls = 1  # one call either way; paginated listings of more than 20 policies take more
        return ScopeEstimate(
            resource_types=[],
            regions=[],
            resources=0,
            api_calls=calls,
            seconds=estimate_seconds(calls, 1),
            by_type_region=[],
            unknown_pairs=0,
            complete=True,
            basis="one AWS Organizations request (ListPolicies, DescribePolicy or DescribeEffectivePolicy)",
        )

    def schedule_run_estimate(
        self, resource_types: list[str] | None, regions: list[str] | None
    ) -> ScopeEstimate:
        """What each run of a scheduled audit will scan (its types in its regions; defaults if omitted)."""
        return estimate_scope(
            self.runtime.store,
            resource_types or ["all"],
            regions or self.runtime.settings.default_regions,
            self.engine.workers,
        )

    def stored_tags(self, arns: Iterable[str]) -> dict[str, dict[str, str]]:
        """The newest stored tags of these resources (from the last 30 days of snapshots)."""
        wanted = set(arns)
        found: dict[str, dict[str, str]] = {}
        store = self.runtime.store
        since = datetime.now(UTC) - timedelta(days=30)
        for snapshot in reversed(store.list_snapshots(since=since, limit=200)):
            for state in store.iter_resource_states(snapshot.snapshot_id):
                if state.resource_arn in wanted and state.resource_arn not in found:
                    found[state.resource_arn] = dict(state.tags)
            if len(found) == len(wanted):
                break
        return found

    async def require_call_log(self, ctx: Context | None, writes: str | None, dry_run: bool = False) -> None:
        """Fail closed at once for a call that would write while the call log cannot be written, before
        the tool reads the store for its estimates (``run`` checks again before executing)."""
        call_log = self.runtime.call_log
        if writes and not dry_run and call_log is not None:
            await run_tool(ctx, lambda progress: call_log.ensure_writable())

    async def run(
        self,
        ctx: Context | None,
        request: SafetyRequest | Callable[[], SafetyRequest],
        execute: Callable[[ProgressCallback], ResultT],
        outcome: Callable[[ResultT], Mapping[str, Any]] | None = None,
        precheck: Callable[[], None] | None = None,
    ) -> ResultT | SafetyResponse:
        """Decide, and run ``execute`` only if the decision is to proceed. ``precheck`` validates the
        arguments first, so that an invalid request is refused rather than committed to. ``request``
        may be a function building it in the worker thread (when building it reads AWS: a plan)."""

        def work(progress: ProgressCallback) -> Any:
            if precheck is not None:
                precheck()
            built = request if isinstance(request, SafetyRequest) else request()
            if built.writes and not built.dry_run and self.runtime.call_log is not None:
                # Fail closed: a call with side effects never runs (nor is committed to) while the
                # call log cannot be written; the error says so, rather than a database error later.
                self.runtime.call_log.ensure_writable()
            decision = self.engine.evaluate(built)
            if isinstance(decision, SafetyResponse):
                return decision
            # The work's own estimate of the scan is this one (tagcompliance.scope.GATE_ESTIMATE).
            estimated = GATE_ESTIMATE.set(decision.estimate)
            try:
                result = execute(progress)
            finally:
                GATE_ESTIMATE.reset(estimated)
            self._record(decision, result, outcome)
            return result

        return await run_tool(ctx, work)

    def _record(
        self, decision: Proceed, result: Any, outcome: Callable[[Any], Mapping[str, Any]] | None
    ) -> None:
        try:
            self.engine.record_outcome(decision, outcome(result) if outcome else {})
        except Exception:  # the answer still reaches the user; the gap in the belief log is logged
            logger.exception("could not record the outcome of belief %s", decision.belief_id)


def scan_outcome(result: Any) -> dict[str, Any]:
    """What a scan found, for the belief log."""
    scope = getattr(result, "scope", None)
    found: dict[str, Any] = {}
    for name in ("total_resources", "total_untagged", "scanned_resources"):
        value = getattr(result, name, None)
        if isinstance(value, int):
            found[name] = value
    if scope is not None:
        found["resource_types"] = list(scope.resource_types)
        found["regions"] = list(scope.regions)
    by_region = getattr(result, "by_region", None)
    if isinstance(by_region, dict):
        found["by_region"] = {
            region: getattr(counts, "total", counts) for region, counts in by_region.items()
        }
    return found

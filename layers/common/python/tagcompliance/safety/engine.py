"""The safety decision for one tool call: clarify, commit, dry run, or proceed.

``SafetyEngine.evaluate`` takes what the tool was asked (its parameters, the scan scope it implies,
Cost Explorer requests, whether it writes) and the caller, and returns either a ``SafetyResponse``
to hand back instead of running the tool, or ``Proceed`` (run it, then ``record_outcome``).

* Underspecified scope (no resource types, no regions, no period where one matters) ->
  ``clarification_needed`` with options, each estimated from the stored inventory.
* Past a threshold (resources, API calls, Cost Explorer requests, "all" regions), any write, a
  ``warning`` regret, or the answer to an earlier clarification -> ``intent_commit`` with a
  single-use confirmation token bound to the exact parameters and the caller.
* ``dry_run`` -> the estimate, with what would need approval; nothing runs.
* With a valid token -> proceed with exactly the committed parameters.

Every decision is written to the intent belief log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python

from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS, region_filter, resolve_resource_types
from tagcompliance.scope import check_accounts
from tagcompliance.store.base import BeliefRecord, Store

from .accounts import accounts_ambiguity, times_accounts
from .estimates import CostExplorerEstimate, InventorySnapshot, ScopeEstimate, estimate_scope
from .models import (
    Ambiguity,
    EstimatedScope,
    IntentCommit,
    RegretWarning,
    SafetyResponse,
    SampleSuggestion,
    ScopeOption,
    format_seconds,
    format_usd,
)
from .policy import SafetyPolicy
from .regrets import RegretLearner, excluded_types, overwrite_existing, region_coverage
from .tokens import Caller, ConfirmationError, Confirmations, canonical_parameters

# A clarification answered within this long makes the next call of the same tool an intent commit.
CLARIFICATION_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """The scan a call implies. None = the parameter was omitted (underspecified)."""

    resource_types: list[str] | None
    regions: list[str] | None
    period: tuple[date | None, date | None] | None = None
    period_matters: bool = False
    default_regions: list[str] = field(default_factory=list)
    accounts: list[str] | None = None  # None: omitted (the credentials' own unless asked)
    own_account: str | None = None
    configured_accounts: list[str] = field(default_factory=list)  # AUDIT_ACCOUNTS or the organization's


@dataclass(frozen=True, slots=True)
class SafetyRequest:
    tool: str
    parameters: dict[str, Any]  # every parameter the tool runs with (the commit binds exactly these)
    caller: Caller
    scope: ScopeRequest | None = None
    fixed_estimate: ScopeEstimate | None = None  # when the tool's scope is not types x regions
    cost_explorer: CostExplorerEstimate | None = None
    writes: str | None = None  # what the call changes, if anything
    tag_values: Mapping[str, str] | None = None  # remediation values, for overwrite_existing
    current_tags: Mapping[str, Mapping[str, str]] | None = None
    details: Mapping[str, Any] | None = None  # shown in the intent commit (e.g. the exact diff)
    # Commit even when the organization turned safety off (SAFETY_ENABLED=false): writes to AWS.
    always_commit: bool = False
    dry_run: bool = False
    confirmation_token: str | None = None


@dataclass(frozen=True, slots=True)
class Proceed:
    belief_id: str
    estimate: EstimatedScope | None
    confirmed: bool


class SafetyEngine:
    def __init__(self, store: Store, policy: SafetyPolicy, workers: int = 16) -> None:
        self.store = store
        self.policy = policy
        self.workers = workers
        self.confirmations = Confirmations(store)
        self.learner = RegretLearner(store)

    # --- the decision ------------------------------------------------------------------------

    def evaluate(self, request: SafetyRequest) -> SafetyResponse | Proceed:
        policy = self.policy
        if request.confirmation_token is not None:
            if request.dry_run:
                raise ConfirmationError("dry_run and confirmation_token cannot be combined")
            record = self.confirmations.redeem(
                request.confirmation_token,
                policy.organization,
                request.caller,
                request.tool,
                request.parameters,
            )
            self.learner.resolve_open(policy.organization, request.caller, request.tool, request.parameters)
            belief_id = record.belief_id or self._new_belief(request, "executed", {}, [], [], {}, [])
            return Proceed(belief_id, EstimatedScope(**record.estimate) if record.estimate else None, True)

        scope = request.scope
        if not policy.enabled and not request.dry_run and not request.always_commit:
            return Proceed(self._new_belief(request, "executed", {}, [], [], {}, []), None, False)
        if scope is not None:
            _validate_scope(scope)  # bad input is an error, never a clarification
        if scope is not None and policy.require_explicit_scope:
            missing = self._missing(scope)
            if missing:
                return self._clarify(request, scope, missing, InventorySnapshot(self.store))

        inventory = InventorySnapshot(self.store)
        estimate = self._estimate(request, inventory)
        reasons = self._approval_reasons(request, estimate)
        learned = self.learner.learned_rules(policy)
        warnings = self._regrets(request, learned, inventory)
        assumptions = self._assumptions(request)
        sample = self._sample(request, inventory) if reasons else None
        # Alternatives considered: the smaller sample scope, and what each warning suggests changing.
        alternatives = [{"sample": sample.model_dump(mode="json")}] if sample else []
        alternatives += [{"change": w.parameter, "because": w.rule_id} for w in warnings]
        if request.dry_run:
            belief_id = self._new_belief(
                request, "dry_run", _jsonable(estimate), assumptions, alternatives, {}, warnings
            )
            return SafetyResponse(
                safety="dry_run",
                intent_commit=self._commit(request, estimate, assumptions, warnings),
                approval_required=bool(reasons),
                approval_reasons=reasons,
                sample=sample,
                proceed="Dry run: nothing was scanned or changed. Call again without dry_run to "
                + ("get an intent commit to confirm." if reasons else "execute."),
                belief_id=belief_id,
            )

        self.learner.resolve_open(policy.organization, request.caller, request.tool, request.parameters)
        follows_clarification = self._pending_clarification(request)
        serious = [warning for warning in warnings if warning.severity == "warning"]
        if (policy.enabled or request.always_commit) and (
            reasons or request.writes or serious or follows_clarification
        ):
            commit = self._commit(request, estimate, assumptions, warnings)
            belief_id = self._new_belief(
                request, "commit", _jsonable(estimate), assumptions, alternatives, {}, warnings
            )
            if follows_clarification is not None:
                self.store.update_belief_outcome(
                    follows_clarification.belief_id,
                    {"answered_with": canonical_parameters(request.parameters), "commit_belief": belief_id},
                    None,
                    "clarified by the caller's next call",
                    datetime.now(UTC),
                )
            token, expires_at = self.confirmations.issue(
                policy.organization,
                request.caller,
                request.tool,
                request.parameters,
                estimate.model_dump(mode="json"),
                policy.token_ttl_seconds,
                belief_id,
            )
            self.learner.record_shown(
                policy.organization, request.caller, request.tool, warnings, request.parameters
            )
            return SafetyResponse(
                safety="intent_commit",
                intent_commit=commit,
                approval_required=bool(reasons),
                approval_reasons=reasons,
                confirmation_token=token,
                token_expires_at=expires_at,
                sample=sample,
                proceed=(
                    "Needs the user's explicit approval: show the intent commit and its approval reasons"
                    if reasons
                    else "Confirm with the user"
                )
                + ", then call the same tool with the same parameters plus confirmation_token to execute; "
                "to change anything, call again without the token.",
                belief_id=belief_id,
            )
        belief_id = self._new_belief(
            request, "executed", _jsonable(estimate), assumptions, alternatives, {}, warnings
        )
        return Proceed(belief_id, estimate, False)

    def record_outcome(self, proceed: Proceed, outcome: Mapping[str, Any]) -> None:
        """After the tool ran: did the outcome match the belief? ``outcome`` may hold
        ``total_resources`` and ``by_region`` (resources found per region)."""
        notes: list[str] = []
        matched: bool | None = None
        found = outcome.get("total_resources")
        if isinstance(found, int):
            matched = True
            estimate = proceed.estimate
            if found == 0:
                others = self._resources_elsewhere(outcome, InventorySnapshot(self.store))
                if others:
                    matched = False
                    notes.append(
                        "zero resources found in the chosen scope while the stored inventory holds "
                        f"some elsewhere: {others}"
                    )
            if (
                estimate is not None
                and estimate.complete
                and estimate.resources is not None
                and abs(found - estimate.resources) > max(5, estimate.resources * 0.5)
            ):
                matched = False
                notes.append(f"found {found} resources, estimated {estimate.resources}")
        stage = "executed"
        self.store.update_belief_outcome(
            proceed.belief_id,
            _jsonable(dict(outcome)),
            matched,
            "; ".join(notes) or ("outcome as understood" if matched else None),
            datetime.now(UTC),
            stage,
        )

    # --- pieces --------------------------------------------------------------------------------

    @staticmethod
    def _missing(scope: ScopeRequest) -> list[str]:
        missing = []
        if not scope.resource_types:
            missing.append("resource_types")
        if not scope.regions:
            missing.append("regions")
        if scope.period_matters and (scope.period is None or scope.period == (None, None)):
            missing.append("period")
        if scope.accounts is None and set(scope.configured_accounts) - {scope.own_account}:
            missing.append("accounts")  # others are configured: which, not assumed
        return missing

    def _estimate(self, request: SafetyRequest, inventory: InventorySnapshot) -> EstimatedScope:
        scan = request.fixed_estimate
        if scan is None and request.scope is not None:
            scan = estimate_scope(
                inventory,
                request.scope.resource_types or ["all"],
                request.scope.regions or request.scope.default_regions,
                self.workers,
            )
            scan = times_accounts(scan, request.scope.accounts, request.scope.configured_accounts)
        ce = request.cost_explorer
        ce_requests = ce.requests if ce else 0
        ce_usd = ce.usd if ce else 0.0
        api_calls = (scan.api_calls if scan else 0) + ce_requests
        seconds = (scan.seconds if scan else 0.0) + (ce_requests * 0.5 if ce else 0.0)
        basis = "; ".join(part for part in (scan.basis if scan else "", ce.basis if ce else "") if part)
        method = "; ".join(part for part in (scan.method if scan else "", ce.method if ce else "") if part)
        return EstimatedScope(
            resources=None if scan is None or (scan.unknown_pairs and not scan.resources) else scan.resources,
            api_calls=api_calls,
            cost_explorer_requests=ce_requests,
            estimated_cost_usd=ce_usd,
            estimated_cost=format_usd(ce_usd),
            seconds=round(seconds, 2),
            estimated_time=format_seconds(seconds),
            complete=scan.complete if scan else True,
            basis=basis or "no AWS scan involved",
            method=method or "estimate: no AWS scan involved",
            by_region=scan.by_region if scan else {},
            by_type={k: v for k, v in (scan.by_type if scan else {}).items() if v},
        )

    def _approval_reasons(self, request: SafetyRequest, estimate: EstimatedScope) -> list[str]:
        policy = self.policy
        if not policy.enabled:
            return []
        reasons = []
        if estimate.resources is not None and estimate.resources > policy.max_resources:
            reasons.append(
                f"estimated {estimate.resources} resources exceeds the limit of {policy.max_resources}"
            )
        if estimate.api_calls > policy.max_api_calls:
            reasons.append(
                f"estimated {estimate.api_calls} AWS requests exceeds the limit of {policy.max_api_calls}"
            )
        if estimate.cost_explorer_requests > policy.max_cost_explorer_requests:
            reasons.append(
                f"estimated {estimate.cost_explorer_requests} Cost Explorer requests "
                f"({estimate.estimated_cost}) exceeds the limit of {policy.max_cost_explorer_requests}"
            )
        if (
            request.scope is not None
            and request.scope.regions == ["all"]
            and policy.all_regions_require_approval
        ):
            reasons.append('a scan of "all" enabled regions requires approval')
        return reasons

    def _regrets(
        self, request: SafetyRequest, learned: set[str], inventory: InventorySnapshot
    ) -> list[RegretWarning]:
        policy = self.policy
        warnings: list[RegretWarning] = []
        scope = request.scope
        if scope is not None and scope.resource_types and scope.regions and scope.regions != ["all"]:
            types = _types(scope.resource_types)
            if policy.rule_enabled("region_coverage"):
                by_region: dict[str, int] = {}
                read_regions = set()
                for count in inventory.inventory_counts(types, None):
                    by_region[count.region] = by_region.get(count.region, 0) + count.resources
                    read_regions.add(count.region)
                known = all(region in read_regions for region in scope.regions)
                if known:
                    warning = region_coverage(policy, "region_coverage" in learned, scope.regions, by_region)
                    if warning:
                        warnings.append(warning)
            if policy.rule_enabled("excluded_types") and scope.resource_types != ["all"]:
                by_type: dict[str, int] = {}
                for count in inventory.inventory_counts(None, scope.regions):
                    by_type[count.resource_type] = by_type.get(count.resource_type, 0) + count.resources
                warning = excluded_types(policy, "excluded_types" in learned, types, by_type)
                if warning:
                    warnings.append(warning)
        if request.tag_values and request.current_tags and policy.rule_enabled("overwrite_existing"):
            warning = overwrite_existing(policy, request.tag_values, request.current_tags)
            if warning:
                warnings.append(warning)
        return warnings

    def _assumptions(self, request: SafetyRequest) -> list[str]:
        assumptions = []
        scope = request.scope
        if scope is not None:
            if not scope.resource_types:
                assumptions.append("resource_types omitted: every supported type")
            elif scope.resource_types == ["all"]:
                assumptions.append(f"resource_types all: {len(RESOURCE_TYPE_IDS)} supported types")
            if not scope.regions:
                assumptions.append(f"regions omitted: the default regions {', '.join(scope.default_regions)}")
            elif scope.regions == ["all"]:
                assumptions.append("regions all: every enabled region of the account")
            if scope.period_matters and scope.period and None in scope.period:
                assumptions.append("period partly omitted: the configured cost lookback fills the gap")
        if request.writes:
            assumptions.append(f"writes: {request.writes}")
        return assumptions

    def _commit(
        self,
        request: SafetyRequest,
        estimate: EstimatedScope,
        assumptions: list[str],
        warnings: list[RegretWarning],
    ) -> IntentCommit:
        return IntentCommit(
            operation=request.tool,
            parameters=canonical_parameters(request.parameters),
            estimated_scope=estimate,
            writes=request.writes,
            assumptions=assumptions,
            potential_regrets=[warning.message for warning in warnings],
            warnings=warnings,
            details=dict(request.details) if request.details is not None else None,
        )

    def _pending_clarification(self, request: SafetyRequest) -> BeliefRecord | None:
        since = datetime.now(UTC) - CLARIFICATION_WINDOW
        for belief in self.store.list_beliefs(
            self.policy.organization, 5, request.tool, request.caller.user_id, "clarification", since
        ):
            if belief.resolved_at is None:
                return belief
        return None

    def _clarify(
        self, request: SafetyRequest, scope: ScopeRequest, missing: list[str], inventory: InventorySnapshot
    ) -> SafetyResponse:
        ambiguities = []
        chosen_types = scope.resource_types or None
        chosen_regions = scope.regions or None
        stored = inventory.inventory_counts(None, None)
        region_totals: dict[str, int] = {}
        type_totals: dict[str, int] = {}
        for count in stored:
            region_totals[count.region] = region_totals.get(count.region, 0) + count.resources
            type_totals[count.resource_type] = type_totals.get(count.resource_type, 0) + count.resources
        known_regions = sorted(region_totals, key=lambda r: (-region_totals[r], r)) or list(
            scope.default_regions
        )
        if "resource_types" in missing:
            regions_for_types = chosen_regions or known_regions or scope.default_regions
            biggest = [t for t in sorted(type_totals, key=lambda t: (-type_totals[t], t)) if type_totals[t]]
            candidates: list[list[str]] = []
            for chosen in (
                [biggest[0]] if biggest else ["ec2:instance"],
                biggest[:2] or ["ec2:instance", "rds:db"],
            ):
                if chosen not in candidates:
                    candidates.append(chosen)
            options = [self._option(types, regions_for_types, types, inventory) for types in candidates]
            options.append(self._option(["all"], regions_for_types, "all", inventory))
            ambiguities.append(
                Ambiguity(
                    parameter="resource_types",
                    question="Which resource types should I check?",
                    options=options,
                )
            )
        if "regions" in missing:
            types_for_regions = chosen_types or ["all"]
            candidates = [[region] for region in known_regions[:1]]
            if len(known_regions) > 1:
                candidates.append(known_regions[:2])
            if scope.default_regions and scope.default_regions not in candidates:
                candidates.append(list(scope.default_regions))
            options = [self._option(types_for_regions, regions, regions, inventory) for regions in candidates]
            options.append(self._option(types_for_regions, ["all"], "all", inventory))
            ambiguities.append(Ambiguity(parameter="regions", question="Which region(s)?", options=options))
        if "period" in missing:
            today = datetime.now(UTC).date()
            options = [
                ScopeOption(
                    value=[(today - timedelta(days=days)).isoformat(), today.isoformat()],
                    estimated_resources=None,
                    estimated_api_calls=request.cost_explorer.requests if request.cost_explorer else 0,
                    estimated_time=format_seconds(
                        (request.cost_explorer.requests if request.cost_explorer else 0) * 0.5
                    ),
                    estimated_cost=format_usd(request.cost_explorer.usd if request.cost_explorer else 0.0),
                    note=f"last {days} days as start_date, end_date",
                )
                for days in (7, 30, 90)
            ]
            ambiguities.append(
                Ambiguity(
                    parameter="period", question="Which time period (start_date, end_date)?", options=options
                )
            )
        if "accounts" in missing:
            ambiguities.append(
                accounts_ambiguity(
                    self.store,
                    scope.own_account,
                    scope.configured_accounts,
                    estimate_scope(
                        inventory,
                        scope.resource_types or ["all"],
                        scope.regions or scope.default_regions,
                        self.workers,
                    ),
                    self.policy.max_resources,
                )
            )
        alternatives = [ambiguity.model_dump(mode="json") for ambiguity in ambiguities]
        belief_id = self._new_belief(
            request,
            "clarification",
            {},
            [f"{name} not specified: asked rather than assumed" for name in missing],
            alternatives,
            {},
            [],
        )
        return SafetyResponse(
            safety="clarification_needed",
            clarification_needed=True,
            ambiguities=ambiguities,
            proceed="Ask the user which option they mean (do not guess), then call again with "
            + ", ".join(missing)
            + ' set explicitly (["all"] is explicit).',
            belief_id=belief_id,
        )

    def _option(
        self, types: list[str], regions: list[str], value: list[str] | str, inventory: InventorySnapshot
    ) -> ScopeOption:
        estimate = estimate_scope(inventory, types, regions, self.workers)
        reasons = []
        if estimate.resources > self.policy.max_resources or estimate.api_calls > self.policy.max_api_calls:
            reasons.append("threshold")
        if regions == ["all"] and self.policy.all_regions_require_approval:
            reasons.append("all regions")
        return ScopeOption(
            value=value,
            estimated_resources=estimate.resources if estimate.complete or estimate.resources else None,
            estimated_api_calls=estimate.api_calls,
            estimated_time=format_seconds(estimate.seconds),
            requires_approval=bool(reasons),
            note=None if estimate.complete else estimate.basis,
        )

    def _sample(self, request: SafetyRequest, inventory: InventorySnapshot) -> SampleSuggestion | None:
        """The largest set of chosen regions (smallest first) under the resource limit."""
        scope = request.scope
        if scope is None or not scope.resource_types or not scope.regions:
            return None
        types = _types(scope.resource_types)
        regions = (
            scope.regions
            if scope.regions != ["all"]
            else sorted({c.region for c in inventory.inventory_counts(types, None)})
        )
        per_region = {
            region: estimate_scope(inventory, types, [region], self.workers).resources for region in regions
        }
        chosen: list[str] = []
        total = 0
        for region in sorted(per_region, key=lambda r: (per_region[r], r)):
            if total + per_region[region] > self.policy.max_resources:
                break
            chosen.append(region)
            total += per_region[region]
        if not chosen or chosen == list(regions):
            return None
        return SampleSuggestion(
            parameters={"resource_types": scope.resource_types, "regions": chosen},
            estimated_resources=total,
            how_to_expand="Run this sample without approval first; then add regions "
            f"({', '.join(r for r in regions if r not in chosen)}) in further calls, or confirm the "
            "full scope.",
        )

    def _resources_elsewhere(self, outcome: Mapping[str, Any], inventory: InventorySnapshot) -> str:
        types = outcome.get("resource_types")
        regions = outcome.get("regions")
        if not isinstance(types, list) or not isinstance(regions, list):
            return ""
        elsewhere: dict[str, int] = {}
        for count in inventory.inventory_counts(types, None):
            if count.region not in regions and count.resources:
                elsewhere[count.region] = elsewhere.get(count.region, 0) + count.resources
        return ", ".join(f"{region} ({count})" for region, count in sorted(elsewhere.items()))

    def _new_belief(
        self,
        request: SafetyRequest,
        stage: str,
        estimate: dict[str, Any],
        assumptions: list[str],
        alternatives: list[dict[str, Any]],
        outcome: dict[str, Any],
        warnings: Sequence[RegretWarning],
    ) -> str:
        belief_id = uuid.uuid4().hex
        self.store.record_belief(
            BeliefRecord(
                belief_id=belief_id,
                created_at=datetime.now(UTC),
                organization=self.policy.organization,
                user_id=request.caller.user_id,
                client_id=request.caller.client_id,
                tool_name=request.tool,
                stage=stage,
                understood=canonical_parameters(request.parameters),
                assumptions=assumptions,
                alternatives=alternatives,
                estimate=estimate,
                warnings=[warning.model_dump(mode="json") for warning in warnings],
                outcome=outcome or None,
            )
        )
        return belief_id


def _validate_scope(scope: ScopeRequest) -> None:
    if scope.resource_types:
        resolve_resource_types(scope.resource_types)
    if scope.regions:
        region_filter(scope.regions)
    check_accounts(scope.accounts)


def _types(resource_types: Sequence[str]) -> list[str]:
    values = list(resource_types)
    if values == ["all"]:
        return list(RESOURCE_TYPE_IDS)
    return [value for value in values if value in REGISTRY]


def _jsonable(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return to_jsonable_python(value)

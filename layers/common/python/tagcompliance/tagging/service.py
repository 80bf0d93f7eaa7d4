"""The remediation use cases the gateway's tools call: plan an apply (explicit changes or from
suggestions), plan an undo (recovering an interrupted run first), and execute a confirmed plan
(journal, write, invalidate the cached scans so the next check reads AWS again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tagcompliance.errors import InvalidInputError, ResourceNotFoundError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.requests import ApplyRemediationRequest, UndoRemediationRequest
from tagcompliance.resources import parse_arn, resolve_resource_types
from tagcompliance.safety.tokens import Caller

from .journal import is_abandoned, recover, result_of, run_plan
from .models import RemediationResult
from .plan import ChangePlan, RequestedChange, parse_changes, plan_changes, plan_undo, suggested_changes
from .reads import CurrentTags, read_current_tags
from .writer import TagWriter

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


class RemediationDisabledError(InvalidInputError):
    """REMEDIATION_ENABLED is off: the tools answer this and write nothing."""


def _own_account_only(arns: Sequence[str], account_id: str) -> None:
    """Tags are written with the credentials' own permissions: the audit role other accounts are read
    through is read-only, so an ARN of another account is refused by name rather than not found."""
    others = sorted({parsed.account_id for parsed in map(parse_arn, arns)} - {"", account_id})
    if others:
        raise InvalidInputError(
            f"apply_tag_remediation writes in this server's own account ({account_id}) only; these ARNs "
            f"are in account(s) {', '.join(others)}: run the server with their credentials to remediate there"
        )


class TagRemediation:
    def __init__(self, service: ComplianceService) -> None:
        self.service = service

    def check_enabled(self) -> None:
        if not self.service.settings.remediation_enabled:
            raise RemediationDisabledError(
                "tag remediation is disabled on this server: an operator enables it with "
                "REMEDIATION_ENABLED=true (and, when deployed, the task role's tagging permissions)"
            )

    # --- reading -----------------------------------------------------------------------------

    def _fallback(self, type_id: str, region: str) -> dict[str, dict[str, str]]:
        observation = self.service.observe([type_id], [region], force_refresh=True)
        for shard in observation.failed_shards:
            raise InvalidInputError(f"could not list {type_id} in {region}: {shard.error}")
        return {resource.arn: dict(resource.tags) for resource in observation.resources}

    def current_tags(self, arns: Sequence[str]) -> tuple[dict[str, CurrentTags], list[str]]:
        return read_current_tags(self.service.clients, [parse_arn(arn) for arn in arns], self._fallback)

    # --- planning ----------------------------------------------------------------------------

    def plan_apply(
        self, request: ApplyRemediationRequest, progress: ProgressCallback | None = None
    ) -> ChangePlan:
        self.check_enabled()
        policy = self.service.loaded_policy.policy
        account_id = self.service.clients.account_id
        if (request.changes is None) == (request.from_suggestions is None):
            raise InvalidInputError("give exactly one of changes or from_suggestions")
        if request.changes is not None:
            if not request.changes:
                raise InvalidInputError("changes is empty: list at least one resource")
            changes = [RequestedChange(c.resource_arn, c.set_tags, c.remove_tags) for c in request.changes]
            parse_changes(changes)
            _own_account_only([c.resource_arn for c in changes], account_id)
            current, missing = self.current_tags([c.resource_arn for c in changes])
        else:
            source = request.from_suggestions
            assert source is not None
            types = resolve_resource_types(source.resource_types)
            regions = self.service.resolve_regions(source.regions)
            observation = self.service.observe(None, regions, True, progress)
            failed = [s for s in observation.failed_shards if s.resource_type in types]
            if failed:
                shards = ", ".join(f"{s.resource_type} in {s.region}: {s.error}" for s in failed[:5])
                raise InvalidInputError(
                    f"could not read every resource to remediate ({shards}); nothing was planned"
                )
            changes = suggested_changes(
                observation.resources, policy, types, regions, source.min_confidence, source.tags
            )
            current = {r.arn: CurrentTags(r.region, dict(r.tags)) for r in observation.resources}
            missing = []
        return plan_changes(changes, current, account_id, policy, request.allow_policy_violations, missing)

    def plan_undo(self, request: UndoRemediationRequest) -> tuple[ChangePlan, bool]:
        """The undo's plan, and whether the run undone was interrupted (recovered from its journal)."""
        self.check_enabled()
        store = self.service.store
        record = store.get_remediation(request.remediation_id)
        if record is None:
            raise ResourceNotFoundError(f"no remediation {request.remediation_id} in the journal")
        undone = store.find_undo(record.remediation_id)
        if undone is not None and (undone.status != "running" or not is_abandoned(undone)):
            raise InvalidInputError(
                f"{record.remediation_id} was already undone by {undone.remediation_id} "
                f"({undone.status}); undo that one to re-apply"
            )
        items = store.list_remediation_items(record.remediation_id)
        touched = [item.resource_arn for item in items if item.status in ("applied", "pending")]
        current, _missing = self.current_tags(touched) if touched else ({}, [])
        if record.status == "running" and not is_abandoned(record):
            raise InvalidInputError(f"{record.remediation_id} is still running; undo it once it has finished")
        if any(item.status == "pending" for item in items):  # died or stopped mid-run: reconcile first
            items = recover(store, record, items, current)
        recovered = record.status != "completed"  # interrupted: reconciled now or by an earlier call
        return plan_undo(items, current, request.force, record.remediation_id), recovered

    # --- writing -----------------------------------------------------------------------------

    def execute(self, plan: ChangePlan, caller: Caller, recovered: bool = False) -> RemediationResult:
        self.check_enabled()
        writer = TagWriter(self.service.clients)
        try:
            record, items = run_plan(
                self.service.store,
                writer,
                plan,
                user_id=caller.user_id,
                client_id=caller.client_id,
                account_id=self.service.clients.account_id,
            )
        finally:
            # Even a run stopped half-way changed tags: the cached scans no longer show AWS.
            if writer.stats.requests:
                self.service.note_tag_writes()
        return result_of(
            record,
            items,
            write_requests=writer.stats.requests,
            cache_invalidated=writer.stats.requests > 0,
            recovered=recovered,
        )

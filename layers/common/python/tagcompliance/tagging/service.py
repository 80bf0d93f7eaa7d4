"""The remediation use cases the gateway's tools call: plan an apply (explicit changes or from
suggestions), plan an undo (recovering an interrupted run first), and execute a confirmed plan
(journal, write, invalidate the cached scans so the next check reads AWS again).

Each resource is read and written in the account its ARN names: the credentials' own with the
server's credentials, another through ``AssumeRole`` of ``REMEDIATION_ROLE_NAME`` there (``clients_for``).
An account whose role cannot be assumed has its changes refused by name with the reason (journaled as
failed); the other accounts' changes go on."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tagcompliance.aws import AssumeRoleError, AwsClients
from tagcompliance.errors import InvalidInputError, ResourceNotFoundError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.requests import ApplyRemediationRequest, UndoRemediationRequest
from tagcompliance.resources import parse_arn, resolve_resource_types
from tagcompliance.safety.tokens import Caller

from .journal import is_abandoned, recover, result_of, run_plan
from .models import RemediationResult
from .plan import ChangePlan, RequestedChange, parse_changes, plan_changes, plan_undo, suggested_changes
from .reads import CurrentTags, TagReadError, read_current_tags
from .writer import TagWriter

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService


class RemediationDisabledError(InvalidInputError):
    """REMEDIATION_ENABLED is off: the tools answer this and write nothing."""


# What a member account's CloudTrail shows for the remediation role's sessions.
REMEDIATION_SESSION_NAME = "tag-compliance-remediation"


class TagRemediation:
    def __init__(self, service: ComplianceService) -> None:
        self.service = service

    def check_enabled(self) -> None:
        if not self.service.settings.remediation_enabled:
            raise RemediationDisabledError(
                "tag remediation is disabled on this server: an operator enables it with "
                "REMEDIATION_ENABLED=true (and, when deployed, the task role's tagging permissions)"
            )

    # --- accounts and reading ------------------------------------------------------------------

    def account_of(self, arn: str) -> str:
        """The account an ARN's resource is in. An S3 bucket's ARN names none: the bucket is taken as
        the credentials' own, as everywhere else in the product (scans list an account's own buckets)."""
        return parse_arn(arn).account_id or self.service.clients.account_id

    def clients_for(self, account_id: str) -> AwsClients:
        """Clients that read and write tags in ``account_id``: the server's own credentials in its own
        account; elsewhere ``AssumeRole`` of ``REMEDIATION_ROLE_NAME`` there (the audit role is
        read-only). Raises ``AssumeRoleError`` when that role cannot be assumed."""
        return self.service.clients.for_account(
            account_id, self.service.settings.remediation_role_name, REMEDIATION_SESSION_NAME
        )

    def _fallback(self, account_id: str, type_id: str, region: str) -> dict[str, dict[str, str]]:
        # A type with no per-resource tag reader is found by a scan of its type and region in the
        # resource's account: an audit (its role, in another account), as any scan is.
        observation = self.service.observe([type_id], [region], force_refresh=True, accounts=[account_id])
        for shard in observation.failed_shards:
            raise InvalidInputError(f"could not list {type_id} in {account_id} {region}: {shard.error}")
        return {resource.arn: dict(resource.tags) for resource in observation.resources}

    def current_tags(self, arns: Sequence[str]) -> tuple[dict[str, CurrentTags], list[str], dict[str, str]]:
        """(found, not found ARNs, refused accounts -> why): each ARN read in its own account with the
        clients that would write it, so the plan's before-tags are what the writer sees."""
        by_account: dict[str, list[str]] = defaultdict(list)
        for arn in arns:
            by_account[self.account_of(arn)].append(arn)
        found: dict[str, CurrentTags] = {}
        missing: list[str] = []
        refused: dict[str, str] = {}
        for account_id, account_arns in sorted(by_account.items()):
            try:
                clients = self.clients_for(account_id)
            except AssumeRoleError as error:
                refused[account_id] = str(error)
                continue
            try:
                read, absent = read_current_tags(
                    clients,
                    [parse_arn(arn) for arn in account_arns],
                    lambda type_id, region, account=account_id: self._fallback(account, type_id, region),
                )
            except TagReadError as error:  # nothing is planned on a guess; say which account refused
                raise TagReadError(f"account {account_id}: {error}") from None
            found.update(read)
            missing += absent
        return found, missing, refused

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
            current, missing, refused = self.current_tags([c.resource_arn for c in changes])
        else:
            source = request.from_suggestions
            assert source is not None
            types = resolve_resource_types(source.resource_types)
            regions = self.service.resolve_regions(source.regions)
            # The suggestions' population: every type in the accounts asked about (their audit role).
            observation = self.service.observe(None, regions, True, progress, accounts=source.accounts)
            failed = [s for s in observation.failed_shards if s.resource_type in types]
            if failed:
                shards = ", ".join(
                    f"{s.resource_type} in {s.account_id or account_id} {s.region}: {s.error}"
                    for s in failed[:5]
                )
                raise InvalidInputError(
                    f"could not read every resource to remediate ({shards}); nothing was planned"
                )
            changes = suggested_changes(
                observation.resources, policy, types, regions, source.min_confidence, source.tags
            )
            # A bucket's ARN names no account, so it would be written as the credentials' own: one
            # read in another account is refused by name rather than written with the wrong credentials.
            read_in = {r.arn: r.account_id for r in observation.resources}
            elsewhere = [
                c.resource_arn for c in changes if read_in[c.resource_arn] != self.account_of(c.resource_arn)
            ]
            if elsewhere:
                raise InvalidInputError(
                    f"{len(elsewhere)} suggested change(s) are to resources whose ARN names no account, read "
                    f"in another account ({', '.join(elsewhere[:5])}): they can only be remediated in their "
                    "own account's server; leave that account or their type out"
                )
            # The fresh scan read the credentials' own account with the credentials that write there;
            # another account was read through its (read-only) audit role, so its changed resources
            # are read again with the remediation role that writes them (which also says whether it
            # can be assumed at all).
            current = {
                r.arn: CurrentTags(r.region, dict(r.tags))
                for r in observation.resources
                if self.account_of(r.arn) == account_id
            }
            others = [c.resource_arn for c in changes if self.account_of(c.resource_arn) != account_id]
            read, missing, refused = self.current_tags(others) if others else ({}, [], {})
            current.update(read)
        return plan_changes(
            changes, current, account_id, policy, request.allow_policy_violations, missing, refused
        )

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
        current, _missing, refused = self.current_tags(touched) if touched else ({}, [], {})
        if record.status == "running" and not is_abandoned(record):
            raise InvalidInputError(f"{record.remediation_id} is still running; undo it once it has finished")
        pending = [item for item in items if item.status == "pending"]
        unreadable = sorted({self.account_of(item.resource_arn) for item in pending} & set(refused))
        if unreadable:  # a pending item is reconciled from its tags now: unknown ones are not guessed
            reasons = "; ".join(f"account {account}: {refused[account]}" for account in unreadable)
            raise InvalidInputError(
                f"{record.remediation_id} was interrupted and its resources in {', '.join(unreadable)} "
                f"cannot be read to reconcile it ({reasons}); nothing was changed"
            )
        if pending:  # died or stopped mid-run: reconcile first
            items = recover(store, record, items, current)
        recovered = record.status != "completed"  # interrupted: reconciled now or by an earlier call
        plan = plan_undo(
            items, current, request.force, record.remediation_id, self.service.clients.account_id, refused
        )
        return plan, recovered

    # --- writing -----------------------------------------------------------------------------

    def execute(self, plan: ChangePlan, caller: Caller, recovered: bool = False) -> RemediationResult:
        self.check_enabled()
        writer = TagWriter(self.clients_for)
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

"""Running a plan with its journal, and recovering a run that died.

The journal of a run (one row per resource: before-tags, the change, after-tags, ``pending``) is
stored in one transaction BEFORE the first write; if it cannot be stored, nothing is written. Each
write request's outcomes are stored as it returns; if that fails, the run stops there. A run whose
process died leaves ``pending`` items: ``recover`` compares each with the resource's tags now
(after-tags: applied; before-tags: not written; anything else: unknown) and closes the run.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tagcompliance.store.remediations import (
    ItemOutcome,
    ItemStatus,
    RemediationItemRecord,
    RemediationRecord,
    RemediationStore,
)

from .models import RemediationResult, ResourceOutcome
from .plan import ChangePlan, PlannedChange
from .reads import CurrentTags
from .writer import TagWriter

logger = logging.getLogger(__name__)

# A run on another host with no journal update for this long is taken as dead.
STALE_AFTER = timedelta(minutes=15)


def new_remediation_id() -> str:
    return "rem_" + uuid.uuid4().hex


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def run_plan(
    store: RemediationStore,
    writer: TagWriter,
    plan: ChangePlan,
    *,
    user_id: str,
    client_id: str | None,
    account_id: str,
    remediation_id: str | None = None,
    after_journal: Callable[[str], None] | None = None,
) -> tuple[RemediationRecord, list[RemediationItemRecord]]:
    """Journal, write, record outcomes; returns the closed run and its items. ``after_journal`` is
    called with the id once the journal is stored (the gateway reports it; tests stop there)."""
    remediation_id = remediation_id or new_remediation_id()
    now = _now()
    items = [
        RemediationItemRecord(
            remediation_id=remediation_id,
            resource_arn=change.resource_arn,
            resource_type=change.resource_type,
            region=change.region,
            before_tags=dict(change.before),
            set_tags=dict(change.set_tags),
            remove_keys=list(change.remove_keys),
            after_tags=change.after,
            status=_initial_status(change),
            error=change.skipped,
            updated_at=now,
        )
        for change in plan.changes
    ]
    record = RemediationRecord(
        remediation_id=remediation_id,
        kind="undo" if plan.undoes else "apply",
        undoes=plan.undoes,
        status="running",
        user_id=user_id,
        client_id=client_id,
        account_id=account_id,
        owner=this_owner(),
        created_at=now,
        updated_at=now,
        finished_at=None,
        summary={"resources": len(items), "change_set_digest": plan.digest()},
    )
    store.create_remediation(record, items)  # StoreError here: nothing has been written
    if after_journal is not None:
        after_journal(remediation_id)
    outcomes: dict[str, ItemOutcome] = {}

    def journal(results: list[tuple[str, str | None]]) -> None:
        batch = [ItemOutcome(arn, "applied" if error is None else "failed", error) for arn, error in results]
        store.record_item_outcomes(remediation_id, batch, _now())  # StoreError: stop writing
        outcomes.update({outcome.resource_arn: outcome for outcome in batch})

    try:
        writer.write(plan.changes, journal)
    except Exception as error:
        # Stopped half-way (the journal could not follow, or worse): close the run as interrupted
        # if the store lets us, so that undo reconciles its pending items with AWS at once.
        try:
            store.finish_remediation(
                remediation_id, "interrupted", {**record.summary, "stopped_by": str(error)[:500]}, _now()
            )
        except Exception:
            logger.exception("could not mark remediation %s interrupted", remediation_id)
        raise
    closed = [
        replace(item, status=outcomes[item.resource_arn].status, error=outcomes[item.resource_arn].error)
        if item.resource_arn in outcomes
        else item
        for item in items
    ]
    summary = {**record.summary, **summarise(closed), "write_requests": writer.stats.requests}
    finished = _now()
    store.finish_remediation(remediation_id, "completed", summary, finished)
    return replace(record, status="completed", summary=summary, finished_at=finished), closed


def _initial_status(change: PlannedChange) -> ItemStatus:
    if change.writes:
        return "pending"
    if change.refused:  # its account's role could not be assumed: a failure known before any write
        return "failed"
    return "skipped" if change.skipped else "unchanged"


def summarise(items: Sequence[RemediationItemRecord]) -> dict[str, object]:
    applied = [item for item in items if item.status == "applied"]
    return {
        "by_status": dict(sorted(Counter(item.status for item in items).items())),
        "applied_by_type": dict(sorted(Counter(item.resource_type for item in applied).items())),
        "applied_by_region": dict(sorted(Counter(item.region for item in applied).items())),
    }


def is_abandoned(record: RemediationRecord, now: datetime | None = None) -> bool:
    """A running run whose process is gone: on this host, no such process; elsewhere, silent too long."""
    if record.status != "running":
        return False
    host, _, pid = record.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return (now or _now()) - record.updated_at > STALE_AFTER


def recover(
    store: RemediationStore,
    record: RemediationRecord,
    items: Sequence[RemediationItemRecord],
    current: Mapping[str, CurrentTags],
) -> list[RemediationItemRecord]:
    """Close an abandoned run: each pending item from the resource's tags now."""
    outcomes = []
    for item in items:
        if item.status != "pending":
            continue
        now = current.get(item.resource_arn)
        if now is not None and now.tags == item.after_tags:
            outcomes.append(
                ItemOutcome(item.resource_arn, "applied", "written before the run was interrupted")
            )
        elif now is not None and now.tags == item.before_tags:
            outcomes.append(ItemOutcome(item.resource_arn, "failed", "not written: the run was interrupted"))
        else:
            outcomes.append(
                ItemOutcome(
                    item.resource_arn,
                    "unknown",
                    "the run was interrupted and the tags are neither the before nor the after tags"
                    if now is not None
                    else "the run was interrupted and the resource no longer exists",
                )
            )
    at = _now()
    store.record_item_outcomes(record.remediation_id, outcomes, at)
    by_arn = {outcome.resource_arn: outcome for outcome in outcomes}
    closed = [
        replace(item, status=by_arn[item.resource_arn].status, error=by_arn[item.resource_arn].error)
        if item.resource_arn in by_arn
        else item
        for item in items
    ]
    store.finish_remediation(
        record.remediation_id,
        "interrupted",
        {**record.summary, **summarise(closed), "recovered_at": at.isoformat()},
        at,
    )
    return closed


def result_of(
    record: RemediationRecord,
    items: Sequence[RemediationItemRecord],
    *,
    write_requests: int,
    cache_invalidated: bool,
    recovered: bool = False,
) -> RemediationResult:
    counts = Counter(item.status for item in items)
    status = record.status if record.status in ("completed", "interrupted", "running") else "completed"
    return RemediationResult(
        remediation_id=record.remediation_id,
        kind="undo" if record.kind == "undo" else "apply",
        undoes=record.undoes,
        status=status,  # type: ignore[arg-type]
        applied=counts["applied"],
        unchanged=counts["unchanged"],
        failed=counts["failed"] + counts["unknown"],
        skipped=counts["skipped"],
        pending=counts["pending"],
        resources=[
            ResourceOutcome(
                resource_arn=item.resource_arn,
                resource_type=item.resource_type,
                region=item.region,
                status=item.status,  # type: ignore[arg-type]
                error=item.error,
                before_tags=item.before_tags,
                after_tags=item.after_tags,
            )
            for item in items
        ],
        write_requests=write_requests,
        recovered=recovered,
        cache_invalidated=cache_invalidated,
        undo=f'undo_tag_remediation(remediation_id="{record.remediation_id}")' if counts["applied"] else None,
    )

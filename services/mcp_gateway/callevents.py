"""One log event per tool call, which is also the call's CloudWatch metrics (EMF).

``CallLogMiddleware`` (``runtime.py``) knows how each call ended; at its end it calls
``emit_call_event`` with the call log row it writes, the structured answer and the notes the code
below it left (``tagcompliance.observability.note``: a refused confirmation token or scope, a
failure's AWS request id). The event's correlation fields (session, JSON-RPC id, tool, user, OAuth
client, correlation id) come from the log context the middleware binds for the call.

The line is an EMF document only with ``LOG_FORMAT=json`` (deployed): text logs are for a person.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from tagcompliance.aws import aws_request_id
from tagcompliance.observability import note
from tagcompliance.observability.metrics import CallOutcome, emf_fields
from tagcompliance.safety.estimates import COST_EXPLORER_USD_PER_REQUEST
from tagcompliance.safety.tokens import ConfirmationError
from tagcompliance.store import CallRecord

logger = logging.getLogger("tagcompliance.gateway.calls")
CALL_EVENT_MESSAGE = "tool call"
_SAFETY_OUTCOMES: dict[str, CallOutcome] = {
    "clarification_needed": "clarification",
    "intent_commit": "intent_commit",
    "dry_run": "dry_run",
}
# Where a result states how many resources it covered, by the first name it has.
_RESOURCE_FIELDS = ("total_resources", "resources_scanned", "total_untagged", "row_count")


def note_failure(error: BaseException) -> None:
    """What a failed call's event should say: the error class, AWS's request id, a refusal."""
    note(
        error_type=type(error).__name__,
        aws_request_id=aws_request_id(error),
        refused="confirmation_token" if isinstance(error, ConfirmationError) else None,
    )


def call_outcome(status: str, structured: Mapping[str, Any], notes: Mapping[str, Any]) -> CallOutcome:
    if notes.get("refused"):
        return "refused"
    if status != "success":
        return "error"
    return _SAFETY_OUTCOMES.get(str(structured.get("safety")), "answered")


def result_fields(structured: Mapping[str, Any]) -> dict[str, Any]:
    """The figures an operator asks about, from a tool's structured answer (absent ones left out)."""
    fields: dict[str, Any] = {}
    for name in _RESOURCE_FIELDS:
        if isinstance(structured.get(name), int):
            fields["resources"] = structured[name]
            break
    if isinstance(structured.get("compliance_score"), int | float):
        fields["score"] = structured["compliance_score"]
    failed = structured.get("failed_shards")
    if isinstance(failed, list | int):
        fields["failed_shards"] = len(failed) if isinstance(failed, list) else failed
    job = structured.get("job")
    run_id = structured.get("run_id") or (job.get("run_id") if isinstance(job, Mapping) else None)
    for name, value in (("snapshot_id", structured.get("snapshot_id")), ("run_id", run_id)):
        if isinstance(value, str):
            fields[name] = value
    return fields


def emit_call_event(
    record: CallRecord, structured: Mapping[str, Any], notes: Mapping[str, Any], *, emf: bool
) -> CallOutcome:
    """Log the call's one event (an EMF document with ``emf``); returns its outcome."""
    outcome = call_outcome(record.status, structured, notes)
    requests = structured.get("cost_explorer_requests")
    requests = requests if isinstance(requests, int) and not structured.get("cached") else 0
    dollars = round(requests * COST_EXPLORER_USD_PER_REQUEST, 4)
    fields: dict[str, Any] = {
        "event": "tool_call",
        "tool": record.tool_name,
        "outcome": outcome,
        "duration_ms": record.duration_ms,
        **result_fields(structured),
        "cost_explorer_requests": requests,
        "cost_explorer_dollars": dollars,
        **{name: notes[name] for name in ("error_type", "refused", "aws_request_id") if name in notes},
    }
    if record.error_message:
        fields["error"] = record.error_message
    if emf:
        fields.update(emf_fields(int(time.time() * 1000), outcome, record.duration_ms, requests, dollars))
    level = logging.WARNING if outcome in ("error", "refused") else logging.INFO
    # The message reads on its own in text logs; Logs Insights filters on the fields (event = "tool_call").
    message = f"{CALL_EVENT_MESSAGE} {record.tool_name}: {outcome} in {record.duration_ms} ms"
    logger.log(level, message, extra=fields)
    return outcome

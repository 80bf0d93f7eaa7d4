"""Paging shared by the queries: opaque cursors, the page's starting snapshot and severity filters."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from tagcompliance.errors import InvalidInputError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.scope import Scope
from tagcompliance.snapshots import Observation

if TYPE_CHECKING:
    from tagcompliance.service import ComplianceService

Severity = Literal["all", "errors_only", "warnings_only"]


def encode_cursor(payload: dict[str, object]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> dict[str, object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInputError(
            "cursor is not valid: pass the next_cursor value of a previous answer"
        ) from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise InvalidInputError(f"cursor does not belong to {kind}: pass the next_cursor this tool returned")
    return payload


def severity_filter(severity: Severity) -> set[str] | None:
    return {"all": None, "errors_only": {"error"}, "warnings_only": {"warning"}}[severity]


def page_start(
    service: ComplianceService,
    kind: str,
    cursor: str | None,
    resource_types: Sequence[str] | None,
    regions: Sequence[str] | None,
    force_refresh: bool,
    progress: ProgressCallback | None,
    scope: Scope | None = None,
    accounts: Sequence[str] | None = None,
) -> tuple[Observation, int, dict[str, object]]:
    """The observation and offset a page starts from: the cursor's snapshot, or the scope's
    (``scope``: the requested one, when the caller resolved it already)."""
    if not cursor:
        scope = scope or service.scopes.resolve(resource_types, regions, accounts)
        return service.observe_scope(scope, force_refresh, progress), 0, {}
    payload = decode_cursor(cursor, kind)
    offset = payload.get("o", 0)
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInputError("cursor is not valid: pass the next_cursor value of a previous answer")
    return service.snapshot_for_cursor(payload.get("s")), offset, payload

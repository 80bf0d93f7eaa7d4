"""Single-use confirmation tokens bound to an intent commit's exact parameters and to the caller.

Only the SHA-256 hash of a token is stored. Redeeming checks, in order: the token exists, it has
not been used, it has not expired, it was issued to this caller, for this operation, with exactly
these parameters; then it is consumed atomically (one of any number of concurrent redeemers wins).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python

from tagcompliance.errors import InvalidInputError
from tagcompliance.store.base import ConfirmationRecord, SafetyStore


class ConfirmationError(InvalidInputError):
    """A confirmation token was refused; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    client_id: str | None = None

    def describe(self) -> str:
        return self.user_id if self.client_id is None else f"{self.user_id} (client {self.client_id})"


def canonical_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values, without the safety controls themselves."""
    return {
        name: to_jsonable_python(value)
        for name, value in sorted(parameters.items())
        if name != "confirmation_token"
    }


def digest_parameters(parameters: dict[str, Any]) -> str:
    text = json.dumps(canonical_parameters(parameters), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Confirmations:
    def __init__(self, store: SafetyStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.clock = clock

    def issue(
        self,
        organization: str,
        caller: Caller,
        operation: str,
        parameters: dict[str, Any],
        estimate: dict[str, Any],
        ttl_seconds: int,
        belief_id: str | None = None,
    ) -> tuple[str, datetime]:
        token = "ct_" + secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + timedelta(seconds=ttl_seconds)
        self.store.save_confirmation(
            ConfirmationRecord(
                token_hash=hash_token(token),
                organization=organization,
                user_id=caller.user_id,
                client_id=caller.client_id,
                operation=operation,
                parameters=canonical_parameters(parameters),
                parameters_digest=digest_parameters(parameters),
                estimate=estimate,
                created_at=now,
                expires_at=expires_at,
                belief_id=belief_id,
            )
        )
        return token, expires_at

    def redeem(
        self, token: str, organization: str, caller: Caller, operation: str, parameters: dict[str, Any]
    ) -> ConfirmationRecord:
        if not isinstance(token, str) or not token.startswith("ct_") or len(token) > 200:
            raise ConfirmationError("confirmation_token is not a token this server issued")
        record = self.store.get_confirmation(hash_token(token))
        if record is None:
            raise ConfirmationError(
                "confirmation_token is unknown: it was not issued by this server (or was mistyped); "
                "call without it to get a new intent commit"
            )
        now = self.clock()
        if record.used_at is not None:
            raise ConfirmationError(
                f"confirmation_token was already used at {record.used_at.isoformat(timespec='seconds')}: "
                "tokens are single-use; call without it to get a new intent commit"
            )
        if record.expires_at <= now:
            raise ConfirmationError(
                f"confirmation_token expired at {record.expires_at.isoformat(timespec='seconds')}; "
                "call without it to get a new intent commit"
            )
        if (
            record.user_id != caller.user_id
            or record.client_id != caller.client_id
            or (record.organization != organization)
        ):
            raise ConfirmationError(
                "confirmation_token was issued to another caller; only the caller it was issued to can use it"
            )
        if record.operation != operation:
            raise ConfirmationError(f"confirmation_token was issued for {record.operation}, not {operation}")
        if record.parameters_digest != digest_parameters(parameters):
            wanted = canonical_parameters(parameters)
            changed = sorted(
                name
                for name in set(wanted) | set(record.parameters)
                if wanted.get(name) != record.parameters.get(name)
            )
            raise ConfirmationError(
                f"parameters differ from the intent commit ({', '.join(changed) or 'values'} changed): "
                "the token confirms exactly the committed parameters; call without it to commit the new ones"
            )
        if not self.store.consume_confirmation(record.token_hash, now):
            raise ConfirmationError(
                "confirmation_token was used or expired just now; call without it to get a new intent commit"
            )
        return record

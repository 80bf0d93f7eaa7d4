"""The cache port and its two adapters: Redis when ``REDIS_URL`` is set, in-memory otherwise."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol


class Cache(Protocol):
    backend: str

    def get(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or None when absent or expired."""
        ...

    def set(self, key: str, value: Any, ttl_seconds: int) -> None:
        """Store a JSON-serialisable value; ``ttl_seconds`` <= 0 stores nothing."""
        ...

    def delete(self, key: str) -> None: ...

    def ping(self) -> bool: ...


def scan_cache_key(kind: str, account_id: str, regions: Iterable[str], resource_types: Iterable[str],
                   policy_digest: str, *extra: str) -> str:
    """A key that changes whenever the account, scope or policy changes."""
    scope = json.dumps(
        [account_id, sorted(set(regions)), sorted(set(resource_types)), policy_digest, list(extra)],
        separators=(",", ":"),
    )
    return f"tagcompliance:{kind}:{hashlib.sha256(scope.encode()).hexdigest()[:32]}"

"""The scope of a question: which account, regions and resource types it covers, resolved once.

``ScopeResolver.resolve`` turns what a caller asked for (types and regions, either omitted, or
``["all"]``) into a ``Scope``: registry type ids, concrete region names and the credentials'
account. ``["all"]`` regions means the account's enabled regions, asked of EC2 at most once an hour
(``ENABLED_REGIONS_TTL_SECONDS``). A ``Scope`` is what the large-scan job check, ``observe``, the
cost gap, drift and scheduled audits share, and ``cache_key`` is the one way to key its answers.

The safety gate's estimate of the call's scan travels to the work it guards in ``GATE_ESTIMATE``
(a context variable, set for the duration of the guarded work), so the scan is estimated once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from .aws import AwsClients
from .cache import scan_cache_key
from .errors import InvalidInputError
from .resources import region_filter, resolve_resource_types
from .safety.models import EstimatedScope

MAX_REGIONS = 40
ENABLED_REGIONS_TTL_SECONDS = 3600.0  # an account's enabled regions change rarely (opt-in takes minutes)

# The safety gate's estimate of the guarded call's scan; None outside a guarded call or when the
# gate did not estimate (safety off): the work then estimates for itself.
GATE_ESTIMATE: ContextVar[EstimatedScope | None] = ContextVar("gate_estimate", default=None)


@dataclass(frozen=True, slots=True)
class Scope:
    """A resolved scope: the account, region names and registry type ids, in request order."""

    account_id: str
    regions: list[str]
    resource_types: list[str]

    def cache_key(self, kind: str, policy_digest: str, *extra: str) -> str:
        """The key of this scope's ``kind`` of answer (a scan, a cost gap) under one policy."""
        return scan_cache_key(kind, self.account_id, self.regions, self.resource_types, policy_digest, *extra)


class ScopeResolver:
    """Resolves requested scopes for one account; safe to call from several threads."""

    def __init__(
        self,
        clients: AwsClients,
        default_regions: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.default_regions = list(default_regions)
        self._clock = clock
        self._lock = threading.Lock()
        self._enabled: tuple[float, list[str]] | None = None

    def enabled_regions(self) -> list[str]:
        """The account's enabled regions, asked of AWS at most once per ``ENABLED_REGIONS_TTL_SECONDS``."""
        with self._lock:
            now = self._clock()
            if self._enabled is None or now - self._enabled[0] >= ENABLED_REGIONS_TTL_SECONDS:
                self._enabled = (now, self.clients.enabled_regions())
            return list(self._enabled[1])

    def regions(self, regions: Sequence[str] | None) -> list[str]:
        """Region names for a request: the defaults when omitted, the enabled ones for ``["all"]``."""
        values = list(regions or [])
        if not values:
            return list(self.default_regions)
        if values == ["all"]:
            return self.enabled_regions()
        values = region_filter(values) or []
        if len(values) > MAX_REGIONS:
            raise InvalidInputError(f"at most {MAX_REGIONS} regions per call, got {len(values)}")
        return values

    def resolve(self, resource_types: Sequence[str] | None, regions: Sequence[str] | None) -> Scope:
        type_ids = resolve_resource_types(resource_types)  # types are checked first, as always
        return Scope(self.clients.account_id, self.regions(regions), type_ids)

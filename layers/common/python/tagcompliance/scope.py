"""The scope of a question: which accounts, regions and resource types it covers, resolved once.

``ScopeResolver.resolve`` turns what a caller asked for (types, regions and accounts, each omitted,
or ``["all"]``) into a ``Scope``: registry type ids, concrete region names, the credentials' account
and the accounts asked about (omitted: the credentials' own; ``["all"]``: the configured accounts,
``AUDIT_ACCOUNTS`` or the organization's, asked of Organizations at most once an hour).
``["all"]`` regions means the account's enabled regions, asked of EC2 at most once an hour
(``ENABLED_REGIONS_TTL_SECONDS``). A ``Scope`` is what the large-scan job check, ``observe``, the
cost gap, drift and scheduled audits share, and ``cache_key`` is the one way to key its answers.

The safety gate's estimate of the call's scan travels to the work it guards in ``GATE_ESTIMATE``
(a context variable, set for the duration of the guarded work), so the scan is estimated once.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from .aws import AwsClients, describe_aws_error
from .cache import scan_cache_key
from .errors import InvalidInputError, TagComplianceError
from .resources import region_filter, resolve_resource_types
from .safety.models import EstimatedScope

MAX_REGIONS = 40
MAX_ACCOUNTS = 1000
ACCOUNT_ID = re.compile(r"^\d{12}$")
ENABLED_REGIONS_TTL_SECONDS = 3600.0  # an account's enabled regions change rarely (opt-in takes minutes)

# The safety gate's estimate of the guarded call's scan; None outside a guarded call or when the
# gate did not estimate (safety off): the work then estimates for itself.
GATE_ESTIMATE: ContextVar[EstimatedScope | None] = ContextVar("gate_estimate", default=None)


def check_accounts(accounts: Sequence[str] | None) -> list[str]:
    """The requested account ids, sorted and checked ([] when omitted; ``["all"]`` as is), or an
    ``InvalidInputError`` naming the values that are not 12-digit ids."""
    values = list(accounts or [])
    if values == ["all"]:
        return values
    bad = [value for value in values if not ACCOUNT_ID.match(value)]
    if bad:
        shown = ", ".join(repr(value) for value in bad[:5])
        raise InvalidInputError(
            f'accounts must be 12-digit AWS account ids (e.g. "123456789012"), or ["all"] alone for '
            f"the configured accounts; not valid: {shown}"
        )
    if len(set(values)) > MAX_ACCOUNTS:
        raise InvalidInputError(f"at most {MAX_ACCOUNTS} accounts per call, got {len(set(values))}")
    return sorted(set(values))


def organization_accounts(clients: AwsClients) -> list[str]:
    """The active accounts of the organization (Organizations ``ListAccounts``), sorted."""
    paginator = clients.client("organizations").get_paginator("list_accounts")
    try:
        return sorted(
            account["Id"]
            for page in paginator.paginate()
            for account in page["Accounts"]
            if account.get("Status", "ACTIVE") == "ACTIVE"
        )
    except Exception as error:
        raise TagComplianceError(
            f"cannot list the organization's accounts (AUDIT_ACCOUNTS_FROM_ORGANIZATIONS): "
            f"{describe_aws_error(error)}"
        ) from None


def management_account(clients: AwsClients) -> str | None:
    """The organization's management (payer) account, or None when the credentials' account is in no
    organization or may not ask (a member may always describe its organization; AWS says so)."""
    try:
        return str(clients.client("organizations").describe_organization()["Organization"]["MasterAccountId"])
    except Exception:  # not in an organization, or denied: treated as a standalone account
        return None


def configured_accounts(from_organizations: bool, listed: Sequence[str], clients: AwsClients) -> list[str]:
    """The accounts configured for audits: the organization's, or the listed ones (may be empty)."""
    if from_organizations:
        return organization_accounts(clients)
    return list(dict.fromkeys(listed))


@dataclass(frozen=True, slots=True)
class Scope:
    """A resolved scope: the credentials' account, region names and registry type ids, in request
    order, and the accounts asked about (sorted; empty: the credentials' own)."""

    account_id: str
    regions: list[str]
    resource_types: list[str]
    accounts: list[str] = field(default_factory=list)

    @property
    def audited_accounts(self) -> list[str]:
        """The accounts whose resources the scope covers, sorted."""
        return sorted(set(self.accounts)) or [self.account_id]

    @property
    def other_accounts(self) -> bool:
        """Whether the scope reaches beyond the credentials' own account (AssumeRole)."""
        return self.audited_accounts != [self.account_id]

    def alone(self) -> Scope:
        """This scope over the credentials' own account only."""
        return Scope(self.account_id, self.regions, self.resource_types)

    def cache_key(self, kind: str, policy_digest: str, *extra: str) -> str:
        """The key of this scope's ``kind`` of answer (a scan, a cost gap) under one policy."""
        # The credentials' own account alone keeps the key it always had (cached answers stay valid).
        accounts = ("accounts=" + ",".join(self.audited_accounts),) if self.other_accounts else ()
        return scan_cache_key(
            kind, self.account_id, self.regions, self.resource_types, policy_digest, *accounts, *extra
        )


class ScopeResolver:
    """Resolves requested scopes for one set of credentials; safe to call from several threads.

    ``configured``: the configured accounts (``configured_accounts`` bound to the settings); what
    ``accounts=["all"]`` means, and what the safety gate offers when ``accounts`` is omitted."""

    def __init__(
        self,
        clients: AwsClients,
        default_regions: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
        configured: Callable[[], list[str]] | None = None,
    ) -> None:
        self.clients = clients
        self.default_regions = list(default_regions)
        self._clock = clock
        self._lock = threading.Lock()
        self._enabled: tuple[float, list[str]] | None = None
        self._configured_source = configured
        self._configured: tuple[float, list[str]] | None = None
        self._management: tuple[float, bool] | None = None

    def configured_accounts(self) -> list[str]:
        """The configured accounts, sorted (Organizations asked at most once per
        ``ENABLED_REGIONS_TTL_SECONDS``: accounts join an organization rarely); empty when none are."""
        if self._configured_source is None:
            return []
        with self._lock:
            now = self._clock()
            if self._configured is None or now - self._configured[0] >= ENABLED_REGIONS_TTL_SECONDS:
                self._configured = (now, sorted(set(self._configured_source())))
            return list(self._configured[1])

    def is_management_account(self) -> bool:
        """Whether the credentials' account is its organization's management (payer) account
        (asked of Organizations at most once per ``ENABLED_REGIONS_TTL_SECONDS``)."""
        with self._lock:
            now = self._clock()
            if self._management is None or now - self._management[0] >= ENABLED_REGIONS_TTL_SECONDS:
                self._management = (now, management_account(self.clients) == self.clients.account_id)
            return self._management[1]

    def accounts(self, accounts: Sequence[str] | None) -> list[str]:
        """Account ids for a request, sorted: the credentials' own when omitted, the configured ones
        for ``["all"]`` (the credentials' own when none are configured)."""
        values = check_accounts(accounts)
        if not values:
            return [self.clients.account_id]
        if values == ["all"]:
            return self.configured_accounts() or [self.clients.account_id]
        return values

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

    def resolve(
        self,
        resource_types: Sequence[str] | None,
        regions: Sequence[str] | None,
        accounts: Sequence[str] | None = None,
    ) -> Scope:
        type_ids = resolve_resource_types(resource_types)  # types are checked first, as always
        chosen = self.accounts(accounts)
        own = self.clients.account_id
        return Scope(own, self.regions(regions), type_ids, [] if chosen == [own] else chosen)

"""Accounts in the safety decision: which accounts to ask about, and a scan's estimate over several.

When accounts other than the credentials' own are configured (``AUDIT_ACCOUNTS`` or the
organization's) and a call names none, ``accounts_ambiguity`` is the clarification's question: this
account, all of them, or one, each sized from the newest stored snapshot that read it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .estimates import ScopeEstimate, SnapshotSource, account_sizes
from .models import Ambiguity, ScopeOption, format_seconds

MAX_LISTED_ACCOUNTS = 10  # single-account options offered (beyond "this one" and "all")


def accounts_ambiguity(
    store: SnapshotSource,
    own: str | None,
    configured_accounts: Sequence[str],
    per_account: ScopeEstimate,
    max_resources: int,
) -> Ambiguity:
    """This account, all configured accounts, or one of them: resources from each account's newest
    stored snapshot, requests and time from the scan's estimate (``per_account``) times the accounts."""
    configured = sorted(set(configured_accounts))
    sizes = account_sizes(store, sorted({*configured, *([own] if own else [])}))

    def option(value: list[str] | str, accounts: list[str], note: str) -> ScopeOption:
        known = [sizes.get(account) for account in accounts]
        resources = sum(size or 0 for size in known)
        unknown = sum(1 for size in known if size is None)
        if unknown:
            note += f"; {unknown} account(s) never scanned: size unknown"
        return ScopeOption(
            value=value,
            estimated_resources=resources if resources or not unknown else None,
            estimated_api_calls=per_account.api_calls * len(accounts),
            estimated_time=format_seconds(per_account.seconds * len(accounts)),
            requires_approval=len(accounts) > 1 and resources > max_resources,
            note=note + " (resources: the newest stored snapshot of each account)",
        )

    options = []
    if own:
        options.append(option([own], [own], "this account (the credentials')"))
    options.append(option("all", configured, f"all {len(configured)} configured accounts"))
    for account in [account for account in configured if account != own][:MAX_LISTED_ACCOUNTS]:
        options.append(option([account], [account], "this one account (through AssumeRole)"))
    return Ambiguity(
        parameter="accounts",
        question="Which AWS account(s)? This account, all configured ones, or pick ids.",
        options=options,
    )


def times_accounts(
    scan: ScopeEstimate, requested: Sequence[str] | None, configured: Sequence[str]
) -> ScopeEstimate:
    """A scan's estimate over the accounts requested (``["all"]``: the configured ones): each is read
    like the stored inventory's type-region counts (they are not kept per account), one after
    another in the worst case."""
    accounts = len(set(configured)) if requested == ["all"] else len(set(requested or []))
    if accounts <= 1:
        return scan
    return scan.model_copy(
        update={
            "resources": scan.resources * accounts,
            "api_calls": scan.api_calls * accounts,
            "seconds": scan.seconds * accounts,
            "basis": f"{scan.basis}; x {accounts} accounts",
        }
    )

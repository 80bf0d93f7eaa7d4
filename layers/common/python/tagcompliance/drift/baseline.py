"""``choose_baseline``: the snapshot of the same scope to compare with."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from tagcompliance.errors import InvalidInputError
from tagcompliance.store import SnapshotRecord, Store

_PAGE = 500


def _snapshots_between(store: Store, since: datetime, until: datetime) -> Iterator[SnapshotRecord]:
    """Every snapshot with since <= created_at < until, oldest first, read page by page.

    The store pages by time only, so each page starts at the previous page's last timestamp and
    skips the snapshots already read there; a full page that never leaves one timestamp is read
    again with a larger limit instead.
    """
    limit = _PAGE
    seen: set[str] = set()  # ids already read at the timestamp ``since``
    while True:
        page = store.list_snapshots(since=since, until=until, limit=limit)
        yield from (snapshot for snapshot in page if snapshot.snapshot_id not in seen)
        if len(page) < limit:
            return
        last = page[-1].created_at
        seen = {snapshot.snapshot_id for snapshot in page if snapshot.created_at == last}
        if last == since:
            limit *= 2
        since = last


def choose_baseline(
    store: Store,
    scope: tuple[Sequence[str], Sequence[str], str | Sequence[str]],
    lookback_days: int | None,
    now: datetime | None = None,
    *,
    exclude_snapshot_id: str | None = None,
) -> SnapshotRecord | None:
    """The latest snapshot of the same scope taken at or before ``now - lookback_days``.

    ``scope`` is (resource types, regions, accounts), compared as sets; an account id alone means
    that one account, matched against each snapshot's ``covered_accounts``. Without
    ``lookback_days`` it is the latest one taken before ``now``. ``exclude_snapshot_id`` skips the
    current scan when it is already stored. None means there is no baseline yet: the caller says
    so and keeps the current scan as the first one.
    """
    if lookback_days is not None and (
        isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 0
    ):
        raise InvalidInputError(f"lookback_days must be a whole number of 0 or more, got {lookback_days!r}")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    types, regions, accounts = scope
    wanted = (
        sorted(set(types)),
        sorted(set(regions)),
        sorted({accounts} if isinstance(accounts, str) else set(accounts)),
    )
    # list_snapshots' upper bound is exclusive: one microsecond more makes it "at or before".
    until = now if lookback_days is None else now - timedelta(days=lookback_days) + timedelta(microseconds=1)
    oldest = store.list_snapshots(limit=1)
    if not oldest:
        return None
    floor = oldest[0].created_at
    # Search backwards in disjoint windows of doubling size: recent history first, all of it at worst.
    window = timedelta(days=1)
    end = until
    while end > floor:
        start = max(end - window, floor)
        best: SnapshotRecord | None = None
        for snapshot in _snapshots_between(store, start, end):
            if (
                snapshot.snapshot_id != exclude_snapshot_id
                and (
                    sorted(set(snapshot.resource_types)),
                    sorted(set(snapshot.regions)),
                    sorted(set(snapshot.covered_accounts)),
                )
                == wanted
            ):
                best = snapshot  # oldest first: the last match is the latest
        if best is not None:
            return best
        end = start
        window *= 2
    return None

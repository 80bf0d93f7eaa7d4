"""Estimates of what a scan or a Cost Explorer question will cost, before anything calls AWS.

Every figure here is an ESTIMATE and says how it was made (``method`` and ``basis``):

* resources: the stored inventory, i.e. per (type, region) the resource count of the newest stored
  snapshot that read that pair (``Store.inventory_counts``). A pair no snapshot covers is reported
  as unknown, never guessed.
* API calls: what ``tagcompliance.inventory.collect_inventory`` sends for that inventory, derived
  from the registry (``tagcompliance.resources``): each type's own list/describe pages (at the
  API's documented default page size), its parent listing (ECS services per cluster), one
  per-resource tag read for types whose listing carries no tags and that the Tagging API cannot
  filter, and ``GetResources`` pages (100 resources a page) per region for types whose tags come
  from the Tagging API.
* time: API calls x ``REQUEST_LATENCY_SECONDS`` spread over the scan's worker threads (at most one
  worker per (type, region) shard): an estimate of a typical AWS round trip, not a measurement.
* Cost Explorer: $0.01 per request (every page is a request; AWS's published price).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS, ResourceType
from tagcompliance.store.base import InventoryCount, SnapshotRecord

# One AWS API round trip, as assumed by the time estimates (typical 100-300 ms from inside AWS).
REQUEST_LATENCY_SECONDS = 0.25
# Resources per GetResources page (ResourcesPerPage=100, the API's maximum, as inventory asks for).
TAGGING_API_PAGE_SIZE = 100
# Cost Explorer bills every request (page) $0.01.
COST_EXPLORER_USD_PER_REQUEST = 0.01
# Items per page of each listing operation when the caller sets no limit (AWS API references).
# An operation that is not listed here is assumed to return LISTING_DEFAULT_PAGE_SIZE a page.
LISTING_PAGE_SIZES: Mapping[str, int] = {
    "describe_instances": 1000,
    "describe_volumes": 1000,
    "describe_snapshots": 1000,
    "describe_nat_gateways": 1000,
    "describe_db_instances": 100,
    "describe_db_clusters": 100,
    "list_buckets": 10_000,
    "list_functions": 50,
    "list_clusters": 100,
    "list_services": 10,
    "list_tables": 100,
    "describe_cache_clusters": 100,
    "describe_file_systems": 100,
    "list_domain_names": 10_000,
    "list_topics": 100,
    "list_queues": 1000,
    "describe_load_balancers": 400,
    "list_streams": 100,
    "list_secrets": 100,
}
LISTING_DEFAULT_PAGE_SIZE = 50
ESTIMATE_METHOD = (
    "estimate: resources from the stored inventory (newest snapshot per type and region); API calls "
    "derived from the resource registry (list/describe pages at default page sizes, GetResources at "
    f"{TAGGING_API_PAGE_SIZE} a page, per-resource tag reads where needed); time = API calls x "
    f"{REQUEST_LATENCY_SECONDS}s per request over the scan's parallel workers"
)


class SnapshotSource(Protocol):
    """Where stored snapshots come from (the store)."""

    def list_snapshots(
        self, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[SnapshotRecord]: ...


class InventorySource(Protocol):
    """Where stored inventory counts come from: the store, or an ``InventorySnapshot`` of it."""

    def inventory_counts(
        self, resource_types: Sequence[str] | None = None, regions: Sequence[str] | None = None
    ) -> list[InventoryCount]: ...


class InventorySnapshot:
    """Every stored count read once (one query), then filtered in memory: one decision's view."""

    def __init__(self, store: InventorySource) -> None:
        self._counts = store.inventory_counts()

    def inventory_counts(
        self, resource_types: Sequence[str] | None = None, regions: Sequence[str] | None = None
    ) -> list[InventoryCount]:
        types = None if resource_types is None else set(resource_types)
        wanted = None if regions is None else set(regions)
        return [
            count
            for count in self._counts
            if (types is None or count.resource_type in types) and (wanted is None or count.region in wanted)
        ]


class TypeRegionCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    region: str
    resources: int | None = Field(description="None when no stored snapshot read this pair (unknown).")
    snapshot_id: str | None = None
    taken_at: datetime | None = None


class ScopeEstimate(BaseModel):
    """What a scan of (resource_types x regions) is expected to cost. Every number is an estimate."""

    model_config = ConfigDict(frozen=True)

    resource_types: list[str]
    regions: list[str]
    resources: int = Field(description="Resources expected (known pairs only; see unknown_pairs).")
    api_calls: int = Field(description="AWS requests expected for the scan.")
    seconds: float = Field(description="Expected wall-clock time of the scan.")
    cost_explorer_usd: float = Field(default=0.0, description="Cost Explorer spend (0 for a scan).")
    cost_explorer_requests: int = 0
    by_type_region: list[TypeRegionCount]
    unknown_pairs: int = Field(description="(type, region) pairs with no stored inventory.")
    complete: bool = Field(description="True when every pair's size is known from stored inventory.")
    basis: str
    method: str = ESTIMATE_METHOD

    @property
    def by_type(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.by_type_region:
            totals[entry.resource_type] = totals.get(entry.resource_type, 0) + (entry.resources or 0)
        return totals

    @property
    def by_region(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.by_type_region:
            totals[entry.region] = totals.get(entry.region, 0) + (entry.resources or 0)
        return totals


class CostExplorerEstimate(BaseModel):
    """What a Cost Explorer question is expected to cost (an estimate; $0.01 per request)."""

    model_config = ConfigDict(frozen=True)

    requests: int
    usd: float
    basis: str
    method: str = (
        f"estimate: Cost Explorer requests x ${COST_EXPLORER_USD_PER_REQUEST} (AWS price per request); "
        "one page per request assumed"
    )


def _pages(items: int, page_size: int) -> int:
    """Requests to list ``items`` at ``page_size`` a page (an empty listing still takes one)."""
    return max(1, math.ceil(items / page_size))


def _listing_pages(row: ResourceType, resources: int) -> int:
    return _pages(resources, LISTING_PAGE_SIZES.get(row.listing.operation, LISTING_DEFAULT_PAGE_SIZE))


def listing_requests(row: ResourceType, resources: int, parents: int | None = None) -> int:
    """Requests ``collect_inventory`` sends to enumerate ``resources`` of ``row`` in one region.

    A child type (ECS services) lists its parent again and then pages through each parent's
    children: ``parents`` is the parent's stored count, assumed one when unknown.
    """
    if row.listing.parent is None:
        requests = _listing_pages(row, resources)
    else:
        parent_count = 1 if parents is None else max(parents, 0)
        requests = _listing_pages(REGISTRY[row.listing.parent], parent_count)
        if parent_count:
            requests += max(parent_count, _listing_pages(row, resources))
    if row.listing.tags is None and row.tagging_api_filter is None:
        requests += resources  # tags read one resource at a time
    return requests


def estimate_api_calls(counts: Mapping[tuple[str, str], int | None], regions: Sequence[str]) -> int:
    """API calls to scan the (type, region) pairs in ``counts`` (None = unknown size, taken as empty)."""
    total = 0
    for region in regions:
        tagging_resources = 0
        uses_tagging_api = False
        for (type_id, pair_region), count in counts.items():
            if pair_region != region:
                continue
            row = REGISTRY[type_id]
            known = count or 0
            parents = counts.get((row.listing.parent, region)) if row.listing.parent else None
            total += listing_requests(row, known, parents)
            if row.listing.tags is None and row.tagging_api_filter is not None:
                uses_tagging_api = True
                tagging_resources += known
        if uses_tagging_api:
            total += _pages(tagging_resources, TAGGING_API_PAGE_SIZE)
    return total


def estimate_seconds(api_calls: int, shards: int, workers: int = 16) -> float:
    """Wall-clock estimate: requests at REQUEST_LATENCY_SECONDS each, spread over the parallel workers."""
    parallel = max(1, min(workers, shards))
    return round(api_calls * REQUEST_LATENCY_SECONDS / parallel, 2)


def _resolve_types(resource_types: Sequence[str]) -> list[str]:
    values = list(resource_types)
    if not values or values == ["all"]:
        return list(RESOURCE_TYPE_IDS)
    return [value for value in dict.fromkeys(values) if value in REGISTRY]


def account_sizes(store: SnapshotSource, accounts: Sequence[str]) -> dict[str, int | None]:
    """Per account, the resources the newest stored snapshot (last 30 days) that read it found (of
    whatever types and regions that snapshot covered); None for an account none has read."""
    sizes: dict[str, int | None] = dict.fromkeys(accounts)
    since = datetime.now(UTC) - timedelta(days=30)
    for snapshot in reversed(store.list_snapshots(since=since)):
        failed = {
            entry.get("account_id") or snapshot.account_id
            for entry in snapshot.failed_shards
            if not entry.get("resource_arn")
        }
        for account in snapshot.covered_accounts:
            if account in sizes and sizes[account] is None and account not in failed:
                sizes[account] = int(snapshot.counts_by_account.get(account, {}).get("total", 0))
        if all(size is not None for size in sizes.values()):
            break
    return sizes


def estimate_scope(
    store: InventorySource, resource_types: Sequence[str], regions: Sequence[str], workers: int = 16
) -> ScopeEstimate:
    """Estimate a scan of ``resource_types`` (registry ids, or ["all"]) in ``regions`` (names, or
    ["all"]: every region the stored inventory has read) from the cached inventory counts."""
    type_ids = _resolve_types(resource_types)
    all_regions = list(regions) == ["all"]
    stored = store.inventory_counts(type_ids, None if all_regions else list(regions))
    by_pair: dict[tuple[str, str], InventoryCount] = {(c.resource_type, c.region): c for c in stored}
    region_list = sorted({c.region for c in stored}) if all_regions else list(dict.fromkeys(regions))
    entries: list[TypeRegionCount] = []
    counts: dict[tuple[str, str], int | None] = {}
    for region in region_list:
        for type_id in type_ids:
            found = by_pair.get((type_id, region))
            counts[(type_id, region)] = None if found is None else found.resources
            entries.append(
                TypeRegionCount(
                    resource_type=type_id,
                    region=region,
                    resources=None if found is None else found.resources,
                    snapshot_id=None if found is None else found.snapshot_id,
                    taken_at=None if found is None else found.taken_at,
                )
            )
    unknown = [entry for entry in entries if entry.resources is None]
    api_calls = estimate_api_calls(counts, region_list)
    return ScopeEstimate(
        resource_types=type_ids,
        regions=region_list,
        resources=sum(entry.resources or 0 for entry in entries),
        api_calls=api_calls,
        seconds=estimate_seconds(api_calls, len(entries), workers),
        by_type_region=entries,
        unknown_pairs=len(unknown),
        complete=not unknown and bool(entries),
        basis=_basis(stored, unknown, all_regions),
    )


def _basis(stored: Sequence[InventoryCount], unknown: Sequence[TypeRegionCount], all_regions: bool) -> str:
    parts: list[str] = []
    snapshots: dict[str, datetime] = {}
    for count in stored:
        snapshots.setdefault(count.snapshot_id, count.taken_at)
    if snapshots:
        described = ", ".join(
            f"{snapshot_id} taken {taken_at.isoformat(timespec='seconds')}"
            for snapshot_id, taken_at in sorted(snapshots.items(), key=lambda item: item[1], reverse=True)[:3]
        )
        more = f" and {len(snapshots) - 3} older" if len(snapshots) > 3 else ""
        parts.append(f"latest snapshot(s) {described}{more}")
    else:
        parts.append("no stored inventory")
    if unknown:
        sample = ", ".join(f"{entry.resource_type} in {entry.region}" for entry in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        parts.append(
            f"no stored inventory for {sample}{more}: unknown (counted as empty; API calls are a lower bound)"
        )
    if all_regions:
        parts.append(
            '"all" regions: estimated over the regions the stored inventory has read; other enabled '
            "regions are unknown"
        )
    return "; ".join(parts)


def estimate_cost_explorer(
    tag_keys: int, include_resource_estimates: bool = False, resource_estimates: int = 0
) -> CostExplorerEstimate:
    """Cost Explorer requests of ``get_cost_attribution_gap``: one GetCostAndUsage per required tag
    analysed, one activation check (ListCostAllocationTags) when there are tags, and with resource
    estimates one GetCostAndUsageWithResources per 100 resources (at least one)."""
    requests = tag_keys + (1 if tag_keys else 0)
    if include_resource_estimates:
        requests += _pages(resource_estimates, 100)
    return CostExplorerEstimate(
        requests=requests,
        usd=round(requests * COST_EXPLORER_USD_PER_REQUEST, 4),
        basis=f"{tag_keys} required tag(s) analysed, one request each plus one activation check"
        + (", plus resource-level cost requests" if include_resource_estimates else ""),
    )

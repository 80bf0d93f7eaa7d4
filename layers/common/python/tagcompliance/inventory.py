"""Inventory: every resource in scope with its tags, and an honest account of what was not read.

Two sources are merged by ARN. Each type's own list/describe API says which resources exist, so
resources that were never tagged are found (the Resource Groups Tagging API never returns those).
Tags come from the listing when it carries them, otherwise from one paginated ``GetResources``
stream per region (100 resources a page). When the Tagging API knows none of a type's listed
resources in a region (the type is unsupported there, or every one of them is untagged), each
resource's tags are read with its own API, so "untagged" is confirmed rather than assumed.

Every (region, type) shard reports success or its error. A resource whose tags could not be read
is reported as unreadable, never as compliant.

A scan runs within the caller's budget (``tagcompliance.resilience``): when its deadline passes or
it is cancelled, the scan stops waiting, shards not yet started are never started, and every
unfinished shard is reported failed with that reason (``deadline``, ``cancelled``, ``shutdown``);
a region whose circuit opened fails its remaining shards at once (``circuit_open``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextvars import copy_context
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from .aws import AwsClients, aws_request_id, describe_aws_error
from .compliance import Resource
from .resilience import (
    CallBudget,
    CallStoppedError,
    CircuitOpenError,
    FailureReason,
    current_budget,
    failure_reason,
)
from .resources import REGISTRY, ArnContext, ResourceType, resource_id_from_arn

TagSource = Literal["listing", "tagging_api", "per_resource", "none"]
ProgressCallback = Callable[[int, int, str], None]
_T = TypeVar("_T")
logger = logging.getLogger("tagcompliance.inventory")


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    region: str
    resource_type: str
    status: Literal["ok", "failed"]
    resource_count: int
    tag_source: TagSource
    error: str | None = None
    unreadable_count: int = 0
    reason: FailureReason = "error"


@dataclass(frozen=True, slots=True)
class UnreadableResource:
    """A resource that exists but whose tags could not be read: not scanned, not compliant."""

    arn: str
    resource_type: str
    region: str
    error: str
    reason: FailureReason = "error"


@dataclass(slots=True)
class Inventory:
    account_id: str
    regions: list[str]
    resource_types: list[str]
    resources: list[Resource] = field(default_factory=list)
    shards: list[ShardOutcome] = field(default_factory=list)
    unreadable: list[UnreadableResource] = field(default_factory=list)
    scanned_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    api_requests: int = 0
    duration_seconds: float = 0.0

    @property
    def failed_shards(self) -> list[ShardOutcome]:
        return [shard for shard in self.shards if shard.status == "failed"]

    @property
    def interrupted(self) -> bool:
        """Whether work was left undone for a passing reason (deadline, cancellation, shutdown, open
        circuit) rather than an answer from AWS."""
        return any(shard.reason != "error" for shard in self.shards) or any(
            item.reason != "error" for item in self.unreadable
        )


@dataclass(slots=True)
class _Listed:
    """What a listing found: records with ARNs, or the error that stopped it."""

    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None
    reason: FailureReason = "error"
    aws_request_id: str | None = None  # AWS's id of the failed request: what AWS support asks for

    @classmethod
    def failed(cls, error: BaseException) -> _Listed:
        return cls(
            error=describe_failure(error), reason=failure_reason(error), aws_request_id=aws_request_id(error)
        )


def describe_failure(error: BaseException) -> str:
    """An AWS error as ``describe_aws_error`` says it; a stopped call or an open circuit as itself."""
    if isinstance(error, CallStoppedError | CircuitOpenError):
        return str(error)
    return describe_aws_error(error)  # type: ignore[arg-type]


def _paginate(client: Any, operation: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if client.can_paginate(operation):
        yield from client.get_paginator(operation).paginate(**params)
    else:
        yield getattr(client, operation)(**params)


def _list_type(clients: AwsClients, row: ResourceType, region: str, ctx: ArnContext) -> _Listed:
    listing = row.listing
    client = clients.client(listing.client, region)
    base_params = dict(listing.params or {})
    if listing.region_param:
        base_params[listing.region_param] = region
    parent_arns: list[str | None] = [None]
    if listing.parent:
        parent = _list_type(clients, REGISTRY[listing.parent], region, ctx)
        if parent.error:
            return parent
        parent_arns = [arn for arn, _ in parent.records]
    listed = _Listed()
    try:
        for parent_arn in parent_arns:
            params = dict(base_params)
            if parent_arn is not None and listing.parent_param:
                params[listing.parent_param] = parent_arn
            for page in _paginate(client, listing.operation, params):
                for item in listing.items(page):
                    if listing.include(item):
                        listed.records.append((listing.arn(item, ctx), item))
    except Exception as error:  # any failure fails the shard, it is never silently empty
        return _Listed.failed(error)
    return listed


def _tagging_api_tags(clients: AwsClients, region: str, filters: list[str]) -> dict[str, dict[str, str]]:
    client = clients.client("resourcegroupstaggingapi", region)
    tags: dict[str, dict[str, str]] = {}
    for page in client.get_paginator("get_resources").paginate(
        ResourceTypeFilters=filters, ResourcesPerPage=100
    ):
        for mapping in page.get("ResourceTagMappingList") or []:
            tags[mapping["ResourceARN"]] = {
                tag["Key"]: tag.get("Value", "") for tag in mapping.get("Tags") or []
            }
    return tags


def _resource(
    row: ResourceType, arn: str, region: str, account_id: str, tags: dict[str, str], item: dict[str, Any]
) -> Resource:
    listing = row.listing
    return Resource(
        arn=arn,
        resource_type=row.id,
        region=region,
        account_id=arn.split(":", 5)[4] or account_id,
        resource_id=resource_id_from_arn(row, arn),
        tags=tags,
        name=listing.name(item),
        vpc_id=listing.vpc_id(item),
    )


def _submit(pool: ThreadPoolExecutor, fn: Callable[..., _T], *args: Any) -> Future[_T]:
    """``pool.submit`` in a copy of the caller's context: context variables (the gateway's trace
    segment, the call's budget) follow the work into the pool's threads. Work whose call has
    stopped by the time a thread takes it is not started."""
    return pool.submit(copy_context().run, _unless_stopped, fn, *args)


def _unless_stopped(fn: Callable[..., _T], *args: Any) -> _T:
    budget = current_budget()
    if budget is not None:
        budget.check()
    return fn(*args)


def _outcome(future: Future[_T], budget: CallBudget | None) -> _T:
    """``future``'s result, or ``CallStoppedError`` as soon as the call's budget stops first."""
    if budget is None:
        return future.result()
    while True:
        reason = budget.stop_reason
        if reason is not None and not future.done():
            raise CallStoppedError(reason)
        remaining = budget.remaining()
        done, _ = wait([future], timeout=0.1 if remaining is None else max(min(0.1, remaining), 0.001))
        if done:
            return future.result()


def collect_inventory(
    clients: AwsClients,
    regions: Iterable[str],
    resource_types: Iterable[str],
    max_workers: int = 16,
    progress: ProgressCallback | None = None,
) -> Inventory:
    """Scan every (region, type) shard concurrently and merge the results."""
    started = time.monotonic()
    requests_before = clients.total_requests()
    region_list = list(dict.fromkeys(regions))
    type_list = list(dict.fromkeys(resource_types))
    rows = [REGISTRY[type_id] for type_id in type_list]
    ctx_account = clients.account_id
    partition = clients.partition
    inventory = Inventory(account_id=ctx_account, regions=region_list, resource_types=type_list)

    tagging_filters = sorted(
        {row.tagging_api_filter for row in rows if row.listing.tags is None and row.tagging_api_filter}
    )
    total_steps = len(region_list) * (len(rows) + (1 if tagging_filters else 0))
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total_steps, message)

    budget = current_budget()
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="scan")
    try:
        listings: dict[tuple[str, str], Future[_Listed]] = {}
        taggings: dict[str, Future[dict[str, dict[str, str]]]] = {}
        for region in region_list:
            ctx = ArnContext(partition=partition, region=region, account_id=ctx_account)
            if tagging_filters:
                future = _submit(pool, _tagging_api_tags, clients, region, tagging_filters)
                future.add_done_callback(lambda _f, r=region: step(f"tags read in {r}"))
                taggings[region] = future
            for row in rows:
                listed = _submit(pool, _list_type, clients, row, region, ctx)
                listed.add_done_callback(lambda _f, r=region, t=row.id: step(f"{t} listed in {r}"))
                listings[(region, row.id)] = listed

        fallbacks: list[tuple[str, ResourceType, list[tuple[str, dict[str, Any]]]]] = []
        for region in region_list:
            tagging_map: dict[str, dict[str, str]] | None = None
            tagging_error: str | None = None
            tagging_reason: FailureReason = "error"
            if region in taggings:
                try:
                    tagging_map = _outcome(taggings[region], budget)
                except Exception as error:
                    tagging_error, tagging_reason = describe_failure(error), failure_reason(error)
            for row in rows:
                try:
                    listed = _outcome(listings[(region, row.id)], budget)
                except Exception as error:
                    listed = _Listed.failed(error)
                if listed.error is not None:
                    logger.warning(
                        "listing %s in %s failed: %s",
                        row.id,
                        region,
                        listed.error,
                        extra={
                            "aws_request_id": listed.aws_request_id,
                            "resource_type": row.id,
                            "region": region,
                        },
                    )
                    inventory.shards.append(
                        ShardOutcome(region, row.id, "failed", 0, "none", listed.error, reason=listed.reason)
                    )
                    continue
                if row.listing.tags is not None:
                    inventory.resources.extend(
                        _resource(row, arn, region, ctx_account, row.listing.tags(item), item)
                        for arn, item in listed.records
                    )
                    inventory.shards.append(
                        ShardOutcome(region, row.id, "ok", len(listed.records), "listing")
                    )
                    continue
                if not listed.records:
                    inventory.shards.append(ShardOutcome(region, row.id, "ok", 0, "none"))
                    continue
                if tagging_error is not None:
                    inventory.shards.append(
                        ShardOutcome(
                            region,
                            row.id,
                            "failed",
                            0,
                            "none",
                            f"tags could not be read: {tagging_error}",
                            reason=tagging_reason,
                        )
                    )
                elif tagging_map is not None and any(arn in tagging_map for arn, _ in listed.records):
                    inventory.resources.extend(
                        _resource(row, arn, region, ctx_account, tagging_map.get(arn, {}), item)
                        for arn, item in listed.records
                    )
                    inventory.shards.append(
                        ShardOutcome(region, row.id, "ok", len(listed.records), "tagging_api")
                    )
                else:
                    fallbacks.append((region, row, listed.records))

        total_steps += sum(len(records) for _, _, records in fallbacks)
        per_resource: list[tuple[str, ResourceType, str, dict[str, Any], Future[dict[str, str]]]] = []
        for region, row, records in fallbacks:
            reader = row.tag_reader
            assert reader is not None  # guaranteed by the registry's own check
            client = clients.client(reader.client, region)
            for arn, item in records:
                future = _submit(pool, reader.read, client, arn, resource_id_from_arn(row, arn))
                future.add_done_callback(lambda _f, a=arn: step(f"tags read for {a}"))
                per_resource.append((region, row, arn, item, future))

        outcomes: dict[tuple[str, str], list[int]] = {}
        for region, row, arn, item, future in per_resource:
            counts = outcomes.setdefault((region, row.id), [0, 0])
            try:
                tags = _outcome(future, budget)
            except Exception as error:
                inventory.unreadable.append(
                    UnreadableResource(arn, row.id, region, describe_failure(error), failure_reason(error))
                )
                counts[1] += 1
                continue
            inventory.resources.append(_resource(row, arn, region, ctx_account, tags, item))
            counts[0] += 1
        for (region, type_id), (read, unreadable) in outcomes.items():
            inventory.shards.append(
                ShardOutcome(region, type_id, "ok", read, "per_resource", unreadable_count=unreadable)
            )
    finally:
        # A stopped scan does not wait for requests still on the wire (each ends within the read
        # timeout, and sends nothing more); queued work is dropped.
        stopped = budget is not None and budget.stop_reason is not None
        pool.shutdown(wait=not stopped, cancel_futures=True)

    inventory.resources.sort(key=lambda resource: resource.arn)
    inventory.shards.sort(key=lambda shard: (shard.region, shard.resource_type))
    inventory.api_requests = clients.total_requests() - requests_before
    inventory.duration_seconds = round(time.monotonic() - started, 3)
    return inventory

"""API economy (1) and scan throughput (2): the product's scan against a counting moto server.

For each estate size the moto backends are reset and seeded (straight into the backends, see
``bench.moto_counting``), then ``inventory.collect_inventory`` scans every (region, type) over HTTP
with a fresh ``AwsClients``, as the product does. Requests are counted at the server.

The floor is what any complete scan must send: one ``GetResources`` page per 100 tagged resources of
the types whose tags come from the Tagging API, plus the listing pages that find every resource
(including never-tagged ones) at AWS's largest page size for each listing operation, plus one STS
``GetCallerIdentity``. Every other request type is a per-resource call and is named.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from tagcompliance.aws import AwsClients
from tagcompliance.inventory import collect_inventory
from tagcompliance.resources import REGISTRY
from tagcompliance.settings import Settings

from .common import CREDENTIALS, POLICY_PATH, figure
from .moto_counting import BENCH_TYPES, SeededEstate, named_counts, seed_backends, start_counting_server

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
SIZES = (1_000, 10_000, 50_000)
TARGET_RATIO = 1.2
TARGET_10K_SECONDS = 20.0
LINEAR_TOLERANCE = 1.25  # per-resource time may grow at most 25% from one size to the next
# Each type's listing operation as the server names it, and AWS's largest page for it.
LISTING: dict[str, tuple[str, int]] = {
    "ec2:volume": ("ec2:DescribeVolumes", 500),
    "ec2:snapshot": ("ec2:DescribeSnapshots", 1000),
    "s3:bucket": ("s3:ListBuckets", 10_000),
    "sqs:queue": ("sqs:ListQueues", 1000),
    "sns:topic": ("sns:ListTopics", 100),
    "dynamodb:table": ("dynamodb:ListTables", 100),
    "secretsmanager:secret": ("secretsmanager:ListSecrets", 100),
    "ecs:cluster": ("ecs:ListClusters", 100),
    "elasticache:cluster": ("elasticache:DescribeCacheClusters", 100),
    "elasticfilesystem:file-system": ("elasticfilesystem:DescribeFileSystems", 100),
}
GET_RESOURCES = "tagging:GetResources"
IDENTITY = "sts:GetCallerIdentity"
TAGGING_PAGE = 100


def floor(estate: SeededEstate) -> Counter[str]:
    """The fewest requests, per operation, that find every resource of ``estate`` with its tags."""
    needed: Counter[str] = Counter({IDENTITY: 1})
    for region in estate.regions:
        tagging_types = [t for t in estate.types if REGISTRY[t].listing.tags is None]
        if tagging_types:
            tagged = sum(estate.tagged[(region, t)] for t in tagging_types)
            needed[GET_RESOURCES] += max(1, math.ceil(tagged / TAGGING_PAGE))
        for resource_type in estate.types:
            operation, page = LISTING[resource_type]
            needed[operation] += max(1, math.ceil(estate.counts[(region, resource_type)] / page))
    return needed


def _settings(endpoint_url: str, data_dir: str) -> Settings:
    return Settings(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_REGION=REGIONS[0],
        SCAN_REGIONS=",".join(REGIONS),
        POLICY_PATH=str(POLICY_PATH),
        DATA_DIR=data_dir,
    )


def _measure_size(server: Any, size: int, repeats: int, data_dir: str) -> dict[str, Any]:
    server.reset_backends()
    started = time.perf_counter()
    estate = seed_backends(size, REGIONS, BENCH_TYPES)
    seed_seconds = time.perf_counter() - started
    times: list[float] = []
    counts: Counter[str] = Counter()
    found = failed = unreadable = 0
    errors: list[str] = []
    tag_sources: dict[str, str] = {}
    for attempt in range(repeats):
        server.counter.reset()
        clients = AwsClients(_settings(server.endpoint_url, data_dir))
        started = time.perf_counter()
        inventory = collect_inventory(clients, REGIONS, BENCH_TYPES, max_workers=16)
        times.append(time.perf_counter() - started)
        if attempt == 0:
            counts = named_counts(server.counter.raw_counts())
            found = len(inventory.resources)
            failed = len(inventory.failed_shards)
            unreadable = len(inventory.unreadable)
            errors = sorted({f"{s.resource_type}: {s.error}" for s in inventory.failed_shards})[:5]
            tag_sources = {f"{s.region} {s.resource_type}": s.tag_source for s in inventory.shards}
    needed = floor(estate)
    paging = set(needed)
    per_resource = {op: n for op, n in sorted(counts.items()) if op not in paging}
    observed = sum(counts.values())
    minimum = sum(needed.values())
    return {
        "size": estate.total,
        "seed_seconds": round(seed_seconds, 2),
        "scan_seconds": [round(t, 3) for t in times],
        "scan_min": min(times),
        "scan_median": statistics.median(times),
        "found": found,
        "failed_shards": failed,
        "unreadable": unreadable,
        "shard_errors": errors,
        "complete": found == estate.total and not failed and not unreadable,
        "requests": observed,
        "floor": minimum,
        "requests_by_operation": dict(sorted(counts.items())),
        "floor_by_operation": dict(sorted(needed.items())),
        "per_resource": per_resource,
        "tag_sources": tag_sources,
    }


def _measure_with_deadline(
    server: Any, size: int, repeats: int, data_dir: str, deadline: float
) -> dict[str, Any] | str:
    """``_measure_size`` in a daemon thread; a reason string when it does not finish by ``deadline``."""
    box: list[Any] = []

    def work() -> None:
        try:
            box.append(_measure_size(server, size, repeats, data_dir))
        except BaseException as error:  # reported by the caller
            box.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=work, name=f"bench-scan-{size}", daemon=True)
    worker.start()
    worker.join(timeout=max(0.0, deadline - started))
    if worker.is_alive():
        return (
            f"abandoned after {time.monotonic() - started:.0f} s: seeding and scanning {size:,} resources "
            "did not finish inside the 15-minute budget of make bench on this 2-core machine"
        )
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


_PER_RESOURCE_WHY = {
    "elasticache:ListTagsForResource": "moto's GetResources does not return ElastiCache clusters "
    "(AWS's does), so the product finds none of them in the Tagging API and reads each cluster's tags itself",
    "kinesis:ListTagsForStream": "moto's GetResources does not return Kinesis streams (AWS's does)",
    "s3:GetBucketTagging": "buckets missing from GetResources are read one by one",
}


def _size_figures(m: dict[str, Any]) -> list[dict[str, Any]]:
    size = m["size"]
    per_k = m["requests"] / size * 1000
    floor_k = m["floor"] / size * 1000
    ratio = m["requests"] / m["floor"]
    per_resource = m["per_resource"]
    named = ", ".join(f"{op} x{n}" for op, n in per_resource.items()) or "none"
    why = "; ".join(_PER_RESOURCE_WHY.get(op, f"{op}: not explained") for op in per_resource)
    over = {
        op: (n, m["floor_by_operation"].get(op, 0))
        for op, n in m["requests_by_operation"].items()
        if n > m["floor_by_operation"].get(op, 0)
    }
    complete_figure = figure(
        f"{size:,} resources: found / seeded (1 = complete)",
        round(m["found"] / size, 4),
        "",
        op="==",
        target=1,
        reason=f"found {m['found']} of {size}; {m['failed_shards']} failed shards, "
        f"{m['unreadable']} unreadable; first errors: {m['shard_errors']}",
        to_close="see the failing shards' errors in latest.json",
    )
    if not m["complete"]:
        # Requests of an incomplete scan say nothing about economy: no PASS can come from them.
        why_not = (
            f"the scan was incomplete ({m['found']} of {size} found, {m['failed_shards']} failed shards)"
        )
        return [
            figure(f"{size:,} resources: requests / floor", None, "x", reason=why_not),
            figure(f"{size:,} resources: per-resource requests", None, "requests", reason=why_not),
            complete_figure,
            figure(
                f"{size:,} resources: scan time (min of {len(m['scan_seconds'])})",
                round(m["scan_min"], 2),
                "s",
                note=f"incomplete scan: {why_not}",
            ),
        ]
    return [
        figure(
            f"{size:,} resources: AWS requests per 1,000 resources (at the server)",
            round(per_k, 2),
            "requests",
            note=f"floor {floor_k:.2f} per 1,000 ({m['requests']} requests, floor {m['floor']})",
        ),
        figure(
            f"{size:,} resources: requests / floor",
            round(ratio, 3),
            "x",
            op="<=",
            target=TARGET_RATIO,
            reason=f"operations above their floor (sent, floor): {over}. {why}".strip(),
            to_close="for each operation above its floor: pass the largest page size where the product "
            "relies on the service default (moto pages DescribeFileSystems at 10; AWS at 100 with "
            "MaxItems=100); "
            "GetResources pages from moto hold fewer than 100 matching resources, so that excess is moto's; "
            "per-resource reads: see the per-resource figure",
        ),
        figure(
            f"{size:,} resources: per-resource requests",
            sum(per_resource.values()),
            "requests",
            op="<=",
            target=0,
            reason=f"named: {named}. {why}",
            to_close="none needed on AWS for these types; on moto, a Tagging API that returns them",
        ),
        complete_figure,
        figure(
            f"{size:,} resources: scan time (min of {len(m['scan_seconds'])})",
            round(m["scan_min"], 2),
            "s",
            note=f"median {m['scan_median']:.2f} s; {size / m['scan_min']:,.0f} resources/s; seeding took "
            f"{m['seed_seconds']} s (not in the scan time)",
        ),
    ]


def run(
    sizes: tuple[int, ...] = SIZES, repeats: tuple[int, ...] = (3, 2, 1), deadline: float | None = None
) -> dict[str, Any]:
    """``deadline`` (a ``time.monotonic()`` value): sizes that would not finish before it are skipped."""
    environment = {**CREDENTIALS, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    server = start_counting_server()
    measured: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    abandoned = False
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            for index, size in enumerate(sizes):
                if deadline is not None and measured:
                    last = measured[-1]
                    per_resource = (last["seed_seconds"] + sum(last["scan_seconds"])) / last["size"]
                    estimate = per_resource * size * 1.5 * repeats[index] / max(1, len(last["scan_seconds"]))
                    left = deadline - time.monotonic()
                    if estimate > left:
                        skipped.append(
                            (
                                size,
                                f"estimated {estimate:.0f} s (from the {last['size']:,} run, x1.5) but "
                                f"only {left:.0f} s remain of the 15-minute budget",
                            )
                        )
                        continue
                if deadline is None:
                    measured.append(_measure_size(server, size, repeats[index], data_dir))
                    continue
                outcome = _measure_with_deadline(server, size, repeats[index], data_dir, deadline)
                if isinstance(outcome, str):
                    skipped.append((size, outcome))
                    abandoned = True
                    break  # the abandoned run still holds the server: no further size can run
                measured.append(outcome)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    figures: list[dict[str, Any]] = []
    for m in measured:
        figures.extend(_size_figures(m))
    for size, reason in skipped:
        figures.append(figure(f"{size:,} resources", None, "", reason=reason))
    by_size = {m["size"]: m for m in measured}
    if 10_000 in by_size and by_size[10_000]["complete"]:
        m = by_size[10_000]
        figures.append(
            figure(
                "10,000 resources over 3 regions: scan time",
                round(m["scan_min"], 2),
                "s",
                op="<",
                target=TARGET_10K_SECONDS,
                reason=f"min of {len(m['scan_seconds'])} runs; moto serialises every listing in Python "
                "in the same process (and GIL) as the scan",
                to_close="profile which shards dominate (latest.json has per-operation counts); run moto "
                "in its own process",
            )
        )
    if 10_000 in by_size and not by_size[10_000]["complete"]:
        figures.append(
            figure(
                "10,000 resources over 3 regions: scan time",
                None,
                "s",
                reason="the 10,000-resource scan was incomplete (see its found / seeded figure)",
            )
        )
    for smaller, larger in itertools.pairwise(m for m in measured if m["complete"]):
        ratio = (larger["scan_min"] / larger["size"]) / (smaller["scan_min"] / smaller["size"])
        figures.append(
            figure(
                f"per-resource scan time, {larger['size']:,} vs {smaller['size']:,}",
                round(ratio, 3),
                "x",
                op="<=",
                target=LINEAR_TOLERANCE,
                reason="scan time grows faster than the resource count",
                to_close="find the operation whose time grows superlinearly (moto's or the product's)",
                note="1.0 = linear; below 1, fixed costs (client creation) are amortised",
            )
        )
    return {
        "name": "1-2. API economy and scan throughput",
        "figures": figures,
        "details": {
            "regions": REGIONS,
            "types": BENCH_TYPES,
            "seeding": "straight into moto's in-process backends (bench.moto_counting.seed_backends); "
            "the scan goes over HTTP",
            "sizes": measured,
            "skipped": skipped,
            # True when a size ran past the deadline: its threads are still running (bench.__main__ exits
            # without waiting for them).
            "abandoned": abandoned,
        },
    }

"""API economy (1) and scan throughput (2): the product's scan against a counting moto server.

For each estate size the moto backends are reset and seeded (straight into the backends, see
``bench.moto_counting``), then ``inventory.collect_inventory`` scans every (region, type) over HTTP
with a fresh ``AwsClients``, as the product does, in a child process of its own (moto's server
threads and backends stay in this one). Requests, and the seconds moto spends answering them, are
counted at the server.

The floor is what any complete scan must send: one ``GetResources`` page per 100 tagged resources of
the types whose tags come from the Tagging API, plus the listing pages that find every resource
(including never-tagged ones) at AWS's largest page size for each listing operation, plus one STS
``GetCallerIdentity``. Every other request type is a per-resource call and is named.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from tagcompliance.aws import AwsClients
from tagcompliance.inventory import collect_inventory
from tagcompliance.resources import REGISTRY
from tagcompliance.settings import Settings

from .common import ACCOUNT_ID, CREDENTIALS, POLICY_PATH, REPO_ROOT, figure
from .moto_counting import (
    BENCH_TYPES,
    SeededEstate,
    named_counts,
    named_seconds,
    seed_backends,
    start_counting_server,
)

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


# Per-resource tag reads, as the server names them, for the bench types that have one.
TAG_READS: dict[str, str] = {
    "elasticache:cluster": "elasticache:ListTagsForResource",
    "dynamodb:table": "dynamodb:ListTagsOfResource",
    "sqs:queue": "sqs:ListQueueTags",
    "sns:topic": "sns:ListTagsForResource",
    "ecs:cluster": "ecs:ListTagsForResource",
    "s3:bucket": "s3:GetBucketTagging",
}


def scan_once(endpoint_url: str, data_dir: str) -> dict[str, Any]:
    """One product scan of every (region, type) over HTTP, timed around ``collect_inventory``."""
    clients = AwsClients(_settings(endpoint_url, data_dir))
    started = time.perf_counter()
    inventory = collect_inventory(clients, REGIONS, BENCH_TYPES, max_workers=16)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "found": len(inventory.resources),
        "failed": len(inventory.failed_shards),
        "unreadable": len(inventory.unreadable),
        "errors": sorted({f"{s.resource_type}: {s.error}" for s in inventory.failed_shards})[:5],
        "tag_sources": {f"{s.region} {s.resource_type}": s.tag_source for s in inventory.shards},
    }


def _scan_in_child(endpoint_url: str, data_dir: str) -> dict[str, Any]:
    """``scan_once`` in its own process, as the product runs: moto's server threads live in this one
    (its backends are seeded in-process), and sharing one GIL with them made the scan's time grow
    with moto's heap and load rather than with the product's own work."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scan", endpoint_url, data_dir],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        cwd=str(REPO_ROOT),
    )
    if completed.returncode != 0:
        raise RuntimeError(f"scan child failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def moto_floor(estate: SeededEstate) -> tuple[Counter[str], dict[str, str]]:
    """The fewest requests that find every resource on THIS server, and why it differs from AWS's floor.

    Probed in-process, straight from moto's backends (so nothing is counted): the GetResources pages
    moto itself serves for the product's filters at ResourcesPerPage=100, and the types whose tagged
    resources moto's GetResources never returns, whose tags only a per-resource read can give.
    """
    from moto.backends import get_backend

    from tagcompliance.resources import parse_arn

    needed = floor(estate)
    needed[GET_RESOURCES] = 0
    tagging_types = [t for t in estate.types if REGISTRY[t].listing.tags is None]
    filters = sorted({f for t in tagging_types if (f := REGISTRY[t].tagging_api_filter)})
    seen: set[str] = set()
    for region in estate.regions:
        backend = get_backend("resourcegroupstaggingapi")[ACCOUNT_ID][region]  # type: ignore[index]
        token: str | None = None
        while True:
            token, page = backend.get_resources(
                pagination_token=token, resources_per_page=TAGGING_PAGE, resource_type_filters=filters
            )
            needed[GET_RESOURCES] += 1
            seen.update(parse_arn(resource.arn).resource_type for resource in page)
            if not token:
                break
    why: dict[str, str] = {}
    for resource_type in tagging_types:
        tagged = sum(estate.tagged[(region, resource_type)] for region in estate.regions)
        if tagged and resource_type not in seen:
            operation = TAG_READS[resource_type]
            needed[operation] += sum(estate.counts[(region, resource_type)] for region in estate.regions)
            why[operation] = (
                f"moto's GetResources returns none of the {tagged} tagged {resource_type} resources (AWS's "
                "does) and the type's own listing carries no tags: one read per resource is all this "
                "server offers"
            )
    pages_aws = floor(estate)[GET_RESOURCES]
    if needed[GET_RESOURCES] > pages_aws:
        why[GET_RESOURCES] = (
            f"moto serves {needed[GET_RESOURCES]} GetResources pages where AWS would serve {pages_aws}: "
            "besides ResourcesPerPage=100 it also caps a page at 100 tags (its TagsPerPage default), "
            "so a page "
            "holds about 100 / tags-per-resource resources"
        )
    return needed, why


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
    # moto's backends live in this process (the stand-in shares the scan's heap): keep the garbage
    # collector from walking the seeded estate again and again during the scan, which would make
    # the scan's time grow with the stand-in's heap rather than with the product's work.
    gc.collect()
    gc.freeze()
    try:
        return _scan_estate(server, estate, repeats, data_dir, seed_seconds)
    finally:
        gc.unfreeze()


def _scan_estate(
    server: Any, estate: SeededEstate, repeats: int, data_dir: str, seed_seconds: float
) -> dict[str, Any]:
    times: list[float] = []
    counts: Counter[str] = Counter()
    found = failed = unreadable = 0
    errors: list[str] = []
    tag_sources: dict[str, str] = {}
    server_seconds: dict[str, float] = {}
    for attempt in range(repeats):
        server.counter.reset()
        scanned = _scan_in_child(server.endpoint_url, data_dir)
        times.append(scanned["seconds"])
        if attempt == 0:
            counts = named_counts(server.counter.raw_counts())
            server_seconds = named_seconds(server.counter.raw_seconds())
            found = scanned["found"]
            failed = scanned["failed"]
            unreadable = scanned["unreadable"]
            errors = scanned["errors"]
            tag_sources = scanned["tag_sources"]
    needed = floor(estate)
    on_moto, moto_why = moto_floor(estate)
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
        "moto_floor": sum(on_moto.values()),
        "moto_floor_by_operation": dict(sorted(on_moto.items())),
        "moto_floor_why": moto_why,
        "moto_seconds_by_operation": server_seconds,
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


def _growth(smaller: dict[str, Any], larger: dict[str, Any]) -> str:
    """moto's server seconds per resource, larger size over smaller, for the operations that grew most."""
    scale = larger["size"] / smaller["size"]
    growth = {}
    for operation, seconds in larger["moto_seconds_by_operation"].items():
        before = smaller["moto_seconds_by_operation"].get(operation, 0.0)
        if before > 0.05:
            growth[operation] = seconds / scale / before
    top = sorted(growth.items(), key=lambda item: -item[1])[:5]
    return ", ".join(f"{operation} {value:.2f}x" for operation, value in top) or "not measured"


def _size_figures(m: dict[str, Any]) -> list[dict[str, Any]]:
    size = m["size"]
    per_k = m["requests"] / size * 1000
    floor_k = m["floor"] / size * 1000
    ratio = m["requests"] / m["floor"]
    moto_ratio = m["requests"] / m["moto_floor"]
    per_resource = m["per_resource"]
    moto_why: dict[str, str] = m["moto_floor_why"]
    # Per-resource reads this server leaves no alternative to (named), and any others (a product fault).
    forced = {op: n for op, n in per_resource.items() if op in moto_why}
    avoidable = {op: n for op, n in per_resource.items() if op not in moto_why}
    named = ", ".join(f"{op} x{n}" for op, n in forced.items()) or "none"
    over = {
        op: (n, m["floor_by_operation"].get(op, 0))
        for op, n in m["requests_by_operation"].items()
        if n > m["floor_by_operation"].get(op, 0)
    }
    over_moto = {
        op: (n, m["moto_floor_by_operation"].get(op, 0))
        for op, n in m["requests_by_operation"].items()
        if n > m["moto_floor_by_operation"].get(op, 0)
    }
    moto_reasons = " ".join(f"{op}: {text}." for op, text in moto_why.items())
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
            f"{size:,} resources: requests / the floor this moto server allows",
            round(moto_ratio, 3),
            "x",
            op="<=",
            target=TARGET_RATIO,
            reason=f"operations above this server's floor (sent, floor): {over_moto}",
            to_close="for each such operation: pass the largest page size, or stop re-reading pages",
            note=f"{m['requests']} requests, floor on this server {m['moto_floor']}. {moto_reasons}".strip(),
        ),
        figure(
            f"{size:,} resources: requests / AWS's floor",
            round(ratio, 3),
            "x",
            op="<=",
            target=TARGET_RATIO,
            reason=f"operations above AWS's floor (sent, floor): {over}. All of the excess is this server's: "
            f"{moto_reasons}",
            to_close="a moto whose GetResources returns ElastiCache clusters and pages by ResourcesPerPage "
            "alone (AWS's behaviour), or LocalStack / a real account; the product already asks for "
            "100 resources a page and reads tags per resource only where the Tagging API returned none",
        ),
        figure(
            f"{size:,} resources: per-resource requests this server leaves no alternative to (named)",
            sum(forced.values()),
            "requests",
            note=f"{named}. {moto_reasons}".strip() if forced else "none",
        ),
        figure(
            f"{size:,} resources: other per-resource requests",
            sum(avoidable.values()),
            "requests",
            op="<=",
            target=0,
            reason=f"named: {avoidable}",
            to_close="read these types' tags from the Tagging API or their listing",
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
                reason="scan time grows faster than the resource count. The scan runs in its own process "
                "and its requests grow linearly (see requests / floor); moto's time answering them does "
                f"not: seconds moto spent per resource, {larger['size']:,} vs {smaller['size']:,}: "
                f"{_growth(smaller, larger)}",
                to_close="a stand-in whose listing cost is linear in the estate (LocalStack or a real "
                "account), or a profile of moto's slowest operations listed here; the product's share "
                "(requests and per-resource reads) is already linear",
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


if __name__ == "__main__":  # the scan child: python -m bench.scan ENDPOINT DATA_DIR
    print(json.dumps(scan_once(sys.argv[1], sys.argv[2])))

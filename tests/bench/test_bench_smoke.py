"""The benchmarks at tiny sizes: each runs end to end and produces well-formed figures.

No performance target is asserted here (targets are for ``make bench``); only that every figure is
measured and shaped as the results files expect, and that correctness checks built into the
benchmarks (engine against the reference loop, scan completeness) hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import balanced, cost, durability, engine, gateway, memory, pipeline, resilience, scan
from bench.common import write_results
from services.demo.aws import DemoAws
from tests.pipeline.scale import TYPES

STATUSES = {"PASS", "MISS", "INFO", "NOT MEASURED"}


def assert_well_formed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert result["name"] and isinstance(result["details"], dict)
    assert result["figures"], "a benchmark must report at least one figure"
    by_name = {}
    for entry in result["figures"]:
        assert entry["status"] in STATUSES, entry
        assert entry["name"] and isinstance(entry["unit"], str)
        if entry["status"] == "NOT MEASURED":
            assert entry["value"] is None and entry["reason"]
        else:
            assert isinstance(entry["value"], int | float), entry
        if entry["status"] == "MISS":
            assert entry["reason"] and entry["to_close"], entry
        if entry["status"] in ("PASS", "MISS"):
            assert entry["target"]
        by_name[entry["name"]] = entry
    return by_name


def test_engine_matches_reference() -> None:
    result = engine.run(count=3_000, repeats=2)
    figures = assert_well_formed(result)
    assert figures["result identical to the reference loop (1 = yes)"]["value"] == 1
    assert len(result["details"]["runs_seconds"]) == 2
    assert result["details"]["violations"] > 0 and result["details"]["materialise_seconds"]


def test_reference_disagrees_with_a_wrong_engine() -> None:
    # The reference is a real check: a resource it would flag cannot be reported compliant.
    policy = engine.build_policy()
    [resource] = engine.synthetic_resources(1)
    broken = type(resource)(**{**{f: getattr(resource, f) for f in resource.__slots__}, "tags": {}})
    violations, scanned, compliant = engine.reference_evaluate([broken], policy)
    assert scanned == 1 and compliant == 0 and violations


def test_memory_window_sees_growth() -> None:
    # The peak-RSS window must be able to fail: 64 MB touched inside it shows as growth.
    before, method = memory._start_window()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    assert memory._peak_mb() - before >= 48, method
    del block


def test_memory_runs_in_children() -> None:
    result = memory.run(violations=2_000, resources=300)
    assert_well_formed(result)
    assert result["details"]["export_streamed"]["rows"] == 2_000
    assert result["details"]["export_service_path"]["rows"] == 2_000  # evaluated, then streamed
    assert result["details"]["report"]["resources"] == 300


@pytest.fixture
def restore_demo(request: pytest.FixtureRequest) -> Iterator[None]:
    """The scan and tagging benchmarks reset moto's (per-process) backends: reseed the demo estate if it
    is running.

    A demo started later resets and seeds by itself, so the session's demo is only started here when
    it is already up (``MOTO_PORT`` is set while it runs).
    """
    demo = request.getfixturevalue("demo_aws") if os.environ.get("MOTO_PORT") else None
    yield
    if demo is not None:
        demo.reset_and_reseed()


def test_scan_counts_at_the_server(restore_demo: None, tmp_path: Path) -> None:
    result = scan.run(sizes=(60, 120), repeats=(1, 1))
    figures = assert_well_formed(result)
    for size in (60, 120):
        assert figures[f"{size:,} resources: found / seeded (1 = complete)"]["value"] == 1
    first = result["details"]["sizes"][0]
    assert first["requests"] == sum(first["requests_by_operation"].values()) > 0
    assert first["floor_by_operation"]["sts:GetCallerIdentity"] == 1
    # This server's floor adds what moto forces (short pages, per-resource reads): never below AWS's.
    assert first["moto_floor"] >= first["floor"]
    assert first["moto_floor_by_operation"]["sts:GetCallerIdentity"] == 1
    write_results([result], datetime.now(UTC), tmp_path)
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["benchmarks"][0]["name"] == result["name"]
    table = (tmp_path / "latest.md").read_text()
    assert table.count("\n| ") >= len(result["figures"])


def test_cost_counts_requests(demo_aws: DemoAws) -> None:
    result = cost.run(demo=demo_aws)
    assert_well_formed(result)
    assert sum(result["details"]["first"].values()) >= 1
    assert result["details"]["again_cached"] is True


def test_gateway_under_load(demo_aws: DemoAws) -> None:
    result = gateway.run(duration=3, sessions=4, demo=demo_aws, client_processes=2)
    figures = assert_well_formed(result)
    assert result["details"]["calls_completed"] > 0 and result["details"]["client_processes"] == 2
    assert figures["cached check_compliance in the service (no MCP/HTTP), median"]["value"] > 0
    assert figures["p99 latency"]["value"] >= figures["p50 latency"]["value"]


def test_gateway_behind_the_balancer(demo_aws: DemoAws) -> None:
    result = balanced.run(duration=3, sessions=4, demo=demo_aws, client_processes=2)
    figures = assert_well_formed(result)
    three = result["details"]["three_processes"]
    assert len(three["requests_per_process"]) == 3 and all(three["requests_per_process"])
    assert figures["every process served requests (1 = yes)"]["value"] == 1
    assert result["details"]["one_process"]["calls"] > 0 and three["calls"] > 0
    assert figures["errors through the balancer"]["value"] == 0, result["details"]


def test_resilience_figures(demo_aws: DemoAws) -> None:
    result = resilience.run(demo=demo_aws, sessions=1)
    figures = assert_well_formed(result)
    assert len(figures) == 2
    failed = result["details"]["answer"]["failed_shards"]
    dead = result["details"]["black_holed_region"]
    assert failed and {shard["region"] for shard in failed} == {dead}
    assert result["details"]["sigterm"]["exit_code"] == 0


def test_durability_loses_no_call_log_rows(demo_aws: DemoAws) -> None:
    result = durability.run(demo=demo_aws, outage_seconds=3, clients=2)
    figures = assert_well_formed(result)
    lost = next(entry for name, entry in figures.items() if name.startswith("call-log rows lost"))
    assert (lost["value"], lost["status"]) == (0, "PASS")
    # Whether a call is *sent* within a 3 s outage depends on timing (calls in flight at the cut wait
    # up to the pool's 10 s): the full benchmark's 10 s outage measures that; here, no duplicates.
    assert result["details"]["duplicate_rows"] == 0


def test_pipeline_at_tiny_scale(demo_aws: DemoAws) -> None:
    result = pipeline.run(accounts=3, regions=2, reachable=1, demo=demo_aws)
    figures = assert_well_formed(result)
    assert figures["shards planned"]["value"] == 3 * 2 * len(TYPES)
    assert figures["shards accounted for (ok or failed, in the ledger and the aggregate)"]["status"] == "PASS"
    assert figures["execution"]["value"] == 1
    assert result["details"]["child_executions"] == 3 * 2
    assert figures["largest history of any one execution"]["value"] > 0


def test_tagging_throughput_batches_shared_values_and_undoes_everything(restore_demo: None) -> None:
    from bench import tagging

    result = tagging.run(total=40)
    figures = assert_well_formed(result)
    runs = result["details"]["runs"]
    for run in runs.values():
        assert run["applied"] == run["resources"] == 40 and run["failed"] == 0 and run["undone"] == 40
    # 20 resources per (region, type) pair share their tags: 20-ARN requests, one per region.
    assert runs["shared values"]["write_requests"] == {"tagging:TagResources": 2}
    assert runs["distinct values"]["write_requests"] == {"tagging:TagResources": 40}
    assert figures["write requests per resource (shared values)"]["value"] == 0.05

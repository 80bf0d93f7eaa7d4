"""``python -m bench``: every benchmark, each figure printed beside its target, results written to
``bench/results/latest.json`` and ``bench/results/latest.md``. Must finish within 15 minutes: the
scan benchmark runs last and skips estate sizes that would not fit in what remains (reported as
not measured, with the reason).

Options: ``--gateway-seconds`` (default 60; the balanced runs take half of it each, at most 30),
``--only NAME[,NAME]`` (engine, memory, cost, context, gateway, balanced, resilience, durability, pipeline,
tagging, scan), ``--budget-seconds`` (default 840: 14 minutes, leaving time to write the results).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import (
    balanced,
    context,
    cost,
    durability,
    engine,
    gateway,
    memory,
    pipeline,
    resilience,
    scan,
    tagging,
)
from .common import print_result, write_results

ORDER = (
    "engine",
    "memory",
    "cost",
    "context",
    "gateway",
    "balanced",
    "resilience",
    "durability",
    "pipeline",
    "tagging",
    "scan",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--gateway-seconds", type=float, default=60.0)
    parser.add_argument("--budget-seconds", type=float, default=840.0)
    parser.add_argument("--only", default=",".join(ORDER))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ORDER))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ORDER)}")
    started_at = datetime.now(UTC)
    started = time.monotonic()
    deadline = started + args.budget_seconds
    demo: list[Any] = []  # the demo estate shared by cost and gateway, stopped before the scan

    def shared_demo() -> Any:
        if not demo:
            from services.demo.aws import start_demo_aws

            demo.append(start_demo_aws(seed=7))
        return demo[0]

    def stop_demo() -> None:
        while demo:
            demo.pop().stop()

    def run_pipeline() -> dict[str, Any]:
        stop_demo()  # it runs its own moto server with Step Functions execution on
        return pipeline.run()

    def run_scan() -> dict[str, Any]:
        stop_demo()  # moto's backends are per process: the scan resets them
        return scan.run(deadline=deadline)

    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "engine": lambda: engine.run(),
        "memory": lambda: memory.run(),
        "cost": lambda: cost.run(demo=shared_demo()),
        "context": lambda: context.run(demo=shared_demo()),
        "gateway": lambda: gateway.run(duration=args.gateway_seconds, demo=shared_demo()),
        "balanced": lambda: balanced.run(duration=min(30.0, args.gateway_seconds / 2), demo=shared_demo()),
        "resilience": lambda: resilience.run(demo=shared_demo()),
        "durability": lambda: durability.run(demo=shared_demo()),
        "pipeline": run_pipeline,
        "tagging": lambda: (stop_demo(), tagging.run())[1],  # its own moto server: backends are per process
        "scan": run_scan,
    }
    results: list[dict[str, Any]] = []
    failed = False
    for name in ORDER:
        if name not in wanted:
            continue
        print(f"-- running {name} ({time.monotonic() - started:.0f} s elapsed)", flush=True)
        try:
            result = runners[name]()
        except Exception as error:  # a broken benchmark is reported, never silently dropped
            failed = True
            result = {
                "name": name,
                "figures": [
                    {
                        "name": "benchmark run",
                        "value": None,
                        "unit": "",
                        "status": "ERROR",
                        "reason": f"{type(error).__name__}: {error}",
                    }
                ],
                "details": {"traceback": traceback.format_exc()},
            }
            traceback.print_exc()
        results.append(result)
        print_result(result)
        write_results(results, started_at)  # partial results survive an interrupted run
    stop_demo()
    elapsed = time.monotonic() - started
    print(f"Finished in {elapsed:.0f} s. Results: bench/results/latest.json, bench/results/latest.md")
    code = 1 if failed else 0
    if any(result["details"].get("abandoned") for result in results):
        # A scan that overran the budget is still running in its threads: do not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Tagging throughput of ``apply_tag_remediation``'s core: resources tagged per second and AWS
requests per resource, counted at the moto server (``bench/moto_counting.py``) as AWS would see them.

Two change sets over the same estate (1,000 resources by default: EC2 volumes and DynamoDB tables in
two regions, seeded straight into moto's backends), each planned, journaled and written through the
product's code (``tagcompliance.tagging``) against the server over HTTP, then undone:

- shared values (every resource gets the same CostCenter / Owner): TagResources carries 20 ARNs, so
  the floor is 1/20 = 0.05 write requests a resource;
- distinct values (each resource its own Owner): one TagResources per resource, the API's worst case.

Targets: write requests per resource <= 0.06 with shared values (the 20-ARN batching holds) and
<= 1.0 with distinct ones; throughput is reported (moto's speed, not AWS's: AWS allows about 5 tagging
requests a second per account and region, i.e. ~100 resources/s with shared values).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from typing import Any

from .common import CREDENTIALS, POLICY_PATH, environment, figure

REGIONS = ("us-east-1", "eu-west-1")
TYPES = ("ec2:volume", "dynamodb:table")
WRITES = ("TagResources", "UntagResources", "PutBucketTagging", "DeleteBucketTagging")


def _writes(counts: Counter[str]) -> int:
    return sum(n for name, n in counts.items() if name.split(":", 1)[1] in WRITES)


def run(total: int = 1000) -> dict[str, Any]:
    from bench.moto_counting import named_counts, seed_backends, start_counting_server
    from tag_compliance_mcp.runtime import build_runtime
    from tagcompliance.requests import ApplyRemediationRequest, TagChange, UndoRemediationRequest
    from tagcompliance.safety.tokens import Caller
    from tagcompliance.settings import Settings
    from tagcompliance.tagging.service import TagRemediation

    server = start_counting_server()
    counter = server.counter
    assert counter is not None
    runs: dict[str, dict[str, Any]] = {}
    try:
        server.reset_backends()
        estate = seed_backends(total, REGIONS, TYPES)
        with environment(CREDENTIALS), tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                AWS_ENDPOINT_URL=server.endpoint_url,
                AWS_REGION=REGIONS[0],
                SCAN_REGIONS=",".join(REGIONS),
                POLICY_PATH=str(POLICY_PATH),
                DATA_DIR=data_dir,
                LOCAL_SCHEDULER_INTERVAL_SECONDS=0,
                AUTO_IMPORT_AWS_POLICY=False,
                REMEDIATION_ENABLED=True,
            )
            runtime = build_runtime(settings, "bench")
            try:
                remediation = TagRemediation(runtime.service)
                observed = runtime.service.observe(list(TYPES), list(REGIONS), force_refresh=True)
                arns = sorted(resource.arn for resource in observed.resources)
                caller = Caller(user_id="bench")
                for label, values in (
                    ("shared values", lambda i: {"CostCenter": "CC-3001", "Owner": "bench@example.com"}),
                    ("distinct values", lambda i: {"Owner": f"owner{i}@example.com"}),
                ):
                    changes = [TagChange(resource_arn=arn, set_tags=values(i)) for i, arn in enumerate(arns)]
                    counter.reset()
                    started = time.perf_counter()
                    plan = remediation.plan_apply(ApplyRemediationRequest(changes=changes))
                    planned = time.perf_counter()
                    plan_counts = named_counts(counter.raw_counts())
                    counter.reset()
                    result = remediation.execute(plan, caller)
                    written = time.perf_counter()
                    write_counts = named_counts(counter.raw_counts())
                    undo_plan, _ = remediation.plan_undo(
                        UndoRemediationRequest(remediation_id=result.remediation_id)
                    )
                    undone = remediation.execute(undo_plan, caller)
                    runs[label] = {
                        "resources": len(arns),
                        "applied": result.applied,
                        "failed": result.failed,
                        "undone": undone.applied,
                        "plan_seconds": round(planned - started, 3),
                        "write_seconds": round(written - planned, 3),
                        "plan_requests": dict(plan_counts),
                        "write_requests": dict(write_counts),
                    }
            finally:
                runtime.close()
    finally:
        server.reset_backends()
        server.stop()
    figures = []
    for label, target in (("shared values", 0.06), ("distinct values", 1.0)):
        entry = runs[label]
        writes = _writes(Counter(entry["write_requests"]))
        applied = max(entry["applied"], 1)
        all_requests = sum(entry["plan_requests"].values()) + sum(entry["write_requests"].values())
        figures += [
            figure(
                f"resources tagged per second ({label}, {entry['resources']} resources)",
                round(entry["applied"] / entry["write_seconds"], 1) if entry["write_seconds"] else None,
                "resources/s",
                note="journal included; moto's speed, AWS's limit is ~5 write requests/s per region",
            ),
            figure(
                f"write requests per resource ({label})",
                round(writes / applied, 4),
                "requests",
                op="<=",
                target=target,
                reason=f"write requests by operation: {entry['write_requests']}",
                to_close="group resources sharing the same tags (or keys) into 20-ARN TagResources calls",
            ),
            figure(
                f"AWS requests per resource, planning (reads) and writing ({label})",
                round(all_requests / applied, 4),
                "requests",
                note=f"reads by operation: {entry['plan_requests']}",
            ),
        ]
        if entry["failed"] or entry["undone"] != entry["applied"]:
            figures.append(
                figure(
                    f"{label}: every resource applied and undone (1 = yes)",
                    0,
                    "",
                    op="==",
                    target=1,
                    reason=f"failed {entry['failed']}, undone {entry['undone']} of {entry['applied']}",
                    to_close="see the failures in the details",
                )
            )
    return {
        "name": "7. Tagging throughput (apply_tag_remediation)",
        "figures": figures,
        "details": {"estate": {f"{r}/{t}": n for (r, t), n in estate.counts.items()}, "runs": runs},
    }

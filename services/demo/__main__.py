"""``make demo``: a seeded AWS stand-in plus the MCP gateway serving it, on embedded defaults.

Starts a moto server on a free loopback port with the demo estate, then serves the gateway over
streamable HTTP on 127.0.0.1 (SQLite store and in-memory cache, the embedded defaults), and prints
the Claude Desktop configuration for stdio against the same estate. Ctrl-C stops both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

import uvicorn

from services.mcp_gateway.runtime import build_runtime
from services.mcp_gateway.server import build_server
from tagcompliance.settings import Settings

from .aws import start_demo_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / ".data" / "demo"


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    print("Starting the demo AWS estate (moto server on 127.0.0.1)...", flush=True)
    demo = start_demo_aws(port=int(os.environ.get("DEMO_AWS_PORT", "0")) or None)
    # Each run seeds a new estate (new resource ids): start its history afresh.
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    environment = {
        **demo.environment,
        "AWS_REGION": demo.regions[0],
        "SCAN_REGIONS": ",".join(demo.regions),
        "POLICY_PATH": str(REPO_ROOT / "policies" / "tagging_policy.json"),
        "DATA_DIR": str(DATA_DIR),
    }
    os.environ.update(environment)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)  # the demo runs on the embedded defaults
    runtime = build_runtime(Settings(), "http")
    try:
        check = runtime.service.check_compliance(resource_types=["all"])
        score = "n/a" if check.compliance_score is None else f"{check.compliance_score:.1%}"
        estate = demo.estate
        print(
            f"Estate: {len(estate.resources)} resources, {len(estate.by_type())} types, regions "
            f"{', '.join(demo.regions)}. First check: {check.total_resources} found, score {score}, "
            f"{check.violation_count} violations, {len(check.failed_shards)} failed shards."
        )
        port = _free_port(int(os.environ.get("DEMO_HTTP_PORT", "8080")))
        claude_config = {
            "mcpServers": {
                "tag-compliance-demo": {
                    "command": sys.executable,
                    "args": ["-m", "services.mcp_gateway", "--transport", "stdio"],
                    "env": environment,
                }
            }
        }
        print("\nClaude Desktop (stdio) configuration, valid while this demo runs:")
        print(json.dumps(claude_config, indent=2))
        print(f"\nStreamable HTTP: http://127.0.0.1:{port}/mcp    health: http://127.0.0.1:{port}/health")
        print("Press Ctrl-C to stop.\n", flush=True)
        app = build_server(runtime).streamable_http_app(host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        runtime.close()
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

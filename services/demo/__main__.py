"""``make demo``: a seeded AWS stand-in plus the MCP gateway serving it, on embedded defaults.

Starts a moto server on a free loopback port with the demo estate, then serves the gateway over
streamable HTTP on 127.0.0.1 (SQLite store and in-memory cache, the embedded defaults), and prints
the Claude Desktop configuration for stdio against the same estate. Ctrl-C stops everything.

``python -m services.demo --auth`` serves HTTP with OAuth instead, the way production does: the
gateway is the OAuth authorization server and users log in at an identity provider - here the
built-in test IdP (demo only), which logs every login in as ``demo-user@example.com`` (granted
``tag:read`` and ``admin``) without a password or a login page; the gateway's consent page then asks
for one click on Allow per client. ``/health`` says which mode runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

from services.demo.testidp import TestOidcProvider, TestUser
from tag_compliance_mcp.auth.config import build_auth
from tag_compliance_mcp.auth.logfilter import configure_logging
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tag_compliance_mcp.sessions import http_app
from tag_compliance_mcp.settings import GatewaySettings

from .aws import start_demo_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / ".data" / "demo"
DEMO_USER = TestUser("demo-user-0001", "demo-user@example.com", ["finops-admins"])


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return int(probe.getsockname()[1])  # preferred, or the one picked for 0
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__)
    parser.add_argument(
        "--auth",
        action="store_true",
        help="serve HTTP with OAuth 2.0 + PKCE, users logging in at the built-in test IdP (demo only)",
    )
    return parser.parse_args(argv)


class _BackgroundServer:
    """The demo IdP's uvicorn server on 127.0.0.1, in a daemon thread."""

    def __init__(self, app: object, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="demo-idp", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo identity provider did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING", sys.stderr)
    data_dir = Path(os.environ.get("DEMO_DATA_DIR", str(DATA_DIR)))
    print("Starting the demo AWS estate (moto server on 127.0.0.1)...", flush=True)
    demo = start_demo_aws(port=int(os.environ.get("DEMO_AWS_PORT", "0")) or None)
    # Each run seeds a new estate (new resource ids): start its history afresh.
    shutil.rmtree(data_dir, ignore_errors=True)
    environment = {
        **demo.environment,
        "AWS_REGION": demo.regions[0],
        "SCAN_REGIONS": ",".join(demo.regions),
        "POLICY_PATH": str(REPO_ROOT / "policies" / "tagging_policy.json"),
        "DATA_DIR": str(data_dir),
    }
    os.environ.update(environment)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)  # the demo runs on the embedded defaults
    port = _free_port(int(os.environ.get("DEMO_HTTP_PORT", "8080")))
    base_url = f"http://127.0.0.1:{port}"
    idp_server: _BackgroundServer | None = None
    if args.auth:
        idp_port = _free_port(0)
        idp = TestOidcProvider(
            issuer=f"http://127.0.0.1:{idp_port}",
            redirect_uris=[f"{base_url}/oauth/callback"],
            user=DEMO_USER,
        )
        idp_server = _BackgroundServer(idp.app(), idp_port)
        idp_server.start()
        os.environ.update(
            {
                "AUTH_IDP_ISSUER_URL": idp.issuer,
                "AUTH_IDP_CLIENT_ID": idp.client_id,
                "AUTH_IDP_CLIENT_SECRET": idp.client_secret,
                "AUTH_ADMIN_GROUPS": "finops-admins",
            }
        )
    else:
        for name in ("AUTH_IDP_ISSUER_URL", "AUTH_ISSUER_URL"):
            os.environ.pop(name, None)
    settings = GatewaySettings()
    runtime = build_runtime(settings, "http")
    try:
        auth = build_auth(settings, "127.0.0.1", port, runtime.store, runtime.cache) if args.auth else None
        runtime.auth_mode = (
            auth.describe()
            + " [demo: test IdP, automatic login as demo-user@example.com, then the consent page]"
            if auth is not None
            else "none: unauthenticated loopback (demo; python -m services.demo --auth serves OAuth)"
        )
        check = runtime.service.check_compliance(resource_types=["all"], regions=list(demo.regions))
        score = "n/a" if check.compliance_score is None else f"{check.compliance_score:.1%}"
        estate = demo.estate
        print(
            f"Estate: {len(estate.resources)} resources, {len(estate.by_type())} types, regions "
            f"{', '.join(demo.regions)}. First check: {check.total_resources} found, score {score}, "
            f"{check.violation_count} violations, {len(check.failed_shards)} failed shards."
        )
        claude_config = {
            "mcpServers": {
                "tag-compliance-demo": {
                    "command": sys.executable,
                    "args": ["-m", "tag_compliance_mcp", "--transport", "stdio"],
                    "env": environment,
                }
            }
        }
        print("\nClaude Desktop (stdio) configuration, valid while this demo runs:")
        print(json.dumps(claude_config, indent=2))
        print(f"\nStreamable HTTP: {base_url}/mcp    health: {base_url}/health")
        if auth is not None:
            print(
                "OAuth 2.0 + PKCE is on. Connect an MCP client that supports OAuth (Claude Desktop custom\n"
                f"connector, MCP Inspector) to {base_url}/mcp: it discovers {base_url}/.well-known/"
                "oauth-protected-resource/mcp,\nregisters itself and opens the browser. The login is "
                f"automatic (test IdP at {settings.auth_idp_issuer_url}, demo only:\n"
                "every login is demo-user@example.com, granted tag:read and admin); then the gateway's\n"
                "consent page asks you to click Allow (once per client; remembered for AUTH_CONSENT_DAYS)."
            )
        else:
            print("No authentication (loopback only). Run `python -m services.demo --auth` for OAuth.")
        print("Press Ctrl-C to stop.\n", flush=True)
        app = http_app(build_server(runtime, auth), settings, "127.0.0.1", auth, runtime.cache)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    finally:
        runtime.close()
        if idp_server is not None:
            idp_server.stop()
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

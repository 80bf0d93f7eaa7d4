"""The entry points as real processes: ``python -m services.demo --auth`` (OAuth on, health says so,
the official client completes the flow with the demo IdP's automatic login and the consent click), and
``python -m tag_compliance_mcp --transport http`` as the authorization server, whose DEBUG log
must hold no token, code or secret."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from bench.common import stop_process
from services.demo.aws import DemoAws
from services.demo.testidp import TestOidcProvider

from .conftest import ALICE, ServerThread, connect, free_port, oauth_client_for

pytestmark = pytest.mark.anyio
REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-m", "tag_compliance_mcp", "--transport", "http"]


async def test_demo_with_auth(tmp_path: Path) -> None:
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AUTH_")}
    environment.update(DEMO_HTTP_PORT=str(port), DEMO_DATA_DIR=str(tmp_path / "demo"), PYTHONUNBUFFERED="1")
    log = (tmp_path / "demo.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.demo", "--auth"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while "Press Ctrl-C" not in (tmp_path / "demo.log").read_text():
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not start in 180 s"
            time.sleep(0.5)
        output = (tmp_path / "demo.log").read_text()
        assert f"Streamable HTTP: {base}/mcp" in output and "OAuth 2.0 + PKCE is on" in output
        assert "consent page asks you to click Allow" in output  # the login is automatic, the consent not
        async with httpx.AsyncClient() as http:
            while True:  # the banner is printed just before uvicorn starts listening
                try:
                    response = await http.get(f"{base}/health")
                    break
                except httpx.ConnectError:
                    assert process.poll() is None and time.monotonic() < deadline, output
                    time.sleep(0.2)
            health = response.json()
            assert "login delegated to http://127.0.0.1:" in health["auth"] and "demo" in health["auth"]
            unauthenticated = await http.post(
                f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
            assert unauthenticated.status_code == 401
        client = oauth_client_for(f"{base}/mcp", "tag:read")
        async with connect(f"{base}/mcp", auth=client.provider) as mcp:
            result = await mcp.call_tool("get_tagging_policy", {})
            assert not result.is_error, result.content
        tokens = client.storage.tokens
        # the demo user is in AUTH_ADMIN_GROUPS, and the client asks for every advertised scope
        assert tokens is not None and tokens.scope == "tag:read admin" and tokens.expires_in == 3600
        output = (tmp_path / "demo.log").read_text()
        assert tokens.access_token not in output and (tokens.refresh_token or "-") not in output
    finally:
        stop_process(process)
        log.close()


async def wait_for_health(base: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as http:
        while True:
            try:
                return dict((await http.get(f"{base}/health")).json())
            except httpx.ConnectError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the gateway did not start in 120 s"
                time.sleep(0.3)


async def test_gateway_process_as_authorization_server(demo_aws: DemoAws, tmp_path: Path) -> None:
    port, idp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    idp = TestOidcProvider(
        issuer=f"http://127.0.0.1:{idp_port}", redirect_uris=[f"{base}/oauth/callback"], user=ALICE
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AUTH_")}
    for name in ("DATABASE_URL", "REDIS_URL"):
        environment.pop(name, None)
    environment.update(demo_aws.environment)
    environment.update(
        AWS_REGION=demo_aws.regions[0],
        SCAN_REGIONS=",".join(demo_aws.regions),
        POLICY_PATH=str(REPO_ROOT / "policies" / "tagging_policy.json"),
        DATA_DIR=str(tmp_path / "data"),
        AUTH_IDP_ISSUER_URL=idp.issuer,
        AUTH_IDP_CLIENT_ID=idp.client_id,
        AUTH_IDP_CLIENT_SECRET=idp.client_secret,
        LOCAL_SCHEDULER_INTERVAL_SECONDS="0",
    )
    log_path = tmp_path / "gateway.log"
    with ServerThread(idp.app(), idp_port), log_path.open("w") as log:
        process = subprocess.Popen(
            [*GATEWAY, "--port", str(port), "--log-level", "DEBUG"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            health = await wait_for_health(base, process, log_path)
            assert str(health["auth"]).startswith(f"oauth (issuer {base}: this gateway, login delegated to")
            client = oauth_client_for(f"{base}/mcp", "tag:read")
            async with connect(f"{base}/mcp", auth=client.provider) as mcp:
                result = await mcp.call_tool(
                    "check_tag_compliance",
                    {"resource_types": ["s3:bucket"], "regions": [demo_aws.regions[0]]},
                )
                assert not result.is_error, result.content
            tokens, info = client.storage.tokens, client.storage.client_info
            assert tokens is not None and tokens.refresh_token and info is not None and info.client_secret
            async with httpx.AsyncClient() as http:
                form = {"client_id": info.client_id, "client_secret": info.client_secret}
                refreshed = await http.post(
                    f"{base}/token",
                    data={**form, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                )
                assert refreshed.status_code == 200, refreshed.text
                revoked = await http.post(
                    f"{base}/revoke", data={**form, "token": refreshed.json()["refresh_token"]}
                )
                assert revoked.status_code == 200
        finally:
            stop_process(process)
    text = log_path.read_text()
    assert "GET /oauth/callback?[redacted]" in text and "DEBUG" in text, text[-3000:]
    secrets = [
        tokens.access_token,
        tokens.refresh_token,
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        info.client_secret,
        idp.client_secret,
        *client.browser.codes,
    ]
    for secret in secrets:
        assert secret not in text, "a secret reached the gateway's log"
    assert (tmp_path / "data" / "oauth-signing-key.pem").exists()  # generated for local mode

"""The gateway rehearsed as its image runs: ``requirements.txt`` alone, the files the Dockerfile copies,
its environment, entrypoint and command; one tool called over stdio and over HTTP with OAuth; no
development code (the demo, the test IdP) in it.

No docker engine: ``image.lay_out_gateway_image`` reads the Dockerfile. The process gets the image's
environment plus what a deployment gives it (AWS credentials and endpoint: the demo estate's moto
server; for HTTP the IdP settings), never the test's own environment. The HTTP command is the image's
CMD with ``--host``/``--port`` moved to a free loopback port.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client, StdioServerParameters

from services.demo.aws import DemoAws
from services.demo.testidp import TestOidcProvider
from tests.auth.conftest import ALICE, ServerThread, anyio_backend, connect, free_port, oauth_client_for
from tests.e2e.helpers import call

from .image import GatewayImage, lay_out_gateway_image

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
__all__ = ["anyio_backend"]  # the fixture, imported for this module's async tests

BASE_IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"  # python:3.11-slim's PATH before the image's ENV
TOOL_SCOPE = {"resource_types": ["sns:topic"], "regions": ["us-east-1"]}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> GatewayImage:
    return lay_out_gateway_image(tmp_path_factory.mktemp("gateway-image"), BASE_IMAGE_PATH)


def deployment_environment(image: GatewayImage, demo: DemoAws, **extra: str) -> dict[str, str]:
    home = image.local("/home/mcp")
    home.mkdir(parents=True, exist_ok=True)
    return {
        **image.environment,
        **demo.environment,
        "HOME": str(home),
        "AWS_REGION": demo.regions[0],
        "SCAN_REGIONS": ",".join(demo.regions),
        **extra,
    }


def run_python_in(image: GatewayImage, script: str) -> subprocess.CompletedProcess[str]:
    """``python -c script`` as the image runs it: its environment and working directory only."""
    return subprocess.run(
        image.command("python", "-c", script),
        env=image.environment,
        cwd=image.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_image_runs_what_it_was_built_from(image: GatewayImage) -> None:
    """Its code is the installed copy of what the Dockerfile copied, its packages requirements.txt's."""
    probe = (
        "import mcp, tag_compliance_mcp, tagcompliance, tagcompliance.settings as s;"
        "print(tag_compliance_mcp.__file__); print(tagcompliance.__file__); print(mcp.__file__);"
        "print(s.Settings().policy_path)"
    )
    result = run_python_in(image, probe)
    assert result.returncode == 0, result.stderr[-3000:]
    gateway, core, mcp_package, policy = result.stdout.split()
    assert gateway.startswith(str(image.root / "site-packages" / "tag_compliance_mcp"))
    # The wheel's own names only: no generic top-level package (the Lambda handlers are not in it).
    assert not (image.root / "site-packages" / "services").exists()
    assert core.startswith(str(image.root / "site-packages" / "tagcompliance"))
    assert mcp_package.startswith(str(image.venv))
    assert Path(policy) == image.local("/app/policies/tagging_policy.json") and Path(policy).is_file()


def test_the_image_holds_no_demo_and_no_test_idp_and_the_gateway_loads_without_them(
    image: GatewayImage,
) -> None:
    """Development code stays out: no demo package, no test IdP module, anywhere in the image; every
    gateway module imports from the image (the stdio and HTTP tests below start it)."""
    shipped = [
        path for path in image.root.rglob("*") if "stage-" not in path.relative_to(image.root).parts[0]
    ]
    assert not [path for path in shipped if path.name == "demo" and path.parent.name == "services"]
    assert not [path for path in shipped if path.name.startswith("testidp")]
    probe = (
        "import importlib, pkgutil, tag_compliance_mcp as gateway\n"
        "for module in pkgutil.walk_packages(gateway.__path__, 'tag_compliance_mcp.'):\n"
        "    importlib.import_module(module.name)\n"
        "for absent in ('services.demo', 'services.demo.testidp'):\n"
        "    try:\n"
        "        importlib.import_module(absent)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise SystemExit(f'{absent} is importable in the image')\n"
    )
    result = run_python_in(image, probe)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-1000:]


async def test_stdio_calls_a_tool(image: GatewayImage, demo_aws: DemoAws) -> None:
    command = image.command("python", "-m", "tag_compliance_mcp", "--transport", "stdio")
    parameters = StdioServerParameters(
        command=command[0],
        args=command[1:],
        env=deployment_environment(image, demo_aws),
        cwd=str(image.workdir),
    )
    async with Client(parameters) as client:
        result = await call(client, "check_tag_compliance", **TOOL_SCOPE)
    assert result["total_resources"] == demo_aws.estate.expected_summary(**TOOL_SCOPE).total


def http_command(image: GatewayImage, port: int) -> list[str]:
    """The image's CMD on a loopback port (the image binds 0.0.0.0:8080)."""
    cmd = list(image.cmd)
    assert cmd[cmd.index("--transport") + 1] == "http"
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    return image.command(*cmd)


@pytest.fixture
def gateway_over_http(image: GatewayImage, demo_aws: DemoAws) -> Iterator[str]:
    """The image's command serving HTTP with the gateway as OAuth authorization server over a test IdP."""
    idp_port, port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{port}"
    idp = TestOidcProvider(
        issuer=f"http://127.0.0.1:{idp_port}", redirect_uris=[f"{gateway}/oauth/callback"], user=ALICE
    )
    environment = deployment_environment(
        image,
        demo_aws,
        AUTH_IDP_ISSUER_URL=idp.issuer,
        AUTH_IDP_CLIENT_ID=idp.client_id,
        AUTH_IDP_CLIENT_SECRET=idp.client_secret,
    )
    with ServerThread(idp.app(), idp_port):
        process = subprocess.Popen(
            http_command(image, port),
            env=environment,
            cwd=image.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = httpx.get(f"{gateway}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        pytest.fail(f"the gateway did not start: {process.communicate()[1].decode()[-3000:]}")
                    time.sleep(0.3)
            assert (
                health.status_code == 200 and "this gateway, login delegated to" in health.json()["auth"]
            ), health.text
            yield f"{gateway}/mcp"
        finally:
            process.terminate()
            process.wait(timeout=20)


async def test_http_with_oauth_calls_a_tool(gateway_over_http: str, demo_aws: DemoAws) -> None:
    async with httpx.AsyncClient() as http:
        refused = await http.post(gateway_over_http, json={})
    assert refused.status_code == 401 and "resource_metadata=" in refused.headers["www-authenticate"]
    client = oauth_client_for(gateway_over_http, "tag:read")
    async with connect(gateway_over_http, auth=client.provider) as mcp:
        result = await mcp.call_tool("check_tag_compliance", TOOL_SCOPE)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert (
        result.structured_content["total_resources"] == demo_aws.estate.expected_summary(**TOOL_SCOPE).total
    )


def test_localstack_asked_of_the_image_says_the_client_is_not_installed(
    image: GatewayImage, demo_aws: DemoAws
) -> None:
    """localstack-client is a development dependency only (sdist-only: the Lambda layer takes wheels)."""
    environment = deployment_environment(image, demo_aws, USE_LOCALSTACK="true")
    environment.pop("AWS_ENDPOINT_URL")
    result = subprocess.run(
        image.command("python", "-m", "tag_compliance_mcp", "--transport", "stdio"),
        env=environment,
        cwd=image.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "USE_LOCALSTACK=true needs the localstack-client package, which is not installed" in result.stderr
    assert "Traceback" not in result.stderr

"""The product as its users install it, built once per test session: the wheel built from the
repository and installed into a fresh virtualenv with nothing but its declared dependencies, and the
Claude Desktop bundle packed by the pinned mcpb CLI. Each process started from them runs outside the
checkout with an environment of its own (never the test's), against the session's moto estate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from operations.bundle import build_bundle
from services.demo.aws import DemoAws

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "policies" / "tagging_policy.json"
PIP_TIMEOUT_SECONDS = 900
# uv's downloads outlive the session (build/ is ignored by git), so only the first run fetches them.
UV_CACHE = ROOT / "build" / "uv-cache"
# The machine's network configuration (TLS roots, proxies), passed on to the processes under test:
# uv reaches the package index through it, as it would on the user's machine.
NETWORK_VARIABLES = {"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
SCOPE = {"resource_types": ["ec2:instance", "s3:bucket"], "regions": ["us-east-1", "eu-west-1"]}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


# The Node.js CLIs these tests run, as package.json pins them.
NODE_TOOLS = ("@anthropic-ai/mcpb", "@modelcontextprotocol/inspector")


@pytest.fixture(scope="session", autouse=True)
def pinned_node_tools() -> None:
    """The pinned mcpb and Inspector CLIs, installed from package-lock.json when missing or stale
    (a node_modules from before they were pinned), never skipped."""
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]

    def installed(name: str) -> str | None:
        manifest = ROOT / "node_modules" / name / "package.json"
        return json.loads(manifest.read_text(encoding="utf-8"))["version"] if manifest.exists() else None

    if any(installed(name) != pinned[name] for name in NODE_TOOLS):
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the pinned mcpb and MCP Inspector CLIs (package.json)"
        run([npm, "ci", "--no-audit", "--no-fund"], "npm ci", cwd=ROOT)
    assert all(installed(name) == pinned[name] for name in NODE_TOOLS)


def run(command: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({' '.join(command[:4])} ...):\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the repository (PEP 517, the build backend of pyproject.toml)."""
    directory = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(directory), str(ROOT)],
        "pip wheel",
    )
    (built,) = directory.glob("tag_compliance_mcp-*.whl")
    return built


@dataclass(frozen=True)
class Installed:
    venv: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "tag-compliance-mcp"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtualenv holding the wheel and what its metadata requires, resolved by pip."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    run([sys.executable, "-m", "venv", str(venv)], "creating the virtualenv")
    run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], "pip install the wheel"
    )
    return Installed(venv)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory and a home outside the checkout (the user's data folder lies in it)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    return tmp_path


def user_environment(demo: DemoAws, home: Path, **extra: str) -> dict[str, str]:
    """What a user's MCP client gives the server: a PATH, a HOME and the AWS settings (here the moto
    estate's endpoint and credentials); nothing of the test's own environment but the network's."""
    return {
        **{name: value for name, value in os.environ.items() if name.upper() in NETWORK_VARIABLES},
        "PATH": os.defpath,
        "HOME": str(home),
        **demo.environment,
        "AWS_REGION": demo.regions[0],
        "SCAN_REGIONS": ",".join(demo.regions),
        **extra,
    }


@dataclass(frozen=True)
class UnpackedBundle:
    mcpb: Path
    root: Path

    @property
    def manifest(self) -> dict[str, object]:
        return json.loads((self.root / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpackedBundle]:
    """The .mcpb as `make bundle` packs it, unpacked (it is a zip) the way a host installs it."""
    directory = tmp_path_factory.mktemp("bundle")
    packed = build_bundle(directory / "tag-compliance-mcp.mcpb")
    unpacked = directory / "installed"
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(unpacked)
    yield UnpackedBundle(packed, unpacked)
    shutil.rmtree(unpacked / ".venv", ignore_errors=True)

"""The Claude Desktop bundle (.mcpb): validated and packed by the pinned mcpb CLI, then started the way
a host starts it: unpacked, its ``mcp_config`` command run with ``${__dirname}`` and the user's
``user_config`` substituted (uv installs the dependencies from the bundle's pyproject.toml), and it
answers the official MCP client with the tools its manifest declares."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from services.demo.aws import DemoAws
from tests.e2e.helpers import call

from .conftest import DEMO_POLICY, ROOT, SCOPE, UV_CACHE, UnpackedBundle, user_environment

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
PLACEHOLDER = re.compile(r"\$\{(__dirname|user_config\.([a-z_]+))\}")


def substitute(value: str, bundle: Path, user_config: dict[str, str]) -> str:
    """A host's substitution: ``${__dirname}`` is the unpacked bundle, ``${user_config.x}`` the user's value."""
    return PLACEHOLDER.sub(
        lambda m: str(bundle) if m.group(1) == "__dirname" else user_config[m.group(2)], value
    )


def test_the_bundle_holds_the_sources_and_no_dependencies(bundle: UnpackedBundle) -> None:
    root = bundle.root
    assert (root / "manifest.json").is_file() and (root / "server" / "main.py").is_file()
    assert (root / "pyproject.toml").read_bytes() == (ROOT / "pyproject.toml").read_bytes()
    assert (root / "services" / "mcp_gateway" / "__main__.py").is_file()
    assert (root / "layers" / "common" / "python" / "tagcompliance" / "store" / "migrations").is_dir()
    # a uv bundle: the host installs the dependencies (no server/lib, no venv), development code stays out
    assert not (root / "server" / "lib").exists() and not (root / "services" / "demo").exists()
    assert not list(root.rglob("__pycache__"))


def test_the_manifest_configures_profile_regions_and_policy(bundle: UnpackedBundle) -> None:
    manifest: dict[str, Any] = bundle.manifest
    server = manifest["server"]
    assert server["type"] == "uv" and server["entry_point"] == "server/main.py"
    assert set(manifest["user_config"]) == {"aws_profile", "regions", "policy_path"}
    assert server["mcp_config"]["env"] == {
        "AWS_PROFILE": "${user_config.aws_profile}",
        "SCAN_REGIONS": "${user_config.regions}",
        "POLICY_PATH": "${user_config.policy_path}",
    }


async def test_the_unpacked_bundle_serves_its_declared_tools(
    bundle: UnpackedBundle, demo_aws: DemoAws, tmp_path: Path
) -> None:
    manifest: dict[str, Any] = bundle.manifest
    policy = tmp_path / "policy.json"
    shutil.copy(DEMO_POLICY, policy)
    # The profile left empty (moto's credentials come from the environment), as a user may leave it.
    user_config = {"aws_profile": "", "regions": ",".join(SCOPE["regions"]), "policy_path": str(policy)}
    config = manifest["server"]["mcp_config"]
    assert config["command"] == "uv"
    uv = Path(sys.executable).with_name("uv")  # the host's uv: here the development environment's
    (tmp_path / "home").mkdir()
    environment = {
        **user_environment(demo_aws, tmp_path / "home"),
        "UV_CACHE_DIR": str(UV_CACHE),
        "UV_PYTHON": getattr(sys, "_base_executable", sys.executable),
        "UV_PYTHON_DOWNLOADS": "never",
        **{name: substitute(value, bundle.root, user_config) for name, value in config["env"].items()},
    }
    parameters = StdioServerParameters(
        command=str(uv),
        args=[substitute(argument, bundle.root, user_config) for argument in config["args"]],
        env=environment,
        cwd=str(tmp_path),
    )
    async with Client(parameters) as client:
        tools = await client.list_tools()
        loaded = await call(client, "get_tagging_policy")
        result = await call(client, "check_tag_compliance", **SCOPE)
    assert {tool.name for tool in tools.tools} == {tool["name"] for tool in manifest["tools"]}
    assert loaded["path"] == str(policy)
    expected = demo_aws.estate.expected_summary(**SCOPE)
    assert (result["total_resources"], result["compliant_resources"]) == (expected.total, expected.compliant)

"""The wheel as a user installs it (``pipx install`` / ``uvx`` do the same: a fresh virtualenv, the
wheel and its declared dependencies): the ``tag-compliance-mcp`` command, started from a directory
outside the checkout with no settings but the AWS ones, answers the official MCP client and the
TypeScript MCP Inspector; it keeps its store in the user's data folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from services.demo.aws import DemoAws
from services.demo.estate import load_demo_policy
from tests.e2e.helpers import call

from .conftest import DEMO_POLICY, ROOT, SCOPE, Installed, user_environment

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
INSPECTOR = ROOT / "node_modules" / ".bin" / "mcp-inspector"


def test_the_virtualenv_holds_the_two_packages_that_are_ours_and_consistent_dependencies(
    installed: Installed,
) -> None:
    result = subprocess.run(
        [str(installed.python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (site_packages,) = installed.venv.glob("lib/python*/site-packages")
    ours = {path.name for path in site_packages.iterdir() if path.name.startswith("tag")}
    assert {"tag_compliance_mcp", "tagcompliance"} <= ours
    assert not (site_packages / "services").exists() and not (site_packages / "stacks").exists()
    # only runtime dependencies: nothing of the development tooling came along
    assert not list(site_packages.glob("moto*")) and not list(site_packages.glob("pytest*"))


def stdio(installed: Installed, environment: dict[str, str], cwd: Path) -> StdioServerParameters:
    return StdioServerParameters(command=str(installed.command), args=[], env=environment, cwd=str(cwd))


async def test_the_command_serves_stdio_with_the_default_policy_and_the_user_data_folder(
    installed: Installed, demo_aws: DemoAws, outside: Path
) -> None:
    """No POLICY_PATH, no DATA_DIR: the built-in policy (moto has no organization to import one
    from) and the store under ~/.local/share/tag-compliance."""
    home = outside / "home"
    parameters = stdio(installed, user_environment(demo_aws, home), outside / "cwd")
    async with Client(parameters) as client:
        policy = await call(client, "get_tagging_policy")
        result = await call(client, "check_tag_compliance", **SCOPE)
    assert policy["source"] == "default"
    assert result["total_resources"] == demo_aws.estate.expected_summary(**SCOPE).total
    assert (home / ".local" / "share" / "tag-compliance" / "tagcompliance.sqlite3").is_file()
    assert not list((outside / "cwd").iterdir()), "nothing is written to the working directory"


async def test_the_command_checks_against_the_users_policy_file(
    installed: Installed, demo_aws: DemoAws, outside: Path
) -> None:
    policy = outside / "my-policy.json"
    shutil.copy(DEMO_POLICY, policy)
    environment = user_environment(demo_aws, outside / "home", POLICY_PATH=str(policy))
    async with Client(stdio(installed, environment, outside / "cwd")) as client:
        loaded = await call(client, "get_tagging_policy")
        result = await call(client, "check_tag_compliance", **SCOPE)
    assert loaded["path"] == str(policy) and loaded["digest"] == load_demo_policy(policy).digest()
    expected = demo_aws.estate.expected_summary(**SCOPE)
    assert (result["total_resources"], result["compliant_resources"]) == (expected.total, expected.compliant)


def test_a_start_up_error_names_the_setting_to_fix(
    installed: Installed, demo_aws: DemoAws, outside: Path
) -> None:
    broken = outside / "broken.json"
    broken.write_text("{", encoding="utf-8")
    environment = user_environment(demo_aws, outside / "home", POLICY_PATH=str(broken), SCAN_REGIONS="moon-1")

    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(installed.command)],
            env=environment,
            cwd=outside / "cwd",
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = start()
    assert result.returncode == 2
    assert "cannot start: SCAN_REGIONS:" in result.stderr and "Traceback" not in result.stderr
    environment["SCAN_REGIONS"] = demo_aws.regions[0]
    result = start()
    assert result.returncode == 2 and f"{broken} (POLICY_PATH) is not valid JSON" in result.stderr


def test_the_mcp_inspector_cli_lists_and_calls_the_tools(
    installed: Installed, demo_aws: DemoAws, outside: Path
) -> None:
    """An independent client (the TypeScript SDK's, through the pinned Inspector CLI) sees the same tools."""
    environment = user_environment(demo_aws, outside / "home")
    options = [item for name, value in environment.items() for item in ("-e", f"{name}={value}")]

    def inspector(*method: str) -> dict[str, object]:
        result = subprocess.run(
            [str(INSPECTOR), "--cli", str(installed.command), *options, *method],
            cwd=outside / "cwd",
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return json.loads(result.stdout)

    listed = inspector("--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}  # type: ignore[union-attr]
    assert {"check_tag_compliance", "get_tagging_policy", "import_aws_tag_policy"} <= names
    called = inspector("--method", "tools/call", "--tool-name", "get_tagging_policy")
    assert called.get("isError") is not True
    assert called["structuredContent"]["source"] == "default"  # type: ignore[index]

"""What ships: the built distribution holds every package and its data files, read the way an
installed copy reads them."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "common" / "python" / "tagcompliance"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution's files as setuptools builds them from pyproject.toml (packages + package data)."""
    build_lib = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            build_lib,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return build_lib


GATEWAY = ROOT / "services" / "mcp_gateway"
# Development only, never shipped: the demo estate and the test IdP.
DEVELOPMENT_ONLY = ROOT / "services" / "demo"


def test_every_python_package_of_the_core_and_the_gateway_is_built_under_its_own_name(built: Path) -> None:
    """The core as tagcompliance, the gateway's directory as tag_compliance_mcp (pyproject's mapping)."""
    for top, name in ((CORE, "tagcompliance"), (GATEWAY, "tag_compliance_mcp")):
        for init in top.rglob("__init__.py"):
            relative = init.relative_to(top)
            assert (built / name / relative).is_file(), (
                f"{name}/{relative} is not listed in pyproject's packages"
            )


def test_nothing_is_built_under_a_generic_top_level_name(built: Path) -> None:
    """Only the two names that are ours: no `services` (the Lambda handlers ship in their own asset)."""
    assert sorted(path.name for path in built.iterdir()) == ["tag_compliance_mcp", "tagcompliance"]


def test_the_demo_and_the_test_idp_are_not_built(built: Path) -> None:
    assert DEVELOPMENT_ONLY.is_dir() and (DEVELOPMENT_ONLY / "testidp.py").is_file()
    assert not list(built.rglob("demo"))
    assert not list(built.rglob("testidp*"))


def test_the_openops_code_step_is_package_data_read_from_the_built_copy(built: Path) -> None:
    assert (built / "tagcompliance" / "remediation" / "scripts" / "openops_evaluation.js").is_file()
    # -S: without the editable install's .pth, so only the built copy can supply tagcompliance.
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(built)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        "from tagcompliance.remediation import openops\n"
        f"assert openops.__file__.startswith({str(built)!r}), openops.__file__\n"
        "source = openops.evaluation_script()\n"
        "assert source.startswith('const RULES = JSON.parse(JSON.stringify(__RULES__));'), source[:80]\n"
        "assert 'export const code = async (inputs) =>' in source, 'the step exports its code function'\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


MAX_MODULE_LINES = 600
# Excepted by design: one row per resource type. Every other module is split by what it owns.
EXEMPT = {
    "layers/common/python/tagcompliance/resources.py",
}
CHECKED_TREES = ("layers", "services", "operations")


def _module_lengths() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for top in CHECKED_TREES
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_no_module_under_layers_services_or_operations_exceeds_the_size_limit() -> None:
    over = {name: lines for name, lines in _module_lengths().items() if lines > MAX_MODULE_LINES}
    unexpected = {name: lines for name, lines in over.items() if name not in EXEMPT}
    assert not unexpected, f"modules over {MAX_MODULE_LINES} lines: split them by what they own: {unexpected}"


def test_the_exemptions_only_name_modules_still_over_the_limit() -> None:
    lengths = _module_lengths()
    missing = sorted(name for name in EXEMPT if name not in lengths)
    assert not missing, f"exempted modules that no longer exist: {missing}"
    fixed = sorted(name for name in EXEMPT if lengths[name] <= MAX_MODULE_LINES)
    assert not fixed, f"now within the limit: remove them from EXEMPT: {fixed}"


# Spelled in parts, so that the rename script (git log: "Rename: import the gateway as
# tag_compliance_mcp") leaves this test alone when it is re-applied after a merge.
DIRECTORY_PACKAGE = ".".join(("services", "mcp_gateway"))
DOTTED_DIRECTORY_NAME = re.compile(rf"\b{re.escape(DIRECTORY_PACKAGE)}\b")


def test_the_gateway_is_imported_by_one_name_only() -> None:
    """No source names the gateway by its directory's dotted path, and that path refuses to import (a
    second name would load every gateway module twice)."""
    sources = [
        path
        for top in ("services", "stacks", "tests", "bench", "operations", "layers")
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts and path != Path(__file__)
    ]
    offenders = [
        str(path.relative_to(ROOT)) for path in sources if DOTTED_DIRECTORY_NAME.search(path.read_text())
    ]
    assert not offenders, f"import the gateway as tag_compliance_mcp: {offenders}"
    result = subprocess.run(
        [sys.executable, "-c", f"import {DIRECTORY_PACKAGE}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "the MCP gateway is the package tag_compliance_mcp" in result.stderr

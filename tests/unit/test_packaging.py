"""What ships: the built distribution holds every package and its data files, read the way an
installed copy reads them."""

from __future__ import annotations

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


def test_every_python_package_of_the_core_and_services_is_built(built: Path) -> None:
    for top in (CORE, ROOT / "services"):
        for init in top.rglob("__init__.py"):
            relative = init.relative_to(top.parent)
            assert (built / relative).is_file(), f"{relative} is not listed in pyproject's packages"


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

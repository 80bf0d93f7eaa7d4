"""The Claude Desktop bundle (an MCP Bundle, ``.mcpb``) built from the repository: a release step, run
from a checkout with ``make setup`` and ``npm ci`` done (``make bundle``).

    python -m operations.bundle [OUTPUT]        # default build/tag-compliance-mcp-<version>.mcpb

The bundle is of the ``uv`` server type: it holds the sources and pyproject.toml, not the dependencies,
and the host (Claude Desktop) installs those with uv for the user's platform (psycopg, pydantic-core
and other compiled wheels cannot be bundled portably). What it holds:

- ``manifest.json`` from ``services/mcp_gateway/mcpb/`` (user_config: AWS profile, regions, policy file),
- ``server/main.py``, its entry point, from the same directory,
- ``pyproject.toml``, ``requirements.txt`` (the runtime dependencies) and ``README.md`` (the package's
  description), and the two packages the wheel is built from: ``layers/common/python/tagcompliance``
  and ``services/mcp_gateway`` (without its Dockerfile and this bundle's own sources).

The manifest is validated and the directory packed with the ``@anthropic-ai/mcpb`` CLI pinned in
package.json (never a version npx would download).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_SOURCES = ROOT / "services" / "mcp_gateway" / "mcpb"
MANIFEST = BUNDLE_SOURCES / "manifest.json"
PROJECT_FILES = ("pyproject.toml", "requirements.txt", "README.md")
PACKAGE_DIRECTORIES = ("layers/common/python/tagcompliance", "services/mcp_gateway")
LEFT_OUT = ("__pycache__", "Dockerfile", BUNDLE_SOURCES.name)
MCPB_TIMEOUT_SECONDS = 180


class BundleError(RuntimeError):
    """The mcpb CLI refused the manifest or the bundle, or is not installed."""


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def default_output() -> Path:
    return ROOT / "build" / f"tag-compliance-mcp-{project_version()}.mcpb"


def stage(directory: Path) -> Path:
    """The bundle's files laid out under ``directory`` (which must not exist yet)."""
    directory.mkdir(parents=True)
    shutil.copy2(MANIFEST, directory / "manifest.json")
    (directory / "server").mkdir()
    shutil.copy2(BUNDLE_SOURCES / "main.py", directory / "server" / "main.py")
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, directory / name)
    for relative in PACKAGE_DIRECTORIES:
        shutil.copytree(
            ROOT / relative, directory / relative, ignore=shutil.ignore_patterns(*LEFT_OUT, "*.pyc")
        )
    return directory


def mcpb(*arguments: str) -> str:
    """Run the pinned mcpb CLI from the repository (node_modules/.bin), its output on success."""
    cli = ROOT / "node_modules" / ".bin" / "mcpb"
    if not cli.exists():
        raise BundleError(f"{cli} is missing: run `npm ci` (make setup does) to install the pinned mcpb CLI")
    result = subprocess.run(
        [str(cli), *arguments], cwd=ROOT, capture_output=True, text=True, timeout=MCPB_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        raise BundleError(
            f"mcpb {' '.join(arguments)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def build_bundle(output: Path) -> Path:
    """Validate the manifest, stage the bundle and pack it into ``output`` (a ``.mcpb`` zip)."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    if manifest["version"] != project_version():
        raise BundleError(f"{MANIFEST} has version {manifest['version']}, pyproject.toml {project_version()}")
    mcpb("validate", str(MANIFEST))
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcpb-") as scratch:
        staged = stage(Path(scratch) / "tag-compliance-mcp")
        mcpb("pack", str(staged), str(output.resolve()))
    return output

"""`cdk synth` through the pinned CLI (package.json), offline, on a fresh output directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINNED_CLI = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["aws-cdk"]


def _ensure_cli() -> None:
    """Install the pinned CLI from package-lock.json when node_modules is missing (never skip)."""
    installed = ROOT / "node_modules" / "aws-cdk" / "package.json"
    if not installed.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the pinned AWS CDK CLI (package.json)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=600)
    assert json.loads(installed.read_text(encoding="utf-8"))["version"] == PINNED_CLI


def test_pinned_cli_synthesizes_dev_offline(tmp_path: Path) -> None:
    _ensure_cli()
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # No network: any attempt to reach AWS or the npm registry fails fast instead of hanging.
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [
            str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--no-notices", "-c", "env=dev",
            "-c", "lambda_deps_dir=stacks/lambda_deps_placeholder",
            "--app", f"{sys.executable} app.py", "--output", str(out),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    templates = sorted(p.name for p in out.glob("*.template.json"))
    assert templates == [
        "TagCompliance-Registry.template.json",
        "TagCompliance-dev-Data.template.json",
        "TagCompliance-dev-Gateway.template.json",
        "TagCompliance-dev-Monitoring.template.json",
        "TagCompliance-dev-Network.template.json",
        "TagCompliance-dev-Pipeline.template.json",
    ]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "TagCompliance-dev-Gateway" in manifest["artifacts"]


def test_unknown_environment_is_refused_with_the_known_names(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({"env": "qa"}), "CDK_OUTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "unknown environment 'qa'" in result.stderr and "dev, prod, staging" in result.stderr

"""The CDK app synthesized once per environment for the whole session (jsii is slow).

``synthesized[env]`` holds the ``Deployment`` (the constructs, for their attributes), one
``Template`` per stack, and the cloud assembly directory (templates for cfn-lint, nag metadata).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

from stacks.config import ENVIRONMENT_NAMES, cdk_json_context, load_config
from stacks.stacks import Deployment, build

STACK_KINDS = ("registry", "network", "data", "pipeline", "gateway", "monitoring")


@dataclass
class Synthesized:
    env: str
    deployment: Deployment
    templates: dict[str, Template]
    outdir: Path

    def template(self, kind: str) -> Template:
        return self.templates[kind]

    def resources(self, kind: str, resource_type: str) -> dict[str, Any]:
        return self.templates[kind].find_resources(resource_type)

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


# The tests never need the real third-party packages (build/lambda-deps, ~120 MB to copy per synth).
TEST_CONTEXT = {"lambda_deps_dir": "stacks/lambda_deps_placeholder"}


def synthesize(env: str, outdir: Path, **context: Any) -> Synthesized:
    app = App(context={**cdk_json_context(), **TEST_CONTEXT, "env": env, **context}, outdir=str(outdir))
    deployment = build(app, load_config(app))
    app.synth()
    templates = {kind: Template.from_stack(deployment.stacks[kind]) for kind in STACK_KINDS}
    return Synthesized(env, deployment, templates, outdir)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    return {env: synthesize(env, tmp_path_factory.mktemp(f"cdk-{env}")) for env in ENVIRONMENT_NAMES}


@pytest.fixture(params=ENVIRONMENT_NAMES)
def synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """One environment's synthesized app (tests using it run once per environment)."""
    return synthesized[request.param]


def command_line_programs(python_dir: Path) -> list[str]:
    """Modules under a layer's ``python/`` that are programs, not library code: the store migration
    command (or any part of ``operations``), a ``__main__`` module or guard, an argument parser. The
    layer holds the domain core only."""
    found = []
    for path in sorted(python_dir.rglob("*.py")):
        relative = path.relative_to(python_dir)
        text = path.read_text(encoding="utf-8")
        if (
            relative.parts[0] == "operations"
            or "migrat" in path.stem
            or path.name == "__main__.py"
            or '__name__ == "__main__"' in text
            or "import argparse" in text
        ):
            found.append(str(relative))
    return found

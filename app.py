"""CDK app: selects the environment (``-c env=dev|staging|prod``) from cdk.json and synthesizes.

The stacks in ``stacks/`` are composed here as they land (infrastructure issue); until then the
app validates the environment selection and synthesizes an empty cloud assembly.
"""

from __future__ import annotations

import sys

import aws_cdk as cdk


def selected_environment(app: cdk.App) -> tuple[str, dict[str, object]]:
    name = app.node.try_get_context("env") or "dev"
    environments = app.node.try_get_context("environments") or {}
    if name not in environments:
        known = ", ".join(sorted(environments)) or "none defined in cdk.json"
        raise SystemExit(f"unknown environment {name!r} (-c env=...): known environments: {known}")
    return name, environments[name]


def main() -> int:
    app = cdk.App()
    selected_environment(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())

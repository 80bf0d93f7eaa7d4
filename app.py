"""CDK app: selects the environment (``-c env=dev|staging|prod``) from cdk.json and synthesizes
its stacks (``stacks/``): Registry, Network, Data, Pipeline, Gateway, Monitoring.

``CDK_OUTDIR=cdk.out python app.py`` or ``npx cdk synth -c env=prod`` (``make synth`` does all three).
"""

from __future__ import annotations

import sys

import aws_cdk as cdk

from stacks.config import AppConfig, cdk_json_context, load_config
from stacks.stacks import build


def selected_environment(app: cdk.App) -> tuple[str, AppConfig]:
    """The environment named by ``-c env=...`` (default dev) and its validated configuration."""
    config = load_config(app)
    return config.env_name, config


def main() -> int:
    app = cdk.App(context=cdk_json_context())
    _, config = selected_environment(app)
    build(app, config)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())

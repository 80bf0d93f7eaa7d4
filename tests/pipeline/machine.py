"""The real audit ASL deployed to a moto server, its Lambda tasks routed to the real handlers.

Used by the pipeline tests' ``state_machine`` fixture and by the ``pipeline`` benchmark.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.demo.aws import DemoAws
from services.scanners import handlers
from services.scanners.definition import FUNCTION_SUBSTITUTIONS, render_definition

from .lambda_seam import Invocations, routed_lambda, set_moto_config

FUNCTION_PREFIX = "tagc-audit-"


@dataclasses.dataclass
class StateMachine:
    arn: str
    client: Any
    invocations: Invocations


def audit_substitutions(account: str, region: str, plan_bucket: str) -> dict[str, str]:
    """Every placeholder of the ASL: the functions (routed by ``lambda_seam``) and the plan bucket."""
    return {
        **{
            name: f"arn:aws:lambda:{region}:{account}:function:{FUNCTION_PREFIX}{role}"
            for name, role in FUNCTION_SUBSTITUTIONS.items()
        },
        "PlanBucketName": plan_bucket,
    }


def create_plan_bucket(demo: DemoAws, region: str) -> str:
    """The pipeline's plan bucket in ``region`` (a region the scanned estate does not use)."""
    name = f"tagc-audit-plans-{secrets.token_hex(4)}"
    demo.client("s3", region).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
    )
    return name


@contextmanager
def deployed_audit_machine(demo: DemoAws, plan_bucket: str) -> Iterator[StateMachine]:
    """Create the state machine with Step Functions execution on; delete it and switch off after."""
    account = demo.account_id
    region = demo.regions[0]
    routes = {f"{FUNCTION_PREFIX}{role}": handlers.HANDLERS[role] for role in FUNCTION_SUBSTITUTIONS.values()}
    client = demo.client("stepfunctions", region)
    # Only Step Functions execution is switched on: see lambda_seam for why use_docker stays.
    set_moto_config(demo.endpoint_url, {"stepfunctions": {"execute_state_machine": True}})
    try:
        with routed_lambda(routes) as invocations:
            created = client.create_state_machine(
                name=f"tagc-audit-{secrets.token_hex(4)}",
                definition=render_definition(audit_substitutions(account, region, plan_bucket)),
                roleArn=f"arn:aws:iam::{account}:role/tagc-audit-states",
            )
            yield StateMachine(created["stateMachineArn"], client, invocations)
            client.delete_state_machine(stateMachineArn=created["stateMachineArn"])
    finally:
        set_moto_config(demo.endpoint_url, {"stepfunctions": {"execute_state_machine": False}})
        handlers.runtime.set(None)

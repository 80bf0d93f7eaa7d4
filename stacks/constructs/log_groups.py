"""The CloudWatch log groups of the constructs: one retention (cdk.json ``log_retention_days``) and
one removal policy for all of them."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import AppConfig, log_retention


def log_group(
    scope: Construct, construct_id: str, config: AppConfig, *, name: str | None = None
) -> logs.LogGroup:
    """A log group kept for the environment's retention and deleted with its stack (``name``: a
    fixed physical name, where the service expects one)."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=log_retention(config.env.log_retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )

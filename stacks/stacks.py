"""The stacks of one environment: the shared image registry, then one plain stack per capability
(one or two constructs each); ``build`` wires them."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Aspects, Environment, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecr as ecr
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from .budget import ConnectionBudget, connection_budget
from .config import AppConfig
from .constructs.data import Data
from .constructs.foundation import Foundation
from .constructs.gateway import Gateway
from .constructs.monitoring import Monitoring
from .constructs.network import Network
from .constructs.pipeline import Pipeline, discover_handlers
from .constructs.secrets import Secrets
from .nag import suppress


class RegistryStack(Stack):
    """The ECR repository CI pushes gateway images to (one per account and region, all environments)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.repository = ecr.Repository(
            self,
            "GatewayImages",
            repository_name=config.ecr_repository_name,
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.AES_256,
            lifecycle_rules=[ecr.LifecycleRule(description="keep the last 50 images", max_image_count=50)],
            removal_policy=RemovalPolicy.RETAIN,
        )


@dataclass
class Deployment:
    """Every stack of one environment and the capability constructs in them (what ``build`` returns;
    the cdk-nag suppressions, the cost estimate and the tests read it)."""

    config: AppConfig
    budget: ConnectionBudget
    stacks: dict[str, Stack]  # by kind: registry, network, data, pipeline, gateway, monitoring
    network: Network
    secrets: Secrets
    data: Data
    pipeline: Pipeline
    gateway: Gateway
    monitoring: Monitoring


def build(app: App, config: AppConfig) -> Deployment:
    """The environment's stacks: each holds one or two capability constructs, handed to the next."""
    env = Environment(account=config.account, region=config.region)
    budget = connection_budget(config, [spec.key for spec in discover_handlers()])
    registry = RegistryStack(
        app,
        f"{config.stack_prefix.rsplit('-', 1)[0]}-Registry",
        config=config,
        env=env,
        description="tag-compliance: ECR repository of the MCP gateway image (shared by the environments)",
    )
    stacks: dict[str, Stack] = {"registry": registry}

    def capability_stack(kind: str, contents: str) -> Stack:
        stacks[kind] = Stack(
            app,
            f"{config.stack_prefix}-{kind.capitalize()}",
            env=env,
            termination_protection=config.is_prod,
            description=f"tag-compliance: {contents}",
        )
        return stacks[kind]

    network = Network(capability_stack("network", "VPC"), "Network", config=config)
    data_stack = capability_stack("data", "secrets, PostgreSQL, Redis, shard ledger")
    secrets = Secrets(data_stack, "Secrets", config=config)
    base = Foundation(config, budget, network, secrets)
    data = Data(data_stack, "Data", base)
    pipeline = Pipeline(
        capability_stack("pipeline", "audit Lambdas, state machine, schedules"), "Pipeline", base, data=data
    )
    gateway = Gateway(
        capability_stack("gateway", "MCP gateway on ECS Fargate behind an HTTPS load balancer"),
        "Gateway",
        base,
        data=data,
        pipeline=pipeline,
    )
    monitoring = Monitoring(
        capability_stack("monitoring", "dashboard, alarms, alert topic"),
        "Monitoring",
        base,
        data=data,
        pipeline=pipeline,
        gateway=gateway,
    )
    deployment = Deployment(config, budget, stacks, network, secrets, data, pipeline, gateway, monitoring)
    for stack in stacks.values():
        for key, value in (
            ("Project", config.project),
            ("Environment", config.env_name),
            ("ManagedBy", "cdk"),
        ):
            # RDS Proxy target groups take no tags (CloudFormation rejects them).
            Tags.of(stack).add(key, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    suppress(deployment)
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return deployment


__all__ = ["Deployment", "build"]

"""Thin stacks: each composes one or two capability constructs; ``build`` wires them for one environment."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Aspects, Environment, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecr as ecr
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from .budget import ConnectionBudget, connection_budget
from .config import AppConfig
from .constructs.data import Data
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


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = Network(self, "Network", config=config)


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        network: Network,
        budget: ConnectionBudget,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.secrets = Secrets(self, "Secrets", config=config)
        self.data = Data(self, "Data", config=config, network=network, secrets=self.secrets, budget=budget)


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        network: Network,
        data: Data,
        secrets: Secrets,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.pipeline = Pipeline(self, "Pipeline", config=config, network=network, data=data, secrets=secrets)


class GatewayStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        network: Network,
        data: Data,
        secrets: Secrets,
        pipeline: Pipeline,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.gateway = Gateway(
            self, "Gateway", config=config, network=network, data=data, secrets=secrets, pipeline=pipeline
        )


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        data: Data,
        pipeline: Pipeline,
        gateway: Gateway,
        budget: ConnectionBudget,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, data=data, pipeline=pipeline, gateway=gateway, budget=budget
        )


@dataclass
class Deployment:
    """Every stack of one environment (what ``build`` returns; the tests read it)."""

    config: AppConfig
    budget: ConnectionBudget
    registry: RegistryStack
    network: NetworkStack
    data: DataStack
    pipeline: PipelineStack
    gateway: GatewayStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> list[Stack]:
        return [self.registry, self.network, self.data, self.pipeline, self.gateway, self.monitoring]


def build(app: App, config: AppConfig) -> Deployment:
    env = Environment(account=config.account, region=config.region)
    prefix = config.stack_prefix
    budget = connection_budget(config, [spec.key for spec in discover_handlers()])
    kwargs = {"env": env, "termination_protection": config.is_prod}
    registry = RegistryStack(
        app,
        f"{prefix.rsplit('-', 1)[0]}-Registry",
        config=config,
        env=env,
        description="tag-compliance: ECR repository of the MCP gateway image (shared by the environments)",
    )
    network = NetworkStack(
        app, f"{prefix}-Network", config=config, description="tag-compliance: VPC", **kwargs
    )
    data = DataStack(
        app,
        f"{prefix}-Data",
        config=config,
        network=network.network,
        budget=budget,
        description="tag-compliance: secrets, PostgreSQL, Redis, shard ledger",
        **kwargs,
    )
    pipeline = PipelineStack(
        app,
        f"{prefix}-Pipeline",
        config=config,
        network=network.network,
        data=data.data,
        secrets=data.secrets,
        description="tag-compliance: audit Lambdas, state machine, schedules",
        **kwargs,
    )
    gateway = GatewayStack(
        app,
        f"{prefix}-Gateway",
        config=config,
        network=network.network,
        data=data.data,
        secrets=data.secrets,
        pipeline=pipeline.pipeline,
        description="tag-compliance: MCP gateway on ECS Fargate behind an HTTPS load balancer",
        **kwargs,
    )
    monitoring = MonitoringStack(
        app,
        f"{prefix}-Monitoring",
        config=config,
        data=data.data,
        pipeline=pipeline.pipeline,
        gateway=gateway.gateway,
        budget=budget,
        description="tag-compliance: dashboard, alarms, alert topic",
        **kwargs,
    )
    deployment = Deployment(config, budget, registry, network, data, pipeline, gateway, monitoring)
    for stack in deployment.stacks:
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

"""``make cost``: the fixed monthly cost of each environment, priced from its synthesized templates.

What is priced: every resource that costs money by the hour or the month whether used or not, at
minimum capacity (the gateway's minimum task count). What is not: usage (requests, data processed
and transferred, Lambda invocations, Step Functions transitions, DynamoDB on-demand, log and metric
ingestion, X-Ray traces, ECR and S3 storage, Container Insights metrics). The prices are a stated
table (``PRICE_SOURCE``), not a live lookup: update them here when AWS changes its list prices.

``python -m stacks.cost`` prints the Markdown table the README shows (tests/infra/test_cost.py
checks that the README's copy is what this prints).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App

from stacks.config import ENVIRONMENT_NAMES, cdk_json_context, load_config
from stacks.stacks import build

PRICE_SOURCE = "AWS list prices, us-east-1, on-demand, Linux/x86, as of 2025-06-01"
HOURS_PER_MONTH = 730

FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
ALB_HOUR = 0.0225  # plus LCUs (usage)
NAT_GATEWAY_HOUR = 0.045  # plus data processed (usage)
PUBLIC_IPV4_HOUR = 0.005  # every public IPv4 address: NAT elastic IPs, one per ALB node (AZ)
INTERFACE_ENDPOINT_AZ_HOUR = 0.01  # per endpoint per AZ, plus data processed (usage)
RDS_POSTGRES_HOUR = {"t4g.micro": 0.016, "t4g.small": 0.032, "t4g.medium": 0.065, "t4g.large": 0.129}
RDS_GP3_GB_MONTH = 0.115  # Single-AZ; Multi-AZ doubles instance and storage
RDS_PROXY_VCPU_HOUR = 0.015  # billed on the instance's vCPUs, at least 2
RDS_VCPUS = {"t4g.micro": 2, "t4g.small": 2, "t4g.medium": 2, "t4g.large": 2}
ELASTICACHE_NODE_HOUR = {"cache.t4g.micro": 0.016, "cache.t4g.small": 0.032, "cache.t4g.medium": 0.065}
SECRET_MONTH = 0.40
KMS_KEY_MONTH = 1.00
ALARM_METRIC_MONTH = 0.10  # standard resolution, per metric an alarm evaluates
DASHBOARD_MONTH = 3.00
WAF_WEB_ACL_MONTH = 5.00
WAF_RULE_MONTH = 1.00  # a managed rule group counts as one rule; plus requests (usage)
RDS_PROXY_MIN_VCPUS = 2


@dataclass(frozen=True)
class LineItem:
    item: str
    monthly: float
    detail: str


def _resources(templates: Iterable[Mapping[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [
        resource.get("Properties", {})
        for template in templates
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == resource_type
    ]


def _unknown(kind: str, value: str, table: Mapping[str, Any]) -> SystemExit:
    return SystemExit(f"stacks/cost.py has no price for {kind} {value!r} (known: {', '.join(table)}): add it")


def _gateway(templates: list[Mapping[str, Any]]) -> LineItem:
    (task,) = _resources(templates, "AWS::ECS::TaskDefinition")
    (scaling,) = _resources(templates, "AWS::ApplicationAutoScaling::ScalableTarget")
    vcpu, memory_gb = int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
    tasks = scaling["MinCapacity"]
    hourly = vcpu * FARGATE_VCPU_HOUR + memory_gb * FARGATE_GB_HOUR
    return LineItem(
        "ECS Fargate gateway (minimum tasks)",
        tasks * hourly * HOURS_PER_MONTH,
        f"{tasks} x {vcpu:g} vCPU / {memory_gb:g} GB",
    )


def _network(templates: list[Mapping[str, Any]]) -> list[LineItem]:
    balancers = _resources(templates, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    nat = len(_resources(templates, "AWS::EC2::NatGateway"))
    alb_nodes = sum(len(balancer["Subnets"]) for balancer in balancers)
    addresses = len(_resources(templates, "AWS::EC2::EIP")) + alb_nodes
    endpoints = [
        endpoint
        for endpoint in _resources(templates, "AWS::EC2::VPCEndpoint")
        if endpoint.get("VpcEndpointType") == "Interface"
    ]
    endpoint_azs = sum(len(endpoint["SubnetIds"]) for endpoint in endpoints)
    return [
        LineItem(
            "Application Load Balancer", len(balancers) * ALB_HOUR * HOURS_PER_MONTH, f"{len(balancers)}"
        ),
        LineItem("NAT gateways", nat * NAT_GATEWAY_HOUR * HOURS_PER_MONTH, f"{nat}"),
        LineItem(
            "Public IPv4 addresses",
            addresses * PUBLIC_IPV4_HOUR * HOURS_PER_MONTH,
            f"NAT {addresses - alb_nodes} + ALB {alb_nodes}",
        ),
        LineItem(
            "Interface VPC endpoints",
            endpoint_azs * INTERFACE_ENDPOINT_AZ_HOUR * HOURS_PER_MONTH,
            f"{len(endpoints)} x {endpoint_azs // len(endpoints)} AZs" if endpoints else "none",
        ),
    ]


def _database(templates: list[Mapping[str, Any]]) -> list[LineItem]:
    (database,) = _resources(templates, "AWS::RDS::DBInstance")
    instance = database["DBInstanceClass"].removeprefix("db.")
    if instance not in RDS_POSTGRES_HOUR:
        raise _unknown("RDS instance class", instance, RDS_POSTGRES_HOUR)
    copies = 2 if database.get("MultiAZ") else 1
    storage_gb = int(database["AllocatedStorage"])
    proxies = len(_resources(templates, "AWS::RDS::DBProxy"))
    proxy_vcpus = max(RDS_PROXY_MIN_VCPUS, RDS_VCPUS[instance])
    layout = "Multi-AZ" if copies == 2 else "Single-AZ"
    return [
        LineItem(
            "RDS PostgreSQL instance",
            copies * RDS_POSTGRES_HOUR[instance] * HOURS_PER_MONTH,
            f"db.{instance} {layout}",
        ),
        LineItem("RDS storage (gp3)", copies * storage_gb * RDS_GP3_GB_MONTH, f"{storage_gb} GB {layout}"),
        LineItem(
            "RDS Proxy",
            proxies * proxy_vcpus * RDS_PROXY_VCPU_HOUR * HOURS_PER_MONTH,
            f"{proxy_vcpus} vCPUs" if proxies else "none",
        ),
    ]


def _cache(templates: list[Mapping[str, Any]]) -> LineItem:
    (group,) = _resources(templates, "AWS::ElastiCache::ReplicationGroup")
    node = group["CacheNodeType"]
    if node not in ELASTICACHE_NODE_HOUR:
        raise _unknown("ElastiCache node type", node, ELASTICACHE_NODE_HOUR)
    nodes = int(group["NumCacheClusters"])
    return LineItem(
        "ElastiCache Redis nodes", nodes * ELASTICACHE_NODE_HOUR[node] * HOURS_PER_MONTH, f"{nodes} x {node}"
    )


def _edge_and_operations(templates: list[Mapping[str, Any]]) -> list[LineItem]:
    acls = _resources(templates, "AWS::WAFv2::WebACL")
    rules = sum(len(acl.get("Rules", [])) for acl in acls)
    secrets = len(_resources(templates, "AWS::SecretsManager::Secret"))
    keys = len(_resources(templates, "AWS::KMS::Key"))
    alarms = _resources(templates, "AWS::CloudWatch::Alarm")
    # A metric-math alarm is billed per metric it reads; a plain alarm reads one.
    alarm_metrics = sum(
        sum(1 for query in alarm["Metrics"] if "MetricStat" in query) if "Metrics" in alarm else 1
        for alarm in alarms
    )
    dashboards = len(_resources(templates, "AWS::CloudWatch::Dashboard"))
    return [
        LineItem(
            "WAF web ACL and rules",
            len(acls) * WAF_WEB_ACL_MONTH + rules * WAF_RULE_MONTH,
            f"{len(acls)} ACL, {rules} rule groups" if acls else "none",
        ),
        LineItem("Secrets Manager secrets", secrets * SECRET_MONTH, f"{secrets}"),
        LineItem("KMS keys", keys * KMS_KEY_MONTH, f"{keys}"),
        LineItem(
            "CloudWatch alarms",
            alarm_metrics * ALARM_METRIC_MONTH,
            f"{len(alarms)}, {alarm_metrics} metrics",
        ),
        LineItem("CloudWatch dashboard", dashboards * DASHBOARD_MONTH, f"{dashboards}"),
    ]


def price(templates: Iterable[Mapping[str, Any]]) -> list[LineItem]:
    """The fixed monthly line items of one environment's templates (the shared registry excluded)."""
    selected = list(templates)
    return [
        _gateway(selected),
        *_network(selected),
        *_database(selected),
        _cache(selected),
        *_edge_and_operations(selected),
    ]


def total(items: Iterable[LineItem]) -> float:
    return round(sum(round(item.monthly, 2) for item in items), 2)


def cost_table(priced: Mapping[str, list[LineItem]]) -> str:
    """Markdown: one row per item, one column per environment, the total last."""
    environments = list(priced)
    lines = [
        "| Monthly (USD) | " + " | ".join(environments) + " |",
        "|---|" + "---:|" * len(environments),
    ]
    for index, item in enumerate(priced[environments[0]]):
        cells = [priced[env][index] for env in environments]
        lines.append(
            f"| {item.item} | " + " | ".join(f"{cell.monthly:,.2f} ({cell.detail})" for cell in cells) + " |"
        )
    lines.append(
        "| **Total** | " + " | ".join(f"**{total(priced[env]):,.2f}**" for env in environments) + " |"
    )
    lines.append("")
    lines.append(f"{PRICE_SOURCE}; {HOURS_PER_MONTH} hours a month; fixed costs at minimum capacity only.")
    return "\n".join(lines)


def synthesized_templates(env: str) -> list[dict[str, Any]]:
    """One environment's stack templates (offline synth, the shared registry stack left out)."""
    with tempfile.TemporaryDirectory(prefix=f"cost-{env}-") as outdir:
        app = App(context={**cdk_json_context(), "env": env}, outdir=outdir)
        deployment = build(app, load_config(app))
        assembly = app.synth()
        return [
            assembly.get_stack_by_name(stack.stack_name).template
            for kind, stack in deployment.stacks.items()
            if kind != "registry"
        ]


def main() -> int:
    priced = {env: price(synthesized_templates(env)) for env in ENVIRONMENT_NAMES}
    print(cost_table(priced))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gateway: image, Fargate task and service, HTTPS load balancer, scaling, rollout, task role."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match
from pydantic import AliasChoices

from stacks.config import GATEWAY_LIVENESS_PATH, GATEWAY_PORT, GATEWAY_READINESS_PATH
from stacks.constructs.gateway import (
    CONTAINER_NAME,
    XRAY_CONTAINER_NAME,
    XRAY_DAEMON_ACTIONS,
    XRAY_DAEMON_PORT,
)
from stacks.permissions import api_action, gateway_read_actions
from tag_compliance_mcp.__main__ import parse_args
from tag_compliance_mcp.health import LIVENESS_PATH, READINESS_PATH
from tag_compliance_mcp.settings import GatewaySettings
from tagcompliance.resources import REGISTRY

from .conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "mcp_gateway" / "Dockerfile"
SERVER_VARIABLES = {"FORWARDED_ALLOW_IPS"}  # read by uvicorn itself


def _aliases(model: type) -> set[str]:
    names: set[str] = set()
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


def _containers(synth: Synthesized) -> dict[str, dict[str, Any]]:
    task = next(iter(synth.resources("gateway", "AWS::ECS::TaskDefinition").values()))
    return {container["Name"]: container for container in task["Properties"]["ContainerDefinitions"]}


def _container(synth: Synthesized) -> dict[str, Any]:
    return _containers(synth)[CONTAINER_NAME]


def _policy_statements(synth: Synthesized, role_logical_prefix: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for logical_id, policy in synth.resources("gateway", "AWS::IAM::Policy").items():
        if logical_id.startswith(role_logical_prefix):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_task_size_follows_the_environment_and_is_the_specs_2_vcpu_4_gb_beyond_dev(
    synth: Synthesized,
) -> None:
    env = synth.deployment.config.env
    synth.template("gateway").has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Cpu": str(env.gateway_cpu),
            "Memory": str(env.gateway_memory_mib),
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
        },
    )
    if synth.env != "dev":
        assert (env.gateway_cpu, env.gateway_memory_mib) == (2048, 4096)


def test_an_xray_daemon_runs_beside_the_gateway_which_sends_it_its_segments(synth: Synthesized) -> None:
    containers = _containers(synth)
    daemon = containers[XRAY_CONTAINER_NAME]
    assert daemon["Essential"] is False  # tracing never takes the gateway down
    assert daemon["PortMappings"] == [{"ContainerPort": XRAY_DAEMON_PORT, "Protocol": "udp"}]
    environment = {item["Name"]: item["Value"] for item in _container(synth)["Environment"]}
    assert environment["AWS_XRAY_DAEMON_ADDRESS"] == f"127.0.0.1:{XRAY_DAEMON_PORT}"
    statements = _policy_statements(synth, "GatewayTaskRoleDefaultPolicy")
    (xray,) = [statement for statement in statements if statement.get("Sid") == "XRayDaemon"]
    assert sorted(_actions(xray)) == sorted(XRAY_DAEMON_ACTIONS)


def test_container_runs_the_http_gateway_with_a_health_check(synth: Synthesized) -> None:
    container = _container(synth)
    args = parse_args(container["Command"][3:])  # after "python -m tag_compliance_mcp"
    assert container["Command"][:3] == ["python", "-m", "tag_compliance_mcp"]
    assert (args.transport, args.host, args.port) == ("http", "0.0.0.0", GATEWAY_PORT)
    assert container["PortMappings"] == [{"ContainerPort": GATEWAY_PORT, "Protocol": "tcp"}]
    # The container's check is liveness (no I/O): a database outage must not get tasks replaced.
    assert f"{GATEWAY_LIVENESS_PATH}'" in " ".join(container["HealthCheck"]["Command"])
    assert (GATEWAY_LIVENESS_PATH, GATEWAY_READINESS_PATH) == (LIVENESS_PATH, READINESS_PATH)


def test_sigterm_grace_ends_before_the_stop_timeout(synth: Synthesized) -> None:
    """ECS kills the task StopTimeout seconds after SIGTERM: the gateway's grace must end first."""
    container = _container(synth)
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    grace = float(environment["SHUTDOWN_GRACE_SECONDS"])
    assert grace == GatewaySettings.model_fields["shutdown_grace_seconds"].default
    assert grace + 5 <= container["StopTimeout"] <= 120, (grace, container["StopTimeout"])


def test_environment_uses_the_settings_names_and_secrets_stay_out_of_it(synth: Synthesized) -> None:
    container = _container(synth)
    known = _aliases(GatewaySettings) | SERVER_VARIABLES
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert set(environment) <= known, set(environment) - known
    for required in (
        "DATABASE_URL", "STATE_MACHINE_ARN", "SCHEDULER_ROLE_ARN", "SCHEDULER_GROUP", "AUDIT_LEDGER_TABLE",
        "AUTH_ISSUER_URL", "AUTH_RESOURCE_URL", "MCP_ALLOWED_HOSTS",
    ):  # fmt: skip
        assert required in environment, required
    assert environment["AUTH_ISSUER_URL"] == synth.deployment.config.env.auth_issuer_url
    assert environment["LOCAL_SCHEDULER_INTERVAL_SECONDS"] == "0"
    # uvicorn believes the X-Forwarded-For of the VPC (the load balancer) only, so a client cannot
    # pick its own address for the per-IP limits.
    assert environment["FORWARDED_ALLOW_IPS"] == synth.deployment.config.env.vpc_cidr
    assert environment["DATABASE_POOL_SIZE"] == str(synth.deployment.config.env.gateway_db_pool_size)
    assert "AWS_ENDPOINT_URL" not in environment  # only with -c aws_endpoint_url=...
    secrets = {item["Name"] for item in container["Secrets"]}
    assert secrets == {"DATABASE_PASSWORD", "REDIS_AUTH_TOKEN"}
    assert secrets <= known  # read by the settings, which build the Redis URL from the token
    assert not any(re.search(r"password|token|secret", json.dumps(value), re.I) for value in environment.values()
                   if not isinstance(value, dict))  # fmt: skip
    domain = synth.deployment.config.env.domain_name
    if domain:
        assert environment["AUTH_RESOURCE_URL"] == f"https://{domain}/mcp"
        assert environment["MCP_ALLOWED_HOSTS"] == domain


def _only(synth: Synthesized, resource_type: str) -> tuple[str, dict[str, Any]]:
    (item,) = synth.resources("gateway", resource_type).items()
    return item


def _ref(value: Any) -> str:
    """The logical id a ``{"Ref": ...}`` or ``{"Fn::GetAtt": [..., "Arn"]}`` points at."""
    if "Ref" in value:
        return str(value["Ref"])
    logical_id, attribute = value["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(logical_id)


def test_service_blue_green_with_bake_time_rollback_and_deployment_alarm(synth: Synthesized) -> None:
    env = synth.deployment.config.env
    prefix = synth.deployment.config.prefix
    synth.template("gateway").has_resource_properties(
        "AWS::ECS::Service",
        {
            "DesiredCount": env.gateway_desired_count,
            "LaunchType": "FARGATE",
            "DeploymentController": {"Type": "ECS"},  # native blue/green, not CodeDeploy
            "DeploymentConfiguration": {
                "Strategy": "BLUE_GREEN",
                "BakeTimeInMinutes": env.gateway_bake_time_minutes,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200,
                "Alarms": {
                    "AlarmNames": [f"{prefix}-gateway-deployment-5xx"],
                    "Enable": True,
                    "Rollback": True,
                },
            },
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})
            },
        },
    )


def test_deployment_alarm_watches_the_whole_load_balancer_not_one_target_group(synth: Synthesized) -> None:
    name = f"{synth.deployment.config.prefix}-gateway-deployment-5xx"
    ((alarm_id, alarm),) = [
        (logical_id, alarm)
        for logical_id, alarm in synth.resources("gateway", "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("AlarmName") == name
    ]
    properties = alarm["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == (
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
    )
    # Only the LoadBalancer dimension: the alarm sees 5XX whether blue or green serves production.
    assert [dimension["Name"] for dimension in properties["Dimensions"]] == ["LoadBalancer"]
    timing = (properties["Period"], properties["EvaluationPeriods"], properties["DatapointsToAlarm"])
    assert timing == (60, 3, 2)
    # The service is created only once the alarm exists (ECS checks the names it is given).
    _, service = _only(synth, "AWS::ECS::Service")
    assert alarm_id in service["DependsOn"]


def test_blue_green_target_groups_production_rule_and_role(synth: Synthesized) -> None:
    target_groups = synth.resources("gateway", "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(target_groups) == 2
    for target_group in target_groups.values():
        properties = target_group["Properties"]
        assert (properties["Port"], properties["Protocol"], properties["TargetType"]) == (
            GATEWAY_PORT,
            "HTTP",
            "ip",
        )
        # Readiness: 503 while the task's database does not answer, 200 when ok or degraded.
        assert properties["HealthCheckPath"] == GATEWAY_READINESS_PATH
        assert properties["Matcher"] == {"HttpCode": "200"}

    _, service = _only(synth, "AWS::ECS::Service")
    (entry,) = service["Properties"]["LoadBalancers"]
    assert (entry["ContainerName"], entry["ContainerPort"]) == ("mcp-server", GATEWAY_PORT)
    advanced = entry["AdvancedConfiguration"]
    blue, green = _ref(entry["TargetGroupArn"]), _ref(advanced["AlternateTargetGroupArn"])
    assert {blue, green} == set(target_groups) and blue != green
    assert "TestListenerRule" not in advanced  # no test listener (stacks/README.md "Rollout and rollback")

    # The production listener rule: on the HTTPS listener, every path, forward to blue (100) and green (0).
    rule_id, rule = _only(synth, "AWS::ElasticLoadBalancingV2::ListenerRule")
    assert _ref(advanced["ProductionListenerRule"]) == rule_id
    listeners = synth.resources("gateway", "AWS::ElasticLoadBalancingV2::Listener")
    https = next(k for k, listener in listeners.items() if listener["Properties"]["Port"] == 443)
    assert _ref(rule["Properties"]["ListenerArn"]) == https
    assert rule["Properties"]["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}
    ]
    (action,) = rule["Properties"]["Actions"]
    assert action["Type"] == "forward"
    weights = {
        _ref(group["TargetGroupArn"]): group["Weight"] for group in action["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {blue: 100, green: 0}
    # ECS refuses listeners mixing forward and non-forward actions: the HTTPS default action forwards too.
    assert [a["Type"] for a in listeners[https]["Properties"]["DefaultActions"]] == ["forward"]

    # The role ECS assumes to move the weights and register tasks: ecs.amazonaws.com only.
    roles = synth.resources("gateway", "AWS::IAM::Role")
    role = roles[_ref(advanced["RoleArn"])]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ecs.amazonaws.com"}
    assert "AmazonECSInfrastructureRolePolicyForLoadBalancers" in json.dumps(role["ManagedPolicyArns"])
    assert "Policies" not in role


def test_auto_scaling_on_70_percent_cpu(synth: Synthesized) -> None:
    env = synth.deployment.config.env
    gateway = synth.template("gateway")
    gateway.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": env.gateway_min_capacity, "MaxCapacity": env.gateway_max_capacity},
    )
    gateway.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "TargetValue": 70,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                    },
                }
            )
        },
    )
    if synth.env != "dev":
        assert (env.gateway_min_capacity, env.gateway_max_capacity) == (2, 10)


def test_https_listener_with_the_context_certificate_and_http_redirect(synth: Synthesized) -> None:
    gateway = synth.template("gateway")
    gateway.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": synth.deployment.config.env.certificate_arn}],
        },
    )
    gateway.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                Match.object_like(
                    {"Type": "redirect", "RedirectConfig": Match.object_like({"Protocol": "HTTPS"})}
                )
            ],
        },
    )
    gateway.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Scheme": "internet-facing",
            "LoadBalancerAttributes": Match.array_with([{"Key": "access_logs.s3.enabled", "Value": "true"}]),
        },
    )


def test_task_role_is_read_only_except_its_own_schedules_and_audits(synth: Synthesized) -> None:
    statements = _policy_statements(synth, "GatewayTaskRoleDefaultPolicy")
    by_sid = {statement.get("Sid"): statement for statement in statements}
    read = by_sid["TagComplianceReadAccess"]
    assert read["Resource"] == "*"
    assert set(_actions(read)) == set(gateway_read_actions())
    # Every listing the resource registry performs is allowed.
    for row in REGISTRY.values():
        assert api_action(row.listing.client, row.listing.operation) in _actions(read), row.id
    assert {"tag:GetResources", "ce:GetCostAndUsage", "cloudtrail:LookupEvents"} <= set(_actions(read))
    # Account-wide statements only read.
    write = re.compile(
        r":(Create|Delete|Put|Update|Modify|Tag|Untag|Start|Stop|Send|Invoke|Pass|Attach|Detach)"
    )
    for statement in statements:
        if statement["Resource"] == "*" and statement.get("Sid") != "XRayDaemon":
            assert not [a for a in _actions(statement) if write.search(a)], statement
    assert _actions(by_sid["StartAudits"]) == ["states:StartExecution"]
    assert _actions(by_sid["FollowAudits"]) == ["states:DescribeExecution"]
    assert _actions(by_sid["ManageScheduleGroup"]) == ["scheduler:*"]
    group = synth.deployment.config.scheduler_group_name
    resources = json.dumps(by_sid["ManageScheduleGroup"]["Resource"])
    assert f"schedule-group/{group}" in resources and f"schedule/{group}/*" in resources
    assert by_sid["PassSchedulerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }


def test_dockerfile_is_slim_non_root_with_health_check_and_the_real_flags() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.\d+-slim\b", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(rf"^HEALTHCHECK .*\n?.*{GATEWAY_LIVENESS_PATH}'", text, re.M)
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.M)
    command = json.loads(cmd)
    assert command[:3] == ["python", "-m", "tag_compliance_mcp"]
    args = parse_args(command[3:])
    assert (args.transport, args.host, args.port) == ("http", "0.0.0.0", GATEWAY_PORT)
    assert f"EXPOSE {GATEWAY_PORT}" in text


def test_outputs_name_what_the_deploy_workflow_waits_on(synth: Synthesized) -> None:
    outputs = synth.template("gateway").find_outputs("*")
    by_prefix = {
        prefix: [key for key in outputs if key.startswith(prefix)]
        for prefix in ("GatewayUrl", "GatewayClusterName", "GatewayServiceName")
    }
    assert all(len(keys) == 1 for keys in by_prefix.values()), by_prefix
    service = next(iter(synth.resources("gateway", "AWS::ECS::Service")))
    cluster = next(iter(synth.resources("gateway", "AWS::ECS::Cluster")))
    assert outputs[by_prefix["GatewayServiceName"][0]]["Value"] == {"Fn::GetAtt": [service, "Name"]}
    assert outputs[by_prefix["GatewayClusterName"][0]]["Value"] == {"Ref": cluster}
    workflow = (ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    for prefix in by_prefix:
        assert f"cdk_output.py cdk-outputs.json {prefix})" in workflow
    assert "aws ecs wait services-stable" in workflow


def test_target_groups_route_every_request_on_its_own(synth: Synthesized) -> None:
    """The gateway is stateless (issue 16; tests/e2e/test_load_balanced.py runs three processes behind
    a round-robin balancer): no stickiness, least outstanding requests, on blue and green alike, and
    every task shares the store, the cache and the audit ledger."""
    groups = synth.resources("gateway", "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == 2
    for group in groups.values():
        attributes = {item["Key"]: item["Value"] for item in group["Properties"]["TargetGroupAttributes"]}
        assert attributes["stickiness.enabled"] == "false"
        assert attributes["load_balancing.algorithm.type"] == "least_outstanding_requests"
        assert (
            "stickiness.type" not in attributes and "stickiness.lb_cookie.duration_seconds" not in attributes
        )
    environment = {item["Name"]: item["Value"] for item in _container(synth)["Environment"]}
    assert {"DATABASE_URL", "REDIS_HOST", "AUDIT_LEDGER_TABLE", "STATE_MACHINE_ARN"} <= set(environment)
    assert not any(name.startswith("MCP_MAX_SESSIONS") for name in environment)

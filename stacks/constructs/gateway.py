"""Gateway: the MCP server image, an ECS Fargate service behind an HTTPS Application Load Balancer,
auto-scaling on CPU, and a task role with the spec's read-only permissions.

Rollout: ECS native blue/green deployment (deployment controller ECS, strategy BLUE_GREEN). The
HTTPS listener routes every request through one production listener rule that forwards to the
blue and green target groups with weights; a deployment starts the new revision at full size in
the idle target group, ECS moves the rule's weight to it once the tasks are healthy, keeps the old
revision running for the environment's bake time, then stops it. The deployment circuit breaker
and a CloudWatch deployment alarm on 5XX answers roll back automatically, by moving the weight
back (stacks/README.md "Rollout and rollback").
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.config import (
    DATABASE_NAME,
    DATABASE_PORT,
    DATABASE_USER,
    GATEWAY_CPU_TARGET_PERCENT,
    GATEWAY_LIVENESS_PATH,
    GATEWAY_PORT,
    GATEWAY_READINESS_PATH,
    REDIS_PORT,
    AppConfig,
)
from stacks.permissions import TAGGING_WRITE_ACTIONS, gateway_read_actions, tag_write_grants

from .data import Data
from .foundation import Foundation
from .log_groups import log_group
from .network import allow_ingress
from .pipeline import Pipeline
from .secrets import Secrets

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "services/mcp_gateway/Dockerfile"
CONTAINER_NAME = "mcp-server"
XRAY_CONTAINER_NAME = "xray-daemon"
# The AWS-published X-Ray daemon image (ECR Public; 3.x: the major version AWS documents for ECS).
XRAY_DAEMON_IMAGE = "public.ecr.aws/xray/aws-xray-daemon:3.x"
XRAY_DAEMON_PORT = 2000
# Stateless gateway: each request to the task with the fewest in flight (see _target_group).
LEAST_OUTSTANDING_REQUESTS = elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS
# What the daemon calls (the actions of AWS's AWSXRayDaemonWriteAccess policy; none takes a resource).
XRAY_DAEMON_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)
# AWS managed rule groups on the load balancer (staging, prod): (name, rules set to count only).
# The common rule set blocks request bodies over 8 KB; MCP tool calls may carry larger JSON-RPC
# bodies (lists of ARNs, policies), so that one rule only counts.
WAF_MANAGED_RULE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AWSManagedRulesAmazonIpReputationList", ()),
    ("AWSManagedRulesCommonRuleSet", ("SizeRestrictions_BODY",)),
    ("AWSManagedRulesKnownBadInputsRuleSet", ()),
)
# Stopping a task (deployment, scale-in): ECS sends SIGTERM, then SIGKILL after the stop timeout.
# The gateway lets in-flight calls finish for SHUTDOWN_GRACE_SECONDS (scans answer with what they
# have 2 s before its end), then exits; the stop timeout leaves room for closing the store and
# the X-Ray daemon's last flush, so a task is never killed mid-answer.
SHUTDOWN_GRACE_SECONDS = 8
STOP_TIMEOUT_SECONDS = 15
GATEWAY_COMMAND = [
    "python", "-m", "tag_compliance_mcp", "--transport", "http", "--host", "0.0.0.0",
    "--port", str(GATEWAY_PORT),
]  # fmt: skip


class Gateway(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, base: Foundation, *, data: Data, pipeline: Pipeline
    ) -> None:
        super().__init__(scope, construct_id)
        config, network, secrets = base.config, base.network, base.secrets
        env = config.env
        stack = Stack.of(self)
        vpc = network.vpc

        # --- load balancer --------------------------------------------------------------------
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # ALB access logs support SSE-S3 only
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(env.log_retention_days))],
            removal_policy=config.data_removal_policy,
            auto_delete_objects=not config.is_prod,
        )
        self.alb_security_group = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=vpc, description="Public HTTPS endpoint of the MCP gateway"
        )
        self.alb_security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS from anywhere"
        )
        self.alb_security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP -> HTTPS redirect"
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(120),  # streamable HTTP keeps responses open while tools run
            deletion_protection=env.deletion_protection,
        )
        self.load_balancer.log_access_logs(self.access_logs, prefix="alb")
        self.load_balancer.add_redirect(source_port=80, target_port=443)
        self.https_listener = self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[acm.Certificate.from_certificate_arn(self, "Certificate", env.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,  # the security group above already admits 443
        )
        public_host = env.domain_name or self.load_balancer.load_balancer_dns_name
        self.web_acl = self._web_acl(config) if env.waf else None
        self.alias_record: route53.ARecord | None = None
        if env.hosted_zone_id and env.hosted_zone_name and env.domain_name:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=env.hosted_zone_id, zone_name=env.hosted_zone_name
            )
            self.alias_record = route53.ARecord(
                self,
                "Alias",
                zone=zone,
                record_name=env.domain_name,
                target=route53.RecordTarget.from_alias(
                    route53_targets.LoadBalancerTarget(self.load_balancer)
                ),
            )

        # --- task definition --------------------------------------------------------------------
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="MCP gateway tasks: read-only tag compliance (the spec's FargateTaskRole)",
        )
        self._grant_task_permissions(config, stack, data, secrets, pipeline)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=env.gateway_cpu,
            memory_limit_mib=env.gateway_memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.log_group = log_group(self, "Logs", config)
        environment = {
            "AWS_REGION": stack.region,
            "SCAN_REGIONS": ",".join(env.scan_regions),
            "DATABASE_URL": (
                f"postgresql://{DATABASE_USER}@{data.database.db_instance_endpoint_address}:"
                f"{data.database.db_instance_endpoint_port}/{DATABASE_NAME}?sslmode=require"
            ),
            "DATABASE_POOL_SIZE": str(env.gateway_db_pool_size),  # stacks/budget.py
            # Settings build REDIS_URL (rediss://, the REDIS_AUTH_TOKEN secret) from these.
            "REDIS_HOST": data.redis_host,
            "REDIS_PORT": data.redis_port,
            "STATE_MACHINE_ARN": pipeline.state_machine_arn,
            "SCHEDULER_ROLE_ARN": pipeline.scheduler_role.role_arn,
            "SCHEDULER_GROUP": config.scheduler_group_name,
            "AUDIT_LEDGER_TABLE": data.ledger.table_name,
            "LOCAL_SCHEDULER_INTERVAL_SECONDS": "0",  # EventBridge Scheduler fires the schedules
            "DAILY_SNAPSHOT_TIME": env.daily_snapshot_time,
            "AUDIT_ROLE_NAME": config.audit_role_name,
            "REMEDIATION_ROLE_NAME": config.remediation_role_name,
            "AUTH_RESOURCE_URL": f"https://{public_host}/mcp",
            # Only the load balancer (inside the VPC) reaches the tasks: uvicorn trusts the
            # X-Forwarded-For it appends, so per-IP limits and the call log see the client's address.
            "FORWARDED_ALLOW_IPS": env.vpc_cidr,
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{XRAY_DAEMON_PORT}",
            "MCP_ALLOWED_HOSTS": public_host,
            "REMEDIATION_ENABLED": "true" if env.remediation_enabled else "false",
            "SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
            # One JSON object per line (Logs Insights fields; the per-call line is also EMF metrics).
            "LOG_FORMAT": "json",
            "ENVIRONMENT_NAME": config.env_name,
            **self._auth_environment(config, secrets, public_host),
        }
        if config.aws_endpoint_url:
            environment["AWS_ENDPOINT_URL"] = config.aws_endpoint_url
        self.container = self.task_definition.add_container(
            "Server",
            container_name=CONTAINER_NAME,
            image=self._image(config),
            command=GATEWAY_COMMAND,
            environment=environment,
            secrets={
                "DATABASE_PASSWORD": ecs.Secret.from_secrets_manager(secrets.database, "password"),
                "REDIS_AUTH_TOKEN": ecs.Secret.from_secrets_manager(secrets.redis, "auth_token"),
            },
            port_mappings=[ecs.PortMapping(container_port=GATEWAY_PORT, protocol=ecs.Protocol.TCP)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="ecs", log_group=self.log_group),
            stop_timeout=Duration.seconds(STOP_TIMEOUT_SECONDS),
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; urllib.request.urlopen("
                    f"'http://127.0.0.1:{GATEWAY_PORT}{GATEWAY_LIVENESS_PATH}', timeout=4)",
                ],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
        )

        # The X-Ray daemon beside the server (tasks share localhost): it relays the gateway's segments.
        self.xray_container = self.task_definition.add_container(
            "XRayDaemon",
            container_name=XRAY_CONTAINER_NAME,
            image=ecs.ContainerImage.from_registry(XRAY_DAEMON_IMAGE),
            essential=False,  # the gateway keeps serving if tracing stops
            cpu=32,
            memory_reservation_mib=256,
            port_mappings=[ecs.PortMapping(container_port=XRAY_DAEMON_PORT, protocol=ecs.Protocol.UDP)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="xray", log_group=self.log_group),
        )
        self.task_role.add_to_policy(
            iam.PolicyStatement(sid="XRayDaemon", actions=list(XRAY_DAEMON_ACTIONS), resources=["*"])
        )

        # --- service ----------------------------------------------------------------------------
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.service_security_group = ec2.SecurityGroup(
            self, "ServiceSecurityGroup", vpc=vpc, description="MCP gateway tasks"
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=env.gateway_desired_count,
            vpc_subnets=network.app_subnets,
            security_groups=[self.service_security_group],
            assign_public_ip=False,
            deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN,
            bake_time=Duration.minutes(env.gateway_bake_time_minutes),
            # Blue/green starts the green revision at 100 % beside the blue one; these two bound
            # task replacements outside deployments (a failed task is replaced before it is stopped).
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(90),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
        )
        # Blue and green target groups, identical: ECS registers each new revision in the idle one.
        self.blue_target_group = self._target_group("Blue", vpc)
        self.green_target_group = self._target_group("Green", vpc)
        # ECS blue/green shifts traffic by rewriting the weights of a listener *rule* (not a default
        # action). The rule matches every path, so the listener's default action (also a forward,
        # since ECS refuses listeners that mix forward and non-forward actions) is never reached.
        self.https_listener.add_action(
            "Default", action=elbv2.ListenerAction.forward([self.blue_target_group])
        )
        self.production_rule = elbv2.ApplicationListenerRule(
            self,
            "ProductionRule",
            listener=self.https_listener,
            priority=1,
            conditions=[elbv2.ListenerCondition.path_patterns(["/*"])],
            action=elbv2.ListenerAction.weighted_forward(
                [
                    elbv2.WeightedTargetGroup(target_group=self.blue_target_group, weight=100),
                    elbv2.WeightedTargetGroup(target_group=self.green_target_group, weight=0),
                ]
            ),
        )
        # The role ECS assumes to register tasks in the target groups and to move the rule's weights
        # (created here, not by CDK's default, so cdk-nag's suppression can name it).
        self.load_balancer_role = iam.Role(
            self,
            "BlueGreenRole",
            assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
            description="ECS blue/green deployments of the MCP gateway: target groups and listener rule",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "AmazonECSInfrastructureRolePolicyForLoadBalancers"
                )
            ],
        )
        self.service.load_balancer_target(
            container_name=CONTAINER_NAME,
            container_port=GATEWAY_PORT,
            alternate_target=ecs.AlternateTarget(
                "Green",
                alternate_target_group=self.green_target_group,
                production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(
                    self.production_rule
                ),
                role=self.load_balancer_role,
            ),
        ).attach_to_application_target_group(self.blue_target_group)
        self.service.connections.allow_from(
            self.alb_security_group, ec2.Port.tcp(GATEWAY_PORT), "ALB to tasks"
        )
        allow_ingress(
            self,
            "DatabaseFromGateway",
            target=data.database_security_group,
            source=self.service_security_group,
            port=DATABASE_PORT,
            description="MCP gateway to PostgreSQL",
        )
        allow_ingress(
            self,
            "RedisFromGateway",
            target=data.redis_security_group,
            source=self.service_security_group,
            port=REDIS_PORT,
            description="MCP gateway to Redis",
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=env.gateway_min_capacity, max_capacity=env.gateway_max_capacity
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=GATEWAY_CPU_TARGET_PERCENT,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )

        # A fast 5XX alarm watched during deployments, bake time included: in alarm, ECS rolls the
        # deployment back. It counts the load balancer's target 5XX (not one target group's), so it
        # follows production traffic whichever of blue and green serves it.
        self.deployment_alarm = cloudwatch.Alarm(
            self,
            "Deployment5xx",
            # A literal name: the service references it without a dependency on the alarm resource.
            alarm_name=f"{config.prefix}-gateway-deployment-5xx",
            alarm_description="MCP gateway answers 5XX during a deployment: ECS rolls back",
            metric=self.load_balancer.metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=Duration.minutes(1), statistic="Sum"
            ),
            threshold=5,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.service.enable_deployment_alarms(
            [f"{config.prefix}-gateway-deployment-5xx"], behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM
        )
        self.service.node.add_dependency(self.deployment_alarm)

        CfnOutput(self, "Url", value=f"https://{public_host}/mcp", description="MCP endpoint")
        CfnOutput(self, "LoadBalancerDns", value=self.load_balancer.load_balancer_dns_name)
        # The deploy workflow waits on these until the blue/green deployment (bake time included) is done.
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=self.service.service_name)

    def _web_acl(self, config: AppConfig) -> wafv2.CfnWebACL:
        """A regional web ACL of AWS managed rule groups, associated with the load balancer."""
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in count_only
                        ]
                        or None,
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                    cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
                ),
            )
            for priority, (name, count_only) in enumerate(WAF_MANAGED_RULE_GROUPS)
        ]
        web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{config.prefix}-gateway",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=rules,
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=f"{config.prefix}-gateway",
                sampled_requests_enabled=True,
            ),
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.load_balancer.load_balancer_arn,
            web_acl_arn=web_acl.attr_arn,
        )
        return web_acl

    def _target_group(self, name: str, vpc: ec2.IVpc) -> elbv2.ApplicationTargetGroup:
        """The gateway is stateless (streamable HTTP without sessions; services/mcp_gateway/sessions.py):
        any task answers any request, so no stickiness (an ALB can only stick with a cookie, which MCP
        clients need not keep), and each request goes to the task with the fewest in flight (tool calls
        range from milliseconds to a minute, so round robin would queue behind a slow one)."""
        group = elbv2.ApplicationTargetGroup(
            self,
            name,
            vpc=vpc,
            port=GATEWAY_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            load_balancing_algorithm_type=LEAST_OUTSTANDING_REQUESTS,
            health_check=elbv2.HealthCheck(
                path=GATEWAY_READINESS_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            deregistration_delay=Duration.seconds(30),
        )
        group.set_attribute("stickiness.enabled", "false")  # explicit: nothing needs a pinned client
        return group

    @staticmethod
    def _auth_environment(config: AppConfig, secrets: Secrets, public_host: str) -> dict[str, str]:
        """OAuth settings of the selected ``auth_mode`` (tagcompliance.settings, README "Authentication")."""
        env = config.env
        if env.auth_mode == "resource_server":
            return {"AUTH_ISSUER_URL": env.auth_issuer_url}
        assert secrets.signing_key is not None
        return {
            "AUTH_IDP_ISSUER_URL": env.auth_issuer_url,
            "AUTH_IDP_CLIENT_SECRET_ARN": secrets.oauth.secret_arn,  # {"client_id", "client_secret", ...}
            "AUTH_PUBLIC_URL": f"https://{public_host}",
            "AUTH_SIGNING_KEY_SECRET_ARN": secrets.signing_key.secret_arn,
        }

    def _image(self, config: AppConfig) -> ecs.ContainerImage:
        """The image CI pushed (``-c gateway_image_tag=<sha>``), else built from the Dockerfile."""
        if config.gateway_image_tag:
            repository = ecr.Repository.from_repository_name(self, "Repository", config.ecr_repository_name)
            return ecs.ContainerImage.from_ecr_repository(repository, config.gateway_image_tag)
        return ecs.ContainerImage.from_asset(
            str(ROOT), file=DOCKERFILE, platform=ecr_assets.Platform.LINUX_AMD64
        )

    def _grant_task_permissions(
        self, config: AppConfig, stack: Stack, data: Data, secrets: Secrets, pipeline: Pipeline
    ) -> None:
        role = self.task_role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TagComplianceReadAccess", actions=list(gateway_read_actions()), resources=["*"]
            )
        )
        # Questions about other accounts scan them through this one named role in each (read-only).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeAuditRoles",
                actions=["sts:AssumeRole"],
                resources=[f"arn:{stack.partition}:iam::*:role/{config.audit_role_name}"],
            )
        )
        if config.env.remediation_enabled:  # tag writes: only when the operator turned them on
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="TagRemediationTaggingApi", actions=list(TAGGING_WRITE_ACTIONS), resources=["*"]
                )
            )
            for actions, resources in tag_write_grants(stack.partition, stack.account):
                role.add_to_policy(iam.PolicyStatement(actions=list(actions), resources=resources))
            # Tags in other accounts are written through this one named role in each (tag writes only).
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="AssumeRemediationRoles",
                    actions=["sts:AssumeRole"],
                    resources=[f"arn:{stack.partition}:iam::*:role/{config.remediation_role_name}"],
                )
            )
        pipeline.grant_start_and_schedule_audits(role, config, stack)
        data.ledger.grant_read_data(role)
        if secrets.signing_key is not None:  # the authorization server reads its client secret and key
            secrets.oauth.grant_read(role)
            secrets.signing_key.grant_read(role)

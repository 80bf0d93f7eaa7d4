"""Monitoring: one CloudWatch dashboard (the spec's requests / ECS / RDS / Redis widget groups plus
pipeline runs and the compliance score) and the alarms, all notifying one encrypted SNS topic, which
e-mails ``alarm_email`` and/or posts to a Slack channel through AWS Chatbot (cdk.json; staging and
prod must name at least one, stacks/config.py).

The pipeline's custom metrics are the Powertools EMF metrics of ``services.scanners.handlers``:
namespace and ``service`` dimension are read from that module, so they cannot drift apart. The
gateway's per-tool metrics (calls, errors, latency, call outcomes, Cost Explorer requests) are the EMF
fields of its per-call log line, named in ``tagcompliance.observability.metrics``, in the same
namespace; each tool's error rate has an alarm. The saved Logs Insights queries (``log_queries.py``)
are listed on the dashboard.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from services.scanners import handlers
from stacks.budget import SCAN_FUNCTION_KEY
from tagcompliance.observability.metrics import (
    CALL_OUTCOMES,
    COST_EXPLORER_DOLLARS,
    COST_EXPLORER_REQUESTS,
    GATEWAY_SERVICE,
    TOOL_CALLS,
    TOOL_ERRORS,
    TOOL_LATENCY,
    TOOL_OUTCOMES,
)

from .data import Data
from .foundation import Foundation
from .gateway import Gateway
from .log_queries import LogQueries
from .pipeline import Pipeline

METRICS_NAMESPACE: str = handlers.metrics.namespace
METRICS_SERVICE: str = handlers.SERVICE
# The aggregate step's score of the run (percent); the other names are those handlers.py emits.
COMPLIANCE_SCORE_METRIC = "ComplianceScore"
PIPELINE_METRICS = ("ResourcesScanned", "ShardsFailed", "SnapshotsWritten", "AuditShardsPlanned")
FIVE_MINUTES = Duration.minutes(5)
SCAN_SHARD_ERROR_RATE_PERCENT = 50
# The gateway's tools, as clients call them (tests/infra/test_monitoring.py holds this list to the
# tools the server lists, tests/e2e/tool_schemas.json): one error-rate alarm each.
GATEWAY_TOOLS = (
    "check_tag_compliance",
    "find_untagged_resources",
    "validate_resource_tags",
    "suggest_tags",
    "get_tagging_policy",
    "get_cost_attribution_gap",
    "get_violation_history",
    "detect_tag_drift",
    "generate_compliance_report",
    "export_violations_csv",
    "generate_custodian_policy",
    "generate_openops_workflow",
    "apply_tag_remediation",
    "undo_tag_remediation",
    "import_aws_tag_policy",
    "schedule_compliance_audit",
    "get_intent_beliefs",
    "get_audit_status",
)
# A tool's alarm: this share of its calls in 5 minutes ended in an error (refusals excluded), over at
# least TOOL_ALARM_MIN_CALLS calls (one bad argument of a single call is not an incident).
TOOL_ERROR_RATE_PERCENT = 25
TOOL_ALARM_MIN_CALLS = 5


def pipeline_metric(name: str, statistic: str = "Sum", period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": METRICS_SERVICE},
        statistic=statistic,
        period=period,
    )


def gateway_metric(
    name: str,
    dimensions: dict[str, str] | None = None,
    statistic: str = "Sum",
    period: Duration = FIVE_MINUTES,
    label: str | None = None,
) -> cloudwatch.Metric:
    """A metric of the gateway's per-call EMF line (dimension ``service`` plus ``dimensions``)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": GATEWAY_SERVICE, **(dimensions or {})},
        statistic=statistic,
        period=period,
        label=label,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        base: Foundation,
        *,
        data: Data,
        pipeline: Pipeline,
        gateway: Gateway,
    ) -> None:
        super().__init__(scope, construct_id)
        config, budget = base.config, base.budget
        env = config.env
        key = kms.Key(
            self,
            "AlertsKey",
            description=f"{config.prefix} alarm notifications (SNS encryption)",
            enable_key_rotation=True,
        )
        # CloudWatch alarms publish to an encrypted topic only if they may use its key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self, "Alerts", display_name=f"{config.prefix} alerts", master_key=key, enforce_ssl=True
        )
        if env.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(env.alarm_email))
        self.slack: chatbot.SlackChannelConfiguration | None = None
        if env.alarm_slack_workspace_id and env.alarm_slack_channel_id:
            self.slack = chatbot.SlackChannelConfiguration(
                self,
                "Slack",
                slack_channel_configuration_name=f"{config.prefix}-alarms",
                slack_workspace_id=env.alarm_slack_workspace_id,
                slack_channel_id=env.alarm_slack_channel_id,
                notification_topics=[self.topic],
                logging_level=chatbot.LoggingLevel.ERROR,
                # Read-only: the channel sees alarms; nobody runs commands from it.
                guardrail_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("ReadOnlyAccess")],
            )
        action = actions.SnsAction(self.topic)

        alb = gateway.load_balancer
        service = gateway.service
        database = data.database
        state_machine = pipeline.state_machine
        redis_nodes = [f"{config.prefix}-redis-{index:03d}" for index in range(1, env.redis_replicas + 2)]

        # --- alarms ------------------------------------------------------------------------------
        errors_5xx = cloudwatch.MathExpression(
            label="ALB and target 5XX",
            expression="FILL(elb, 0) + FILL(target, 0)",
            using_metrics={
                "elb": alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES),
                "target": alb.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES
                ),
            },
            period=FIVE_MINUTES,
        )
        self.alarms: dict[str, cloudwatch.Alarm] = {
            "alb_5xx": self._alarm(
                errors_5xx,
                "Alb5xx",
                "More than 10 5XX answers in 5 minutes, twice in a row",
                10,
                periods=2,
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "ecs_cpu": self._alarm(
                service.metric_cpu_utilization(period=FIVE_MINUTES),
                "EcsCpu",
                "Gateway CPU above 85 % for 10 minutes (auto-scaling targets 70 %)",
                85,
                periods=2,
            ),
            "rds_connections": self._alarm(
                database.metric_database_connections(period=FIVE_MINUTES),
                "RdsConnections",
                f"More than {budget.limit} PostgreSQL connections: the connection budget "
                "(stacks/budget.py) is exceeded",
                budget.limit,
            ),
            "state_machine_failures": self._at_least(
                state_machine.metric_failed(period=FIVE_MINUTES),
                "AuditFailures",
                "A compliance audit execution failed",
            ),
            "state_machine_timeouts": self._at_least(
                state_machine.metric_timed_out(period=FIVE_MINUTES),
                "AuditTimeouts",
                "A compliance audit execution timed out",
            ),
            "compliance_score": self._alarm(
                pipeline_metric(COMPLIANCE_SCORE_METRIC, statistic="Minimum", period=Duration.days(1)),
                "ComplianceScoreDrop",
                f"An audit's compliance score dropped below {env.compliance_score_alarm_threshold:g} %",
                env.compliance_score_alarm_threshold,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        # One errors alarm per function: an invocation that raised (a failed cold start included),
        # whether a state machine step, the hourly schedule sync or the run recorder. scan-batch runs
        # once per account-region of every run, and one slow or unreachable account-region may time
        # out its batch (recorded failed, the others go on), so its alarm is on the error rate: a
        # broken function fails every invocation, a troubled account-region a few.
        for key, function in pipeline.functions.items():
            errors = function.metric_errors(period=FIVE_MINUTES, statistic="Sum")
            if key != SCAN_FUNCTION_KEY:
                self.alarms[f"lambda_errors_{key}"] = self._at_least(
                    errors, f"{function.node.id}Errors", f"The {key} Lambda function failed"
                )
                continue
            error_rate = cloudwatch.MathExpression(
                label=f"{key} error rate (%)",
                expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                using_metrics={
                    "errors": errors,
                    "invocations": function.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
                },
                period=FIVE_MINUTES,
            )
            self.alarms[f"lambda_errors_{key}"] = self._at_least(
                error_rate,
                f"{function.node.id}Errors",
                f"The {key} Lambda function failed {SCAN_SHARD_ERROR_RATE_PERCENT} % of its invocations or "
                "more (throttled shards it raises for a retry are fewer)",
                threshold=SCAN_SHARD_ERROR_RATE_PERCENT,
            )
        for tool in GATEWAY_TOOLS:
            error_rate = cloudwatch.MathExpression(
                label=f"{tool} error rate (%)",
                expression=f"IF(calls >= {TOOL_ALARM_MIN_CALLS}, 100 * errors / calls, 0)",
                using_metrics={
                    "errors": gateway_metric(TOOL_ERRORS, {"tool": tool}),
                    "calls": gateway_metric(TOOL_CALLS, {"tool": tool}),
                },
                period=FIVE_MINUTES,
            )
            self.alarms[f"tool_errors_{tool}"] = self._at_least(
                error_rate,
                "Tool" + "".join(part.capitalize() for part in tool.split("_")) + "Errors",
                f"The {tool} tool failed {TOOL_ERROR_RATE_PERCENT} % of its calls or more in 5 minutes "
                f"(at least {TOOL_ALARM_MIN_CALLS} calls; refusals are not failures)",
                threshold=TOOL_ERROR_RATE_PERCENT,
            )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        # --- dashboard ---------------------------------------------------------------------------
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{config.prefix}-overview", default_interval=Duration.hours(6)
        )

        def redis(metric_name: str, statistic: str = "Average") -> list[cloudwatch.IMetric]:
            return [
                cloudwatch.Metric(
                    namespace="AWS/ElastiCache",
                    metric_name=metric_name,
                    dimensions_map={"CacheClusterId": node},
                    statistic=statistic,
                    period=FIVE_MINUTES,
                    label=node,
                )
                for node in redis_nodes
            ]

        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## API requests", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Requests per minute",
                left=[alb.metrics.request_count(period=Duration.minutes(1), statistic="Sum")],
            ),
            cloudwatch.GraphWidget(
                title="Errors (4XX, 5XX)",
                left=[
                    alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_4XX_COUNT, period=FIVE_MINUTES),
                    alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES),
                    alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Response time (p50, p99)",
                left=[
                    alb.metrics.target_response_time(period=FIVE_MINUTES, statistic="p50"),
                    alb.metrics.target_response_time(period=FIVE_MINUTES, statistic="p99"),
                ],
            ),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## ECS gateway", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Running tasks",
                left=[
                    cloudwatch.Metric(
                        namespace="ECS/ContainerInsights",
                        metric_name="RunningTaskCount",
                        dimensions_map={
                            "ClusterName": gateway.cluster.cluster_name,
                            "ServiceName": service.service_name,
                        },
                        statistic="Average",
                        period=Duration.minutes(1),
                    )
                ],
            ),
            cloudwatch.GraphWidget(title="CPU utilization", left=[service.metric_cpu_utilization()]),
            cloudwatch.GraphWidget(title="Memory utilization", left=[service.metric_memory_utilization()]),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## RDS PostgreSQL", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Connections", left=[database.metric_database_connections()]),
            cloudwatch.GraphWidget(
                title="Query latency",
                left=[database.metric("ReadLatency"), database.metric("WriteLatency")],
            ),
            cloudwatch.GraphWidget(title="Free storage", left=[database.metric_free_storage_space()]),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## ElastiCache Redis", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Hit rate", left=redis("CacheHitRate")),
            cloudwatch.GraphWidget(title="Evictions", left=redis("Evictions", "Sum")),
            cloudwatch.GraphWidget(title="Memory usage %", left=redis("DatabaseMemoryUsagePercentage")),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## Audit pipeline", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Audit runs",
                left=[
                    state_machine.metric_started(period=Duration.hours(1)),
                    state_machine.metric_succeeded(period=Duration.hours(1)),
                    state_machine.metric_failed(period=Duration.hours(1)),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Shards and resources",
                left=[pipeline_metric(name, period=Duration.hours(1)) for name in PIPELINE_METRICS],
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[
                    function.metric_errors(period=Duration.hours(1), label=key)
                    for key, function in pipeline.functions.items()
                ],
            ),
        )
        self.queries = LogQueries(
            self,
            "LogQueries",
            prefix=config.prefix,
            gateway_logs=gateway.log_group,
            pipeline_logs=[function.log_group for function in pipeline.functions.values()],
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## MCP tools", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Tool calls",
                left=[gateway_metric(TOOL_CALLS, {"tool": tool}, label=tool) for tool in GATEWAY_TOOLS],
            ),
            cloudwatch.GraphWidget(
                title="Tool errors",
                left=[gateway_metric(TOOL_ERRORS, {"tool": tool}, label=tool) for tool in GATEWAY_TOOLS],
            ),
            cloudwatch.GraphWidget(
                title="Tool latency p95 (ms)",
                left=[
                    gateway_metric(TOOL_LATENCY, {"tool": tool}, statistic="p95", label=tool)
                    for tool in GATEWAY_TOOLS
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Call outcomes (safety)",
                left=[
                    gateway_metric(TOOL_OUTCOMES, {"outcome": outcome}, label=outcome)
                    for outcome in CALL_OUTCOMES
                ],
            ),
            cloudwatch.GraphWidget(
                title="Cost Explorer requests and dollars",
                left=[gateway_metric(COST_EXPLORER_REQUESTS, label="requests")],
                right=[gateway_metric(COST_EXPLORER_DOLLARS, label="USD")],
            ),
            cloudwatch.TextWidget(markdown=self.queries.markdown(), width=8, height=6),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="## Compliance", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Compliance score (%)",
                left=[pipeline_metric(COMPLIANCE_SCORE_METRIC, statistic="Minimum", period=Duration.days(1))],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=env.compliance_score_alarm_threshold, label="alarm threshold"
                    )
                ],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=12),
        )

    def _alarm(
        self,
        metric: cloudwatch.IMetric,
        construct_id: str,
        description: str,
        threshold: float,
        *,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        periods: int = 1,
        missing: cloudwatch.TreatMissingData | None = None,
    ) -> cloudwatch.Alarm:
        """An alarm on ``metric`` passing ``threshold`` (above it, by default) for ``periods`` periods."""
        return metric.create_alarm(
            self,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )

    def _at_least(
        self, metric: cloudwatch.IMetric, construct_id: str, description: str, threshold: float = 1
    ) -> cloudwatch.Alarm:
        """An alarm on ``metric`` reaching ``threshold`` in one period (no data: not breaching)."""
        return self._alarm(
            metric,
            construct_id,
            description,
            threshold,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

"""Monitoring: the dashboard's widget groups, the alarms (one per function's errors among them) on one
encrypted SNS topic, and where that topic sends them."""

from __future__ import annotations

import json
from typing import Any

from services.scanners import handlers
from stacks.budget import SCAN_FUNCTION_KEY
from stacks.constructs.monitoring import COMPLIANCE_SCORE_METRIC, SCAN_SHARD_ERROR_RATE_PERCENT

from .conftest import Synthesized


def _dashboard_body(synth: Synthesized) -> str:
    (dashboard,) = synth.resources("monitoring", "AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_dashboard_has_the_spec_groups_plus_pipeline_and_compliance(synth: Synthesized) -> None:
    body = _dashboard_body(synth)
    for heading in (
        "API requests",
        "ECS gateway",
        "RDS PostgreSQL",
        "ElastiCache Redis",
        "Audit pipeline",
        "Compliance",
    ):
        assert f"## {heading}" in body, heading
    for metric in (
        "RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime",  # requests
        "CPUUtilization", "MemoryUtilization", "RunningTaskCount",  # ECS
        "DatabaseConnections", "ReadLatency", "FreeStorageSpace",  # RDS
        "CacheHitRate", "Evictions", "DatabaseMemoryUsagePercentage",  # Redis
        "ExecutionsStarted", "ExecutionsFailed", "ResourcesScanned", COMPLIANCE_SCORE_METRIC,
    ):  # fmt: skip
        assert metric in body, metric
    # The custom metrics use the handlers' Powertools namespace and service dimension.
    assert handlers.metrics.namespace in body and handlers.SERVICE in body
    redis_nodes = 1 + synth.deployment.config.env.redis_replicas
    assert body.count(f"{synth.deployment.config.prefix}-redis-00") >= 3 * redis_nodes


def test_alarms_notify_one_encrypted_topic(synth: Synthesized) -> None:
    monitoring = synth.template("monitoring")
    monitoring.resource_count_is("AWS::SNS::Topic", 1)
    (topic_id,) = synth.resources("monitoring", "AWS::SNS::Topic")
    topic = synth.resources("monitoring", "AWS::SNS::Topic")[topic_id]
    assert "KmsMasterKeyId" in topic["Properties"]
    alarms: dict[str, Any] = synth.resources("monitoring", "AWS::CloudWatch::Alarm")
    functions = synth.deployment.pipeline.functions
    assert len(alarms) == 6 + len(functions)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    described = {alarm["Properties"]["AlarmDescription"]: alarm["Properties"] for alarm in alarms.values()}
    metrics = json.dumps(list(described.values()))
    for name in (
        "HTTPCode_ELB_5XX_Count",
        "CPUUtilization",
        "DatabaseConnections",
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        COMPLIANCE_SCORE_METRIC,
    ):
        assert name in metrics, name
    (score,) = [a for a in alarms.values() if a["Properties"].get("MetricName") == COMPLIANCE_SCORE_METRIC]
    assert score["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    assert score["Properties"]["Threshold"] == synth.deployment.config.env.compliance_score_alarm_threshold
    assert score["Properties"]["Namespace"] == handlers.metrics.namespace
    (cpu,) = [a for a in alarms.values() if a["Properties"].get("MetricName") == "CPUUtilization"]
    assert cpu["Properties"]["Threshold"] == 85
    (connections,) = [
        a for a in alarms.values() if a["Properties"].get("MetricName") == "DatabaseConnections"
    ]
    assert connections["Properties"]["Threshold"] == synth.deployment.budget.limit


def test_every_function_has_an_errors_alarm(synth: Synthesized) -> None:
    alarms = [a["Properties"] for a in synth.resources("monitoring", "AWS::CloudWatch::Alarm").values()]
    functions = synth.deployment.pipeline.functions
    by_description = {
        key: [a for a in alarms if a["AlarmDescription"].startswith(f"The {key} Lambda function failed")]
        for key in functions
    }
    for key, matching in by_description.items():
        (alarm,) = matching
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        if key == SCAN_FUNCTION_KEY:  # one troubled account-region fails its batch: the rate, not the count
            queries = {q["Id"]: q for q in alarm["Metrics"]}
            assert (
                "100 * errors / invocations" in queries[next(k for k in queries if "expr" in k)]["Expression"]
            )
            names = {q["MetricStat"]["Metric"]["MetricName"] for q in queries.values() if "MetricStat" in q}
            assert names == {"Errors", "Invocations"}
            assert alarm["Threshold"] == SCAN_SHARD_ERROR_RATE_PERCENT
        else:
            assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"]) == (
                "Errors",
                "AWS/Lambda",
                "Sum",
            )
            assert alarm["Threshold"] == 1
            (dimension,) = alarm["Dimensions"]
            assert dimension["Name"] == "FunctionName"


def test_alarms_reach_the_configured_destination_staging_and_prod_have_one(synth: Synthesized) -> None:
    env = synth.deployment.config.env
    subscriptions = list(synth.resources("monitoring", "AWS::SNS::Subscription").values())
    emails = [s["Properties"]["Endpoint"] for s in subscriptions if s["Properties"]["Protocol"] == "email"]
    assert emails == ([env.alarm_email] if env.alarm_email else [])
    slack = synth.resources("monitoring", "AWS::Chatbot::SlackChannelConfiguration")
    assert len(slack) == (1 if env.alarm_slack_channel_id else 0)
    if synth.env in ("staging", "prod"):
        assert emails or slack

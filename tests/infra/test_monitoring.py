"""Monitoring: the dashboard's widget groups, the five alarms on one encrypted SNS topic."""

from __future__ import annotations

import json
from typing import Any

from services.scanners import handlers
from stacks.constructs.monitoring import COMPLIANCE_SCORE_METRIC

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
    assert len(alarms) == 5
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    described = {alarm["Properties"]["AlarmDescription"]: alarm["Properties"] for alarm in alarms.values()}
    metrics = json.dumps(list(described.values()))
    for name in (
        "HTTPCode_ELB_5XX_Count",
        "CPUUtilization",
        "DatabaseConnections",
        "ExecutionsFailed",
        COMPLIANCE_SCORE_METRIC,
    ):
        assert name in metrics, name
    (score,) = [a for a in alarms.values() if a["Properties"].get("MetricName") == COMPLIANCE_SCORE_METRIC]
    assert score["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    assert score["Properties"]["Threshold"] == synth.deployment.config.env.compliance_score_alarm_threshold
    assert score["Properties"]["Namespace"] == handlers.metrics.namespace
    (cpu,) = [a for a in alarms.values() if a["Properties"].get("MetricName") == "CPUUtilization"]
    assert cpu["Properties"]["Threshold"] == 85

"""Monitoring: the dashboard's widget groups, the alarms (one per function's errors and one per tool's
error rate among them) on one encrypted SNS topic, where that topic sends them, and the saved Logs
Insights queries the dashboard lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match

from services.scanners import handlers
from stacks.budget import SCAN_FUNCTION_KEY
from stacks.constructs.gateway import CONTAINER_NAME
from stacks.constructs.log_queries import ID_PLACEHOLDER, SAVED_QUERIES, query_name
from stacks.constructs.monitoring import (
    COMPLIANCE_SCORE_METRIC,
    GATEWAY_TOOLS,
    SCAN_SHARD_ERROR_RATE_PERCENT,
    TOOL_ALARM_MIN_CALLS,
    TOOL_ERROR_RATE_PERCENT,
)
from tagcompliance.observability.metrics import (
    CALL_OUTCOMES,
    COST_EXPLORER_DOLLARS,
    COST_EXPLORER_REQUESTS,
    GATEWAY_SERVICE,
    NAMESPACE,
    TOOL_CALLS,
    TOOL_ERRORS,
    TOOL_LATENCY,
    TOOL_OUTCOMES,
)

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
    assert len(alarms) == 6 + len(functions) + len(GATEWAY_TOOLS)
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


TOOL_SCHEMAS = Path(__file__).resolve().parents[1] / "e2e" / "tool_schemas.json"


def test_the_alarmed_tools_are_the_tools_the_server_lists() -> None:
    # tool_schemas.json is the snapshot of tools/list that tests/e2e/test_tool_schemas.py checks.
    assert sorted(GATEWAY_TOOLS) == sorted(json.loads(TOOL_SCHEMAS.read_text(encoding="utf-8")))


def test_every_tool_has_an_error_rate_alarm_on_the_gateways_emf_metrics(synth: Synthesized) -> None:
    alarms = [a["Properties"] for a in synth.resources("monitoring", "AWS::CloudWatch::Alarm").values()]
    for tool in GATEWAY_TOOLS:
        (alarm,) = [a for a in alarms if a["AlarmDescription"].startswith(f"The {tool} tool failed")]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Threshold"] == TOOL_ERROR_RATE_PERCENT
        assert alarm["TreatMissingData"] == "notBreaching"
        queries = alarm["Metrics"]
        (expression,) = [q["Expression"] for q in queries if "Expression" in q]
        assert expression == f"IF(calls >= {TOOL_ALARM_MIN_CALLS}, 100 * errors / calls, 0)"
        stats = {q["Id"]: q["MetricStat"]["Metric"] for q in queries if "MetricStat" in q}
        assert {metric["MetricName"] for metric in stats.values()} == {TOOL_ERRORS, TOOL_CALLS}
        for metric in stats.values():
            assert metric["Namespace"] == NAMESPACE == handlers.metrics.namespace  # the pipeline's too
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert dimensions == {"service": GATEWAY_SERVICE, "tool": tool}


def test_dashboard_shows_the_tools_metrics_and_lists_the_saved_queries(synth: Synthesized) -> None:
    body = _dashboard_body(synth)
    assert "## MCP tools" in body and "## Saved Logs Insights queries" in body
    for metric in (TOOL_CALLS, TOOL_ERRORS, TOOL_LATENCY, TOOL_OUTCOMES, COST_EXPLORER_REQUESTS):
        assert metric in body, metric
    assert COST_EXPLORER_DOLLARS in body and GATEWAY_SERVICE in body
    assert all(tool in body for tool in GATEWAY_TOOLS)
    assert all(outcome in body for outcome in CALL_OUTCOMES)
    assert synth.deployment.config.prefix in body
    for query in SAVED_QUERIES:
        assert query.title in body, query.title


def test_saved_queries_are_named_for_the_environment_and_read_the_right_log_groups(
    synth: Synthesized,
) -> None:
    monitoring = synth.template("monitoring")
    monitoring.resource_count_is("AWS::Logs::QueryDefinition", len(SAVED_QUERIES))
    definitions = {
        d["Properties"]["Name"]: d["Properties"]
        for d in synth.resources("monitoring", "AWS::Logs::QueryDefinition").values()
    }
    prefix = synth.deployment.config.prefix
    assert sorted(definitions) == sorted(query_name(prefix, query) for query in SAVED_QUERIES)
    functions = synth.deployment.pipeline.functions
    for query in SAVED_QUERIES:
        definition = definitions[f"{prefix}/{query.title}"]
        assert definition["QueryString"] == query.text
        assert len(definition["LogGroupNames"]) == (1 + len(functions) if query.pipeline_too else 1)
    story = definitions[f"{prefix}/One run's story"]["QueryString"]
    assert f'run_id = "{ID_PLACEHOLDER}" or correlation_id = "{ID_PLACEHOLDER}"' in story
    refused = definitions[f"{prefix}/Refused tokens"]["QueryString"]
    assert 'filter outcome = "refused"' in refused and 'filter event = "tool_call"' in refused


def test_gateway_and_lambdas_log_json_for_their_environment(synth: Synthesized) -> None:
    expected = Match.object_like({"LOG_FORMAT": "json", "ENVIRONMENT_NAME": synth.env})
    synth.template("pipeline").all_resources_properties(
        "AWS::Lambda::Function", {"Environment": {"Variables": expected}}
    )
    (task,) = synth.resources("gateway", "AWS::ECS::TaskDefinition").values()
    (server,) = [c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == CONTAINER_NAME]
    variables = {v["Name"]: v["Value"] for v in server["Environment"]}
    assert variables["LOG_FORMAT"] == "json" and variables["ENVIRONMENT_NAME"] == synth.env


def test_the_readme_shows_every_saved_query_as_the_stack_saves_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    operations = readme.split("### Saved Logs Insights queries", 1)[1].split("\n## ", 1)[0]
    for query in SAVED_QUERIES:
        assert f"`tag-compliance-<env>/{query.title}`" in operations, query.title
        assert f"```\n{query.text}\n```" in operations, query.title

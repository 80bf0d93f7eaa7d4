"""The product's CloudWatch metrics: one namespace, and the gateway's per-call metrics as EMF.

The Lambdas publish with Powertools (``services/lambda_runtime.py``) under ``NAMESPACE``; the gateway
publishes its per-tool metrics under the same namespace by making its one per-call log line an
embedded metric format (EMF) document (``emf_fields``), so CloudWatch Logs extracts the metrics
from the line Logs Insights also queries. The CDK dashboard and alarms (``stacks/constructs/
monitoring.py``) read the names from here, so the two cannot drift apart.

Cardinality is bounded on purpose (each series is a billed custom metric): calls, errors and latency
per tool; outcomes per outcome; Cost Explorer totals per service only.
"""

from __future__ import annotations

from typing import Any, Literal

NAMESPACE = "TagCompliance"
GATEWAY_SERVICE = "tag-compliance-gateway"

# What a tool call ended as (the per-call log event's ``outcome``, the ``outcome`` dimension).
CallOutcome = Literal["answered", "clarification", "intent_commit", "dry_run", "refused", "error"]
CALL_OUTCOMES: tuple[CallOutcome, ...] = (
    "answered",
    "clarification",
    "intent_commit",
    "dry_run",
    "refused",
    "error",
)

TOOL_CALLS = "ToolCalls"
TOOL_ERRORS = "ToolErrors"
TOOL_LATENCY = "ToolLatency"
TOOL_OUTCOMES = "ToolCallOutcomes"
COST_EXPLORER_REQUESTS = "CostExplorerRequests"
COST_EXPLORER_DOLLARS = "CostExplorerDollars"


def emf_fields(
    timestamp_ms: int, outcome: CallOutcome, duration_ms: int, cost_explorer_requests: int, dollars: float
) -> dict[str, Any]:
    """The EMF fields of one tool call's log line (its ``service``, ``tool`` and ``outcome`` fields
    are the dimensions' values)."""
    error = outcome == "error"
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service", "tool"]],
                    "Metrics": [
                        {"Name": TOOL_CALLS, "Unit": "Count"},
                        {"Name": TOOL_ERRORS, "Unit": "Count"},
                        {"Name": TOOL_LATENCY, "Unit": "Milliseconds"},
                    ],
                },
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service", "outcome"]],
                    "Metrics": [{"Name": TOOL_OUTCOMES, "Unit": "Count"}],
                },
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service"]],
                    "Metrics": [
                        {"Name": COST_EXPLORER_REQUESTS, "Unit": "Count"},
                        {"Name": COST_EXPLORER_DOLLARS, "Unit": "None"},
                    ],
                },
            ],
        },
        TOOL_CALLS: 1,
        TOOL_ERRORS: 1 if error else 0,
        TOOL_LATENCY: duration_ms,
        TOOL_OUTCOMES: 1,
        COST_EXPLORER_REQUESTS: cost_explorer_requests,
        COST_EXPLORER_DOLLARS: dollars,
    }

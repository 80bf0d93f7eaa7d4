"""The aggregate Lambda publishes the run's compliance score as the EMF metric the dashboard's score
widget and the score-drop alarm read (stacks/constructs/monitoring.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.demo.aws import DemoAws
from services.scanners import handlers
from stacks.constructs.monitoring import COMPLIANCE_SCORE_METRIC
from tagcompliance.audits import AuditRequest, AuditScope
from tagcompliance.audits.ledger import DynamoLedger
from tagcompliance.settings import Settings
from tagcompliance.store import Store

from .conftest import scanner_runtime
from .lambda_seam import FakeLambdaContext

TYPES = ["ec2:instance"]
REGIONS = ["us-east-1"]


def _emf_metrics(output: str) -> dict[str, Any]:
    """Metric name -> value from the EMF documents Powertools printed."""
    values: dict[str, Any] = {}
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]  # Powertools writes a list when a name repeats
                values[metric["Name"]] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return values


def test_aggregate_publishes_the_compliance_score_in_percent(
    pipeline_env: DemoAws,
    settings: Settings,
    store: Store,
    ledger: DynamoLedger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    handlers.runtime.set(scanner_runtime(settings, store, ledger))
    try:
        _run_and_check(pipeline_env, capsys)
    finally:
        handlers.runtime.set(None)


def _run_and_check(pipeline_env: DemoAws, capsys: pytest.CaptureFixture[str]) -> None:
    context = FakeLambdaContext(function_name="tagc-audit-aggregate", aws_request_id="metrics-1")
    account_id = handlers.runtime().clients.account_id
    request = AuditRequest(
        run_id="metrics-score",
        scope=AuditScope(account_id=account_id, regions=REGIONS, resource_types=TYPES),
    )
    planned = handlers.plan_handler(
        {"input": request.model_dump(mode="json"), "execution_name": request.run_id}, context
    )
    s3 = handlers.runtime().clients.client("s3")
    batches = json.loads(s3.get_object(Bucket=planned["plan_bucket"], Key=planned["plan_key"])["Body"].read())
    assert len(batches) == planned["batch_count"] == 1
    for batch in batches:
        handlers.scan_batch_handler({"run_id": request.run_id, "batch": batch}, context)
    capsys.readouterr()  # only the aggregate's metrics below

    outcome = handlers.aggregate_handler({"run_id": request.run_id}, context)

    expected = pipeline_env.estate.expected_summary(TYPES, REGIONS)
    assert expected.total > 0 and expected.compliance_score is not None
    assert outcome["compliance_score"] == expected.compliance_score
    metrics = _emf_metrics(capsys.readouterr().out)
    assert metrics[COMPLIANCE_SCORE_METRIC] == pytest.approx(expected.compliance_score * 100)
    assert metrics["SnapshotsWritten"] == 1

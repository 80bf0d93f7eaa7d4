"""The deploy workflow (.github/workflows/deploy.yml), parsed: actions pinned to commits, every
environment's deploy followed by proof that it works, the outputs it reads exist in the templates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import STACK_KINDS, Synthesized

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
CDK_OUTPUT = ROOT / ".ci" / "cdk_output.py"
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _deploy_steps() -> list[dict[str, Any]]:
    return _workflow()["jobs"]["deploy"]["steps"]


def _index(steps: list[dict[str, Any]], pattern: str) -> int:
    (index,) = [i for i, step in enumerate(steps) if re.search(pattern, step.get("run", ""))]
    return index


def test_third_party_actions_are_pinned_to_commits_with_their_version() -> None:
    lines = [line.strip() for line in WORKFLOW.read_text(encoding="utf-8").splitlines()]
    uses = [line for line in lines if re.match(r"^(- )?uses:", line)]
    assert uses
    for line in uses:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line), line
    parsed = [step["uses"] for job in _workflow()["jobs"].values() for step in job["steps"] if "uses" in step]
    assert len(parsed) == len(uses)


def test_each_deploy_is_followed_by_the_401_metadata_check_and_a_small_audit_to_succeeded() -> None:
    steps = _deploy_steps()
    deploy = _index(steps, r"npx cdk deploy --all")
    health = _index(steps, r"/health")
    mcp = _index(steps, r"test \"\$status\" = 401")
    audit = _index(steps, r"aws stepfunctions start-execution")
    assert deploy < health < mcp and deploy < audit
    mcp_check = steps[mcp]["run"]
    assert '-X POST "$url"' in mcp_check and "www-authenticate: Bearer" in mcp_check
    assert 'resource_metadata="' in mcp_check and "['resource']" in mcp_check  # the metadata is served
    audit_run = steps[audit]["run"]
    execution_input = json.loads(_EXPRESSION.sub("us-east-1", re.search(r"--input '(.*?)'", audit_run)[1]))
    assert len(execution_input["resource_types"]) == 1 and len(execution_input["regions"]) == 1  # small
    assert "describe-execution" in audit_run and 'test "$status" = SUCCEEDED' in audit_run
    # The deploy job runs once per environment, so every environment gets these checks.
    matrix = _workflow()["jobs"]["deploy"]["strategy"]["matrix"]["env"]
    assert all(env in matrix for env in ("dev", "staging", "prod"))


def test_the_deploy_passes_the_alarm_destinations_and_refuses_staging_and_prod_without_one() -> None:
    steps = _deploy_steps()
    deploy = steps[_index(steps, r"npx cdk deploy --all")]
    for setting in ("alarm_email", "alarm_slack_workspace_id", "alarm_slack_channel_id", "hosted_zone_id"):
        assert setting in deploy["run"]
        assert deploy["env"][setting.upper()] == f"${{{{ vars.{setting.upper()} }}}}"
    guard = steps[_index(steps, r"ALARM_EMAIL.*ALARM_SLACK_CHANNEL_ID")]
    assert guard["if"] == "matrix.env != 'dev'"
    assert _index(steps, r"ALARM_EMAIL.*ALARM_SLACK_CHANNEL_ID") < _index(steps, r"npx cdk deploy --all")


def test_every_run_script_is_valid_bash() -> None:
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                script = _EXPRESSION.sub("x", step["run"])
                result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
                assert result.returncode == 0, (step.get("name"), result.stderr)


def test_the_outputs_the_workflow_reads_exist_in_every_environment(
    synthesized: dict[str, Synthesized],
) -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    prefixes = set(re.findall(r"cdk_output\.py cdk-outputs\.json (\w+)", text))
    assert {"GatewayUrl", "PipelineStateMachineArn", "PipelineSyncSchedulesFunction"} <= prefixes
    for synth in synthesized.values():
        keys = [key for kind in STACK_KINDS for key in synth.template(kind).to_json().get("Outputs", {})]
        for prefix in prefixes:
            assert [key for key in keys if key.startswith(prefix)], (synth.env, prefix)


def test_cdk_output_prints_the_output_or_names_the_known_ones(tmp_path: Path) -> None:
    outputs = tmp_path / "cdk-outputs.json"
    outputs.write_text(json.dumps({"Stack-Gateway": {"GatewayUrl8F2A3C1E": "https://mcp.example.com/mcp"}}))
    found = subprocess.run(
        [sys.executable, str(CDK_OUTPUT), str(outputs), "GatewayUrl"], capture_output=True, text=True
    )
    assert (found.returncode, found.stdout) == (0, "https://mcp.example.com/mcp\n")
    missing = subprocess.run(
        [sys.executable, str(CDK_OUTPUT), str(outputs), "PipelineStateMachineArn"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert "no stack output starts with 'PipelineStateMachineArn'" in missing.stderr
    assert "GatewayUrl8F2A3C1E" in missing.stderr


@pytest.mark.parametrize(
    "name", ["ALARM_EMAIL", "ALARM_SLACK_CHANNEL_ID", "HOSTED_ZONE_NAME", "CERTIFICATE_ARN"]
)
def test_the_workflow_header_documents_its_environment_variables(name: str) -> None:
    header = WORKFLOW.read_text(encoding="utf-8").split("name: Deploy", 1)[0]
    assert name in header

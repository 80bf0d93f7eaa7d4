"""Template checks: cdk-nag AwsSolutions passes (every suppression with a reason) and cfn-lint
reports no errors, for every stack of every environment."""

from __future__ import annotations

import json
from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

from .conftest import Synthesized


def _metadata_entries(synth: Synthesized) -> list[tuple[str, str, str]]:
    entries = []
    for path in synth.outdir.glob("*.metadata.json"):
        for construct_path, items in json.loads(path.read_text(encoding="utf-8")).items():
            for item in items:
                entries.append((item["type"], construct_path, str(item["data"])))
    return entries


def test_cdk_nag_aws_solutions_has_no_unsuppressed_finding(synth: Synthesized) -> None:
    errors = [(path, data[:200]) for kind, path, data in _metadata_entries(synth) if kind == "aws:cdk:error"]
    assert errors == []
    # The checks really ran: cdk-nag wrote one report per stack.
    reports = sorted(p.name for p in synth.outdir.glob("AwsSolutions-*-NagReport.csv"))
    assert len(reports) == 6
    warnings = [data for kind, _, data in _metadata_entries(synth) if kind == "aws:cdk:warning"]
    assert not [w for w in warnings if "AwsSolutions" in w or "CdkNagValidationFailure" in w], warnings


def test_every_suppression_carries_a_written_reason(synth: Synthesized) -> None:
    count = 0
    for template in synth.template_files():
        for resource in json.loads(template.read_text(encoding="utf-8"))["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert rule["id"].startswith("AwsSolutions-")
                assert len(rule["reason"]) >= 40, rule
    assert count > 0


def test_cfn_lint_finds_no_errors(synth: Synthesized) -> None:
    files = synth.template_files()
    assert len(files) == 6
    config = ManualArgs(regions=[synth.deployment.config.region])
    errors = [
        f"{match.rule.id} {match.message} ({path.name}:{match.linenumber})"
        for path in files
        for match in lint_file(path, config=config)
        if match.rule.id.startswith("E")
    ]
    assert errors == []


def test_cfn_lint_check_is_live(tmp_path: Path) -> None:
    """The API call above really reports errors: a broken template is flagged."""
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        json.dumps(
            {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"NoSuchProperty": 1}}}}
        ),
        encoding="utf-8",
    )
    assert any(
        match.rule.id.startswith("E") for match in lint_file(broken, config=ManualArgs(regions=["us-east-1"]))
    )

"""generate_openops_workflow: OpenOps import files that validate, batch, never guess values, and score right."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from tagcompliance.compliance import Resource, compile_policy, evaluate
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import DEFAULT_POLICY, OptionalTag, RequiredTag, TaggingPolicy
from tagcompliance.remediation.openops import (
    AWS_BLOCK,
    SCHEDULE_BLOCK,
    SLACK_BLOCK,
    TAG_RESOURCES_LIMIT,
    OpenOpsWorkflow,
    load_flow_template_schema,
)
from tagcompliance.remediation.openops import generate_openops_workflow as build_workflow
from tagcompliance.requests import OpenOpsRequest

ACCOUNT = "123456789012"


def generate_openops_workflow(
    policy: TaggingPolicy, resource_types: list[str] | None = None, **arguments: Any
) -> OpenOpsWorkflow:
    """The generator with its request built as the tool builds it (the model checks types and ranges)."""
    return build_workflow(policy, OpenOpsRequest(resource_types=resource_types, **arguments))


OTHER_ACCOUNT = "210987654321"

POLICY = TaggingPolicy(
    required_tags=[
        RequiredTag(name="CostCenter", validation_regex=r"CC-\d{4}"),
        RequiredTag(name="Owner"),
        RequiredTag(name="Environment", allowed_values=["production", "staging", "dev-*"]),
        RequiredTag(
            name="DataClass",
            applies_to=["s3:bucket", "rds:db"],
            allowed_values=["public", "internal", "secret"],
        ),
    ],
    optional_tags=[OptionalTag(name="Project")],
    prohibited_tags=["temp"],
)


def instance_arn(n: int, region: str = "us-east-1", account: str = ACCOUNT) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/i-{n:017x}"


def volume_arn(n: int, region: str = "us-east-1") -> str:
    return f"arn:aws:ec2:{region}:{ACCOUNT}:volume/vol-{n:017x}"


def steps(step: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """Every step in OpenOps's traversal order (branch true, branch false, loop body, then next)."""
    while step is not None:
        yield step
        for child in ("onSuccessAction", "onFailureAction", "firstLoopAction"):
            yield from steps(step.get(child))
        step = step.get("nextAction")


def all_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return list(steps(workflow["template"]["trigger"]))


def block_steps(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in all_steps(workflow) if s["type"] == "BLOCK" and s["settings"]["actionName"] == action]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_flow_template_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator: jsonschema.Draft202012Validator, result: OpenOpsWorkflow) -> None:
    errors = sorted(validator.iter_errors(result.workflow), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    workflow = result.workflow
    # What OpenOps's import dialog reads, and the structural rules the schema cannot express.
    assert workflow["name"] and workflow["template"]["trigger"]
    every = all_steps(workflow)
    names = [s["name"] for s in every]
    assert names == ["trigger"] + [f"step_{i}" for i in range(1, len(every))]
    assert len({s["id"] for s in every}) == len(every)
    used = {s["settings"]["blockName"] for s in every if s["type"] in ("BLOCK", "TRIGGER")}
    assert set(workflow["blocks"]) == used == set(result.blocks)
    assert workflow["template"]["valid"] == all(s["valid"] for s in every)
    for step in block_steps(workflow, "add_tags_to_resources"):
        arns = step["settings"]["input"]["resourceARNs"]
        assert isinstance(arns, str) or 1 <= len(arns) <= TAG_RESOURCES_LIMIT


# --- every variant validates against the schema ---------------------------------------------------

VARIANTS = [
    pytest.param({"resource_types": ["ec2:instance"]}, id="schedule-notify"),
    pytest.param(
        {"resource_types": None, "cron_expression": "*/30 8-18 * * 1-5"}, id="schedule-notify-all-types"
    ),
    pytest.param(
        {"resource_types": ["ec2:instance", "rds:db"], "trigger": "compliance_score_below", "threshold": 0.8},
        id="threshold-notify",
    ),
    pytest.param(
        {
            "resource_types": ["ec2:instance", "s3:bucket"],
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "team-a", "CostCenter": "CC-0042"},
        },
        id="schedule-autotag-dynamic",
    ),
    pytest.param(
        {
            "resource_types": ["ec2:instance"],
            "trigger": "compliance_score_below",
            "threshold": 0.95,
            "remediation_strategy": "auto_tag",
            "tag_values": {"Environment": "production"},
            "dry_run": False,
        },
        id="threshold-autotag-dynamic-live",
    ),
    pytest.param(
        {
            "resource_types": ["ec2:instance", "ec2:volume"],
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "team-a", "Environment": "dev-alice"},
            "resource_arns": [instance_arn(i) for i in range(30)] + [volume_arn(i) for i in range(3)],
        },
        id="schedule-autotag-arns",
    ),
    pytest.param(
        {
            "resource_types": ["ec2:instance", "s3:bucket", "rds:db"],
            "trigger": "compliance_score_below",
            "threshold": 0.5,
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "team-a", "DataClass": "internal"},
            "resource_arns": [instance_arn(i, "eu-west-1") for i in range(45)]
            + ["arn:aws:s3:::billing-logs", f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:orders"],
            "dry_run": False,
            "output_format": "yaml",
            "name": "Fix eu-west-1",
        },
        id="threshold-autotag-arns-live-yaml",
    ),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_every_variant_is_a_valid_openops_import_file(validator, kwargs):
    result = generate_openops_workflow(POLICY, **kwargs)
    assert_valid(validator, result)
    assert result.format == kwargs.get("output_format", "json")
    assert result.notes


@pytest.mark.parametrize("types", [["ec2:instance"], ["rds:db", "s3:bucket", "lambda:function"], None])
@pytest.mark.parametrize("trigger", ["schedule", "compliance_score_below"])
@pytest.mark.parametrize("strategy", ["notify_only", "auto_tag"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_matrix_of_triggers_strategies_types_and_dry_run_validates(
    validator, types, trigger, strategy, dry_run
):
    result = generate_openops_workflow(
        DEFAULT_POLICY,
        types,
        trigger=trigger,
        threshold=0.7 if trigger == "compliance_score_below" else None,
        remediation_strategy=strategy,
        tag_values={"Owner": "platform-team"} if strategy == "auto_tag" else None,
        dry_run=dry_run,
    )
    assert_valid(validator, result)
    for step in block_steps(result.workflow, "add_tags_to_resources"):
        assert step["settings"]["input"]["dryRun"] is dry_run


def test_the_schema_is_draft_2020_12():
    assert load_flow_template_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- the schema is not vacuous ---------------------------------------------------------------------


def _first(workflow: dict[str, Any], step_type: str) -> dict[str, Any]:
    return next(s for s in all_steps(workflow) if s["type"] == step_type)


BREAKAGES = {
    "missing template.trigger": lambda w: w["template"].pop("trigger"),
    "missing name": lambda w: w.pop("name"),
    "empty name": lambda w: w.update(name=""),
    "missing template": lambda w: w.pop("template"),
    "tags not a list": lambda w: w.update(tags="finops"),
    "trigger blockName is a number": lambda w: w["template"]["trigger"]["settings"].update(blockName=123),
    "action blockName is a number": lambda w: _first(w, "BLOCK")["settings"].update(
        blockName=["@openops/block-aws"]
    ),
    "blockName is not a package name": lambda w: _first(w, "BLOCK")["settings"].update(blockName="AWS block"),
    "blockVersion is not a version": lambda w: _first(w, "BLOCK")["settings"].update(blockVersion="latest"),
    "unknown blockType": lambda w: _first(w, "BLOCK")["settings"].update(blockType="COMMUNITY"),
    "unknown trigger type": lambda w: w["template"]["trigger"].update(type="PIECE_TRIGGER"),
    "trigger not named trigger": lambda w: w["template"]["trigger"].update(name="start"),
    "unknown action type": lambda w: _first(w, "CODE").update(type="PIECE"),
    "step name not step_n": lambda w: _first(w, "CODE").update(name="score"),
    "action without settings": lambda w: _first(w, "BLOCK").pop("settings"),
    "block action without input": lambda w: _first(w, "BLOCK")["settings"].pop("input"),
    "code without source": lambda w: _first(w, "CODE")["settings"].pop("sourceCode"),
    "valid is a string": lambda w: w["template"].update(valid="true"),
    "branch number condition without secondValue": lambda w: _first(w, "BRANCH")["settings"]["conditions"][0][
        0
    ].pop("secondValue"),
    "branch operator unknown": lambda w: _first(w, "BRANCH")["settings"]["conditions"][0][0].update(
        operator="LESS_THAN"
    ),
    "nested step in branch is broken": lambda w: _first(w, "BRANCH")["onSuccessAction"].pop("id"),
    "loop without items": lambda w: _first(w, "LOOP_ON_ITEMS")["settings"].pop("items"),
}


@pytest.fixture(scope="module")
def full_workflow() -> dict[str, Any]:
    """A workflow with every step kind this generator emits: block, code, branch and loop."""
    return generate_openops_workflow(
        POLICY,
        ["ec2:instance"],
        trigger="compliance_score_below",
        threshold=0.8,
        remediation_strategy="auto_tag",
        tag_values={"Owner": "team-a"},
    ).workflow


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_broken_templates_fail_the_schema(validator, full_workflow, breakage):
    assert validator.is_valid(full_workflow)
    broken = copy.deepcopy(full_workflow)
    breakage(broken)
    assert not validator.is_valid(broken)


def test_single_value_branch_operators_need_no_second_value(validator, full_workflow):
    workflow = copy.deepcopy(full_workflow)
    _first(workflow, "BRANCH")["settings"]["conditions"] = [
        [{"operator": "BOOLEAN_IS_TRUE", "firstValue": "{{x}}"}]
    ]
    assert validator.is_valid(workflow)


# --- the generated structure -------------------------------------------------------------------------


def test_defaults_are_a_daily_schedule_a_report_and_dry_run():
    result = generate_openops_workflow(DEFAULT_POLICY, ["ec2:instance"])
    trigger = result.workflow["template"]["trigger"]
    assert trigger["settings"]["blockName"] == SCHEDULE_BLOCK
    assert trigger["settings"]["triggerName"] == "cron_expression"
    assert trigger["settings"]["input"] == {"cronExpression": "0 6 * * *", "timezone": "UTC"}
    kinds = [(s["type"], s["settings"].get("actionName")) for s in all_steps(result.workflow)[1:]]
    assert kinds == [("BLOCK", "aws_cli"), ("CODE", None), ("BLOCK", "send_slack_message")]
    assert result.blocks == [SCHEDULE_BLOCK, AWS_BLOCK, SLACK_BLOCK]
    # the report needs a recipient chosen in OpenOps: honestly marked incomplete
    slack = block_steps(result.workflow, "send_slack_message")[0]
    assert slack["valid"] is False and slack["settings"]["input"]["conversationId"] is None
    assert result.workflow["template"]["valid"] is False
    assert any("conversationId" in note for note in result.notes)


def test_dry_run_is_true_unless_turned_off():
    default = generate_openops_workflow(
        DEFAULT_POLICY,
        ["ec2:instance"],
        remediation_strategy="auto_tag",
        tag_values={"Owner": "a"},
        resource_arns=[instance_arn(1)],
    )
    assert [
        s["settings"]["input"]["dryRun"] for s in block_steps(default.workflow, "add_tags_to_resources")
    ] == [True]
    assert any("dryRun is on" in note for note in default.notes)
    live = generate_openops_workflow(
        DEFAULT_POLICY,
        ["ec2:instance"],
        remediation_strategy="auto_tag",
        tag_values={"Owner": "a"},
        resource_arns=[instance_arn(1)],
        dry_run=False,
    )
    assert [
        s["settings"]["input"]["dryRun"] for s in block_steps(live.workflow, "add_tags_to_resources")
    ] == [False]
    assert any("dryRun is OFF" in note for note in live.notes)
    # the read-only scan runs for real in both, or there would be nothing to score
    dynamic = generate_openops_workflow(
        DEFAULT_POLICY, ["ec2:instance"], remediation_strategy="auto_tag", tag_values={"Owner": "a"}
    )
    assert block_steps(dynamic.workflow, "aws_cli")[0]["settings"]["input"]["dryRun"] is False
    assert block_steps(dynamic.workflow, "add_tags_to_resources")[0]["settings"]["input"]["dryRun"] is True


def test_threshold_trigger_is_a_schedule_a_score_and_a_branch():
    result = generate_openops_workflow(
        DEFAULT_POLICY,
        ["ec2:instance"],
        trigger="compliance_score_below",
        threshold=0.8,
        cron_expression="0  7 * *  1",
    )
    trigger = result.workflow["template"]["trigger"]
    assert trigger["settings"]["input"]["cronExpression"] == "0 7 * * 1"
    scan, score, branch = (
        trigger["nextAction"],
        trigger["nextAction"]["nextAction"],
        _first(result.workflow, "BRANCH"),
    )
    assert "get-resources --resource-type-filters ec2:instance" in scan["settings"]["input"]["commandToRun"]
    assert score["settings"]["input"] == {"scan": "{{step_1}}"}
    assert branch["settings"]["conditions"] == [
        [{"operator": "NUMBER_IS_LESS_THAN", "firstValue": "{{step_2['score']}}", "secondValue": "0.8"}]
    ]
    assert "nextAction" not in branch  # nothing runs after the branch, so nothing runs at or above it
    assert branch["onSuccessAction"]["settings"]["actionName"] == "send_slack_message"
    assert any("no compliance-score trigger" in note for note in result.notes)


def test_arns_are_split_into_steps_of_at_most_20_per_account_and_region():
    arns = (
        [instance_arn(i) for i in range(45)]
        + [instance_arn(100 + i, "eu-west-1") for i in range(3)]
        + [instance_arn(200 + i, account=OTHER_ACCOUNT) for i in range(21)]
    )
    result = generate_openops_workflow(
        DEFAULT_POLICY,
        ["ec2:instance"],
        remediation_strategy="auto_tag",
        tag_values={"Owner": "team-a", "Environment": "staging"},
        resource_arns=arns + arns[:5],
    )
    tagged = block_steps(result.workflow, "add_tags_to_resources")
    sizes = [len(s["settings"]["input"]["resourceARNs"]) for s in tagged]
    assert sizes == [20, 20, 5, 3, 20, 1]
    assert [a for s in tagged for a in s["settings"]["input"]["resourceARNs"]] == arns  # each once, in order
    for step in tagged:
        members = step["settings"]["input"]["resourceARNs"]
        assert len({(a.split(":")[3], a.split(":")[4]) for a in members}) == 1
        assert step["settings"]["input"]["tags"] == {"Owner": "team-a", "Environment": "staging"}
        assert step["settings"]["input"]["auth"] == "{{connections['AWS']}}"
    # explicit ARNs on a schedule need no scan
    assert not block_steps(result.workflow, "aws_cli")
    assert any("duplicate" in note for note in result.notes)


def test_each_arn_gets_only_the_tags_its_type_requires():
    result = generate_openops_workflow(
        POLICY,
        ["ec2:instance", "rds:db"],
        remediation_strategy="auto_tag",
        tag_values={"Owner": "team-a", "DataClass": "secret"},
        resource_arns=[instance_arn(1), f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders", instance_arn(2)],
    )
    tags = {
        tuple(s["settings"]["input"]["resourceARNs"]): s["settings"]["input"]["tags"]
        for s in block_steps(result.workflow, "add_tags_to_resources")
    }
    assert tags == {
        (instance_arn(1), instance_arn(2)): {"Owner": "team-a"},
        (f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders",): {"Owner": "team-a", "DataClass": "secret"},
    }


def test_dynamic_auto_tag_loops_over_the_batches_the_code_step_builds():
    result = generate_openops_workflow(
        DEFAULT_POLICY, ["ec2:instance"], remediation_strategy="auto_tag", tag_values={"Owner": "team-a"}
    )
    loop = _first(result.workflow, "LOOP_ON_ITEMS")
    assert loop["settings"]["items"] == "{{step_2['batches']}}"
    body = loop["firstLoopAction"]["settings"]
    assert (body["blockName"], body["actionName"]) == (AWS_BLOCK, "add_tags_to_resources")
    assert body["input"]["resourceARNs"] == "{{step_3['item']['arns']}}"
    assert body["input"]["tags"] == "{{step_3['item']['tags']}}"
    assert any("No value was given for CostCenter, Environment" in note for note in result.notes)


def test_content_is_the_importable_json_and_yaml_only_on_request():
    result = generate_openops_workflow(DEFAULT_POLICY, ["ec2:instance"])
    assert result.format == "json" and json.loads(result.content) == result.workflow
    as_yaml = generate_openops_workflow(DEFAULT_POLICY, ["ec2:instance"], output_format="yaml")
    assert as_yaml.format == "yaml" and yaml.safe_load(as_yaml.content) == as_yaml.workflow
    assert any("imports the JSON form" in note for note in as_yaml.notes)


def test_output_is_deterministic_apart_from_the_timestamps():
    def strip(result: OpenOpsWorkflow) -> dict[str, Any]:
        return {k: v for k, v in result.workflow.items() if k not in ("created", "updated")}

    kwargs = {"trigger": "compliance_score_below", "threshold": 0.9}
    assert strip(generate_openops_workflow(POLICY, ["s3:bucket"], **kwargs)) == strip(
        generate_openops_workflow(POLICY, ["s3:bucket"], **kwargs)
    )


def test_name_and_metadata():
    result = generate_openops_workflow(DEFAULT_POLICY, ["ec2:instance", "rds:db"], name="  Nightly tags  ")
    workflow = result.workflow
    assert workflow["name"] == workflow["template"]["displayName"] == "Nightly tags"
    assert workflow["services"] == ["ec2", "rds"]
    assert workflow["created"].isdigit() and workflow["description"]
    default = generate_openops_workflow(DEFAULT_POLICY, None)
    assert default.workflow["name"] == "Tag compliance - Report (all resource types)"


# --- bad input -----------------------------------------------------------------------------------------

BAD_INPUT = [
    pytest.param({"resource_types": ["ec2:instances"]}, "unknown resource type", id="unknown-type"),
    pytest.param({"trigger": "compliance_score_below"}, "needs a threshold", id="threshold-missing"),
    pytest.param(
        {"trigger": "compliance_score_below", "threshold": 1.5},
        "less than or equal to 1",
        id="threshold-high",
    ),
    pytest.param(
        {"trigger": "compliance_score_below", "threshold": -0.1},
        "greater than or equal to 0",
        id="threshold-negative",
    ),
    pytest.param(
        {"trigger": "compliance_score_below", "threshold": 80},
        "less than or equal to 1",
        id="threshold-percent",
    ),
    pytest.param(
        {"trigger": "compliance_score_below", "threshold": float("nan")},
        "less than or equal to 1",
        id="threshold-nan",
    ),
    pytest.param(
        {"threshold": 0.8}, "only to trigger 'compliance_score_below'", id="threshold-with-schedule"
    ),
    pytest.param({"trigger": "on_change"}, "'schedule' or 'compliance_score_below'", id="unknown-trigger"),
    pytest.param({"cron_expression": "0 6 * *"}, "has 4 field", id="cron-4-fields"),
    pytest.param({"cron_expression": "0 0 6 * * *"}, "has 6 field", id="cron-6-fields"),
    pytest.param({"cron_expression": "61 * * * *"}, "outside 0-59", id="cron-minute"),
    pytest.param({"cron_expression": "0 24 * * *"}, "outside 0-23", id="cron-hour"),
    pytest.param({"cron_expression": "0 6 0 * *"}, "outside 1-31", id="cron-day-zero"),
    pytest.param({"cron_expression": "0 6 * * MON"}, "day of week field", id="cron-names"),
    pytest.param({"cron_expression": "*/0 * * * *"}, "step must be at least 1", id="cron-step-zero"),
    pytest.param({"cron_expression": "0 9-5 * * *"}, "outside", id="cron-backwards-range"),
    pytest.param({"cron_expression": "@daily"}, "has 1 field", id="cron-alias"),
    pytest.param({"remediation_strategy": "delete"}, "'auto_tag' or 'notify_only'", id="unknown-strategy"),
    pytest.param({"remediation_strategy": "auto_tag"}, "needs explicit tag_values", id="autotag-no-values"),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {}},
        "needs explicit tag_values",
        id="autotag-empty",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Environment": "prod"}},
        "not allowed by the policy; allowed values: production, staging, dev-\\*",
        id="value-not-allowed",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"CostCenter": "12345"}},
        "does not match the policy's format",
        id="value-not-matching-regex",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Project": "apollo"}},
        "not a required tag",
        id="optional-tag",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"owner": "team-a"}},
        "does not match the required tag 'Owner'",
        id="key-case",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"DataClass": "internal"}},
        "required by the policy, but not for ec2:instance",
        id="required-for-other-types",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "  "}}, "is empty", id="value-blank"
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "a;b"}},
        "not a valid AWS tag value",
        id="value-bad-characters",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": 7}},
        "valid string",
        id="value-not-string",
    ),
    pytest.param(
        {"tag_values": {"Owner": "team-a"}}, "only to remediation_strategy 'auto_tag'", id="values-notify"
    ),
    pytest.param(
        {"resource_arns": [instance_arn(1)]}, "only to remediation_strategy 'auto_tag'", id="arns-notify"
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "a"}, "resource_arns": ["i-0123"]},
        "is not an ARN",
        id="arn-not-arn",
    ),
    pytest.param(
        {
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "a"},
            "resource_arns": ["arn:aws:ec2:us-east-1:12345:instance/i-0123456789abcdef0"],
        },
        "invalid account id",
        id="arn-bad-account",
    ),
    pytest.param(
        {
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "a"},
            "resource_arns": [f"arn:aws:iam::{ACCOUNT}:role/admin"],
        },
        "not supported",
        id="arn-unsupported-service",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "a"}, "resource_arns": [volume_arn(1)]},
        "is a ec2:volume, which is not among the requested resource types",
        id="arn-other-type",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "a"}, "resource_arns": []},
        "resource_arns is empty",
        id="arns-empty",
    ),
    pytest.param(
        {"remediation_strategy": "auto_tag", "tag_values": {"Owner": "a"}, "resource_arns": instance_arn(1)},
        "valid list",
        id="arns-string",
    ),
    pytest.param(
        {
            "remediation_strategy": "auto_tag",
            "tag_values": {"Owner": "a"},
            "resource_arns": [instance_arn(i) for i in range(1001)],
        },
        "at most 1000 items",
        id="arns-too-many",
    ),
    pytest.param({"name": "   "}, "name must be a non-empty string", id="name-blank"),
    pytest.param({"name": "x" * 201}, "at most 200 characters", id="name-too-long"),
    pytest.param({"output_format": "xml"}, "'json' or 'yaml'", id="unknown-format"),
    pytest.param({"dry_run": "maybe"}, "valid boolean", id="dry-run-not-bool"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUT)
def test_bad_input_is_refused_with_a_specific_message(kwargs, message):
    kwargs = {"resource_types": ["ec2:instance"], **kwargs}
    with pytest.raises((InvalidInputError, ValidationError), match=message):
        generate_openops_workflow(POLICY, **kwargs)


def test_a_policy_with_nothing_to_check_is_refused():
    policy = TaggingPolicy(required_tags=[RequiredTag(name="DataClass", applies_to=["s3:bucket"])])
    with pytest.raises(InvalidInputError, match="requires no tag for ec2:instance"):
        generate_openops_workflow(policy, ["ec2:instance"])


def test_an_arn_whose_type_requires_none_of_the_values_is_refused():
    with pytest.raises(InvalidInputError, match="requires none of DataClass for ec2:instance"):
        generate_openops_workflow(
            POLICY,
            ["ec2:instance", "s3:bucket"],
            remediation_strategy="auto_tag",
            tag_values={"DataClass": "public"},
            resource_arns=[instance_arn(1)],
        )


# --- the Code step scores like the compliance engine (run with Node.js) -------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

RUNNER = """\
import { readFileSync } from 'node:fs';
import { code } from './step.mjs';
const inputs = JSON.parse(readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(await code(inputs)));
"""


def run_code_step(tmp_path: Path, workflow: dict[str, Any], scan: Any) -> dict[str, Any]:
    code = next(s for s in all_steps(workflow) if s["type"] == "CODE")["settings"]["sourceCode"]["code"]
    (tmp_path / "step.mjs").write_text(code, encoding="utf-8")
    (tmp_path / "run.mjs").write_text(RUNNER, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(tmp_path / "run.mjs")],
        input=json.dumps({"scan": scan}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sample_estate() -> list[Resource]:
    def res(arn: str, resource_type: str, tags: dict[str, str]) -> Resource:
        parts = arn.split(":")
        return Resource(arn, resource_type, parts[3], parts[4], parts[5].rsplit("/", 1)[-1], tags)

    good = {"CostCenter": "CC-0001", "Owner": "a", "Environment": "production"}
    estate = [
        res(instance_arn(1), "ec2:instance", good),
        res(instance_arn(2), "ec2:instance", {**good, "Environment": "dev-alice"}),  # wildcard allowed value
        res(instance_arn(3), "ec2:instance", {**good, "Environment": "dev"}),  # invalid_value
        res(instance_arn(4), "ec2:instance", {**good, "CostCenter": "CC-12"}),  # invalid_format
        res(
            instance_arn(5), "ec2:instance", {"CostCenter": "CC-0002", "owner": "b", "Environment": "staging"}
        ),
        res(instance_arn(6), "ec2:instance", {**good, "Owner": "  "}),  # empty value = missing
        res(instance_arn(7), "ec2:instance", {**good, "temp": "yes"}),  # prohibited
        res(instance_arn(8, "eu-west-1"), "ec2:instance", {"Environment": "staging"}),
        res(instance_arn(9, account=OTHER_ACCOUNT), "ec2:instance", {}),
        res("arn:aws:s3:::logs", "s3:bucket", {**good, "DataClass": "internal"}),
        res("arn:aws:s3:::raw", "s3:bucket", good),  # DataClass missing
        res(
            f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders",
            "rds:db",
            {**good, "DataClass": "secret", "constructor": "x"},
        ),
    ]
    estate += [res(instance_arn(100 + i), "ec2:instance", {"Environment": "staging"}) for i in range(41)]
    return estate


def as_tagging_api_page(resources: list[Resource]) -> dict[str, Any]:
    return {
        "ResourceTagMappingList": [
            {"ResourceARN": r.arn, "Tags": [{"Key": k, "Value": v} for k, v in r.tags.items()]}
            for r in resources
        ]
        # a type that was not requested is ignored, as the tagging API filter would do
        + [{"ResourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs", "Tags": []}]
    }


@needs_node
def test_code_step_score_and_violations_match_the_engine(tmp_path):
    types = ["ec2:instance", "s3:bucket", "rds:db"]
    estate = sample_estate()
    expected = evaluate(estate, compile_policy(POLICY, types))
    workflow = generate_openops_workflow(
        POLICY, types, trigger="compliance_score_below", threshold=0.8
    ).workflow
    output = run_code_step(tmp_path, workflow, as_tagging_api_page(estate))
    assert output["score"] == expected.compliance_score
    assert output["scanned"] == expected.scanned and output["compliant"] == expected.compliant
    assert {item["arn"] for item in output["noncompliant"]} == expected.noncompliant_arns
    problems = {item["arn"]: item["problems"] for item in output["noncompliant"]}
    assert problems[instance_arn(5)] == ["wrong_key_case Owner (found owner)"]
    assert problems[instance_arn(4)] == ["invalid_format CostCenter=CC-12"]
    assert problems[instance_arn(7)] == ["prohibited_tag temp"]
    assert output["batches"] == []  # notify_only: nothing to tag
    assert output["summary"].startswith(f"Tag compliance score: {expected.compliance_score * 100:.1f}%")
    assert "... and" in output["summary"]  # more violations than the report lists


@needs_node
def test_code_step_batches_only_missing_tags_with_the_given_values(tmp_path):
    types = ["ec2:instance", "s3:bucket", "rds:db"]
    estate = sample_estate()
    values = {"Owner": "team-a", "CostCenter": "CC-0042"}
    workflow = generate_openops_workflow(
        POLICY, types, remediation_strategy="auto_tag", tag_values=values
    ).workflow
    batches = run_code_step(tmp_path, workflow, as_tagging_api_page(estate))["batches"]
    assert all(1 <= len(b["arns"]) <= TAG_RESOURCES_LIMIT for b in batches)
    planned = {arn: b["tags"] for b in batches for arn in b["arns"]}
    assert sum(len(b["arns"]) for b in batches) == len(planned)  # each resource once
    expected: dict[str, dict[str, str]] = {}
    for resource in estate:
        missing = {k: v for k, v in values.items() if not resource.tags.get(k, "").strip()}
        if k_case := [k for k in missing if any(t.lower() == k.lower() and t != k for t in resource.tags)]:
            for key in k_case:  # wrong key case is reported, not overwritten with a second key
                missing.pop(key)
        if missing:
            expected[resource.arn] = missing
    assert planned == expected
    for batch in batches:  # one account and region per TagResources call
        assert len({tuple(a.split(":")[3:5]) for a in batch["arns"]}) == 1


@needs_node
def test_code_step_handles_empty_scans_and_python_named_groups(tmp_path):
    policy = TaggingPolicy(
        required_tags=[RequiredTag(name="Ticket", validation_regex=r"(?P<project>[A-Z]+)-\d+-(?P=project)")]
    )
    workflow = generate_openops_workflow(policy, ["lambda:function"]).workflow
    assert run_code_step(tmp_path, workflow, {"ResourceTagMappingList": []})["score"] == 1
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
    page = {
        "ResourceTagMappingList": [
            {"ResourceARN": arn, "Tags": [{"Key": "Ticket", "Value": "OPS-12-OPS"}]},
            {"ResourceARN": arn + "2", "Tags": [{"Key": "Ticket", "Value": "OPS-12-DEV"}]},
        ]
    }
    output = run_code_step(tmp_path, workflow, json.dumps(page))  # aws_cli output may arrive as text
    assert output["score"] == 0.5
    assert [item["arn"] for item in output["noncompliant"]] == [arn + "2"]

"""Generated Cloud Custodian policies through the real ``custodian`` CLI: validate, then run against moto.

``custodian validate`` must accept the policies of every registry type, in one file, in each mode.
A dry run against the demo estate must select exactly the resources the product's own compliance
check reports as violating, for every type c7n can run against moto. A real (non-dry) run of the
tag action on EC2 instances must fill placeholders only where the tag was missing.

The CLI runs a few times in all (its JSON-schema check alone costs 10-20 s per file of 20 types),
never per resource.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from c7n.config import Config
from c7n.credentials import SessionFactory
from c7n.policy import Policy
from c7n.provider import get_resource_class
from c7n.resources import load_resources
from c7n.utils import local_session

from services.demo.aws import DemoAws
from tagcompliance.aws import AwsClients
from tagcompliance.compliance import Evaluation, compile_policy, evaluate
from tagcompliance.inventory import Inventory, collect_inventory
from tagcompliance.policy import load_policy, parse_policy
from tagcompliance.remediation.custodian import MODES, CustodianPolicies, generate_custodian_policies
from tagcompliance.remediation.custodian.models import CLOUDTRAIL_EVENTS, MARK_TAG
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS
from tagcompliance.settings import Settings

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO_ROOT / "policies" / "tagging_policy.json").policy
CUSTODIAN = [sys.executable, "-m", "c7n.cli"]
CLI_TIMEOUT = 300

# Registry types whose c7n policies cannot be checked against moto, and why. Asserted below, so
# the list cannot silently grow (or keep a type that has started to work).
NOT_RUNNABLE_IN_MOTO = {
    "sqs:queue": (
        "c7n's aws.sqs manager builds its client with endpoint_url=https://sqs.<region>.amazonaws.com "
        "(c7n/resources/sqs.py SQS.get_client), which overrides AWS_ENDPOINT_URL: it never reaches moto"
    ),
    "kinesis:stream": (
        "c7n reads Kinesis tags with the Resource Groups Tagging API (universal_augment, GetResources by "
        "ARN), which moto does not serve for Kinesis streams: every stream looks untagged to c7n"
    ),
}
PLACEHOLDERS = {"Owner": "unassigned@example.com", "Application": "unassigned"}
MARK_VALUE = re.compile(r"^Tag compliance violation: notify@\d{4}/\d{2}/\d{2}$")


def write(result: CustodianPolicies, path: Path) -> Path:
    path.write_text(result.yaml, encoding="utf-8")
    return path


def custodian_env(demo_aws: DemoAws | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    if demo_aws is not None:
        env.update(demo_aws.environment)
    return env


def custodian_run(
    policy_file: Path, output: Path, regions: list[str], demo_aws: DemoAws, *extra: str
) -> None:
    region_args = [arg for region in regions for arg in ("-r", region)]
    completed = subprocess.run(
        [*CUSTODIAN, "run", *extra, "--cache-period", "0", "-s", str(output), *region_args, str(policy_file)],
        env=custodian_env(demo_aws),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]


def scan(demo_aws: DemoAws, types: list[str]) -> tuple[Inventory, Evaluation]:
    clients = AwsClients(
        Settings(AWS_ENDPOINT_URL=demo_aws.endpoint_url, AWS_DEFAULT_REGION=demo_aws.regions[0])
    )
    inventory = collect_inventory(clients, demo_aws.regions, types)
    assert not inventory.failed_shards and not inventory.unreadable
    return inventory, evaluate(inventory.resources, compile_policy(POLICY, types))


@pytest.fixture
def aws_env(demo_aws: DemoAws, monkeypatch: pytest.MonkeyPatch) -> DemoAws:
    for key, value in demo_aws.environment.items():
        monkeypatch.setenv(key, value)
    return demo_aws


# --- validate ------------------------------------------------------------------------------


def test_custodian_validate_accepts_every_type_in_every_mode(tmp_path):
    files: dict[str, Path] = {}
    for mode in MODES:
        result = generate_custodian_policies(POLICY, None, None, None, mode=mode)
        expected = [
            type_id for type_id in RESOURCE_TYPE_IDS if mode != "cloudtrail" or type_id in CLOUDTRAIL_EVENTS
        ]
        assert result.resource_types == expected
        assert {item.resource_type for item in result.skipped} == set(RESOURCE_TYPE_IDS) - set(expected)
        files[mode] = write(result, tmp_path / f"{mode}.yml")
    # The actions of a real run, for every type: tag (with a placeholder) and mark-for-op.
    fix = generate_custodian_policies(
        POLICY,
        None,
        None,
        ["Owner"],
        dry_run=False,
        placeholder_values={"Owner": PLACEHOLDERS["Owner"]},
        mark_for_op_days=7,
    )
    assert {
        policy["resource"] for policy in fix.policies if policy.get("actions", [{}])[0].get("type") == "tag"
    } == {f"aws.{row.custodian_resource}" for row in REGISTRY.values()}
    files["fix"] = write(fix, tmp_path / "fix.yml")
    # Braces are doubled for `custodian run`'s variable expansion; validate sees them doubled.
    braces = parse_policy(
        {
            "required_tags": [
                {"name": "Ticket", "validation_regex": "^(?:[A-Z]{2,4}-[0-9]+|[^}]*none)$"},
                {"name": "Team", "allowed_values": ["{region}", "ops"]},
            ]
        }
    )
    files["braces"] = write(
        generate_custodian_policies(
            braces,
            ["ec2:instance", "s3:bucket"],
            None,
            None,
            dry_run=False,
            placeholder_values={"Ticket": "OPS-1"},
            mark_for_op_days=1,
        ),
        tmp_path / "braces.yml",
    )

    # One process per file (policy names repeat across files), all at once.
    processes = {
        name: subprocess.Popen(
            [*CUSTODIAN, "validate", str(path)],
            env=custodian_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, path in files.items()
    }
    for name, process in processes.items():
        output, _ = process.communicate(timeout=CLI_TIMEOUT)
        assert process.returncode == 0, f"{name}: {output[-4000:]}"
        assert "Configuration valid" in output, f"{name}: {output[-4000:]}"


# --- dry run against the demo estate -------------------------------------------------------


def _arn_reader(type_id: str, region: str, account_id: str):
    """Map one c7n resource record to its ARN, from c7n's own metadata for the resource."""
    row = REGISTRY[type_id]
    model = get_resource_class(f"aws.{row.custodian_resource}").resource_type

    def read(record: dict[str, Any]) -> str:
        for field in (model.arn, model.id):
            candidate = record.get(field) if field else None
            if isinstance(candidate, str) and candidate.startswith("arn:"):
                return candidate
        return row.build_arn("aws", region, account_id, record[model.id])

    return read


def test_c7n_sqs_cannot_reach_moto(monkeypatch):
    endpoint = "http://127.0.0.1:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    load_resources(("aws.sqs",))
    config = Config.empty(region="us-east-1", account_id="123456789012")
    factory = SessionFactory("us-east-1")
    sqs = Policy({"name": "sqs-endpoint", "resource": "aws.sqs"}, config, session_factory=factory)
    assert sqs.resource_manager.get_client().meta.endpoint_url == "https://sqs.us-east-1.amazonaws.com"
    # c7n's own session honours the variable; the SQS manager overrides it.
    assert local_session(factory).client("sqs").meta.endpoint_url == endpoint


def test_dry_run_selects_exactly_what_the_compliance_check_reports(aws_env, tmp_path):
    regions = list(aws_env.regions)
    types = list(RESOURCE_TYPE_IDS)
    result = generate_custodian_policies(POLICY, None, None, None)
    names = dict(zip(result.resource_types, (policy["name"] for policy in result.policies), strict=True))
    run_types = [type_id for type_id in types if type_id != "sqs:queue"]
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(
        yaml.safe_dump(
            {"policies": [policy for policy in result.policies if policy["resource"] != "aws.sqs"]},
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    output = tmp_path / "out"
    # Validated by the test above; here only the run matters.
    custodian_run(policy_file, output, regions, aws_env, "--dryrun", "--skip-validation")

    inventory, evaluation = scan(aws_env, types)
    load_resources(tuple(f"aws.{REGISTRY[type_id].custodian_resource}" for type_id in run_types))
    mismatched: dict[str, tuple[set[str], set[str]]] = {}
    for type_id in run_types:
        known = {resource.arn for resource in inventory.resources if resource.resource_type == type_id}
        expected = known & evaluation.noncompliant_arns
        assert expected, f"the estate has no violation of {type_id}: the comparison would prove nothing"
        selected: set[str] = set()
        for region in regions:
            records = json.loads((output / region / names[type_id] / "resources.json").read_text())
            read = _arn_reader(type_id, region, inventory.account_id)
            selected.update(read(record) for record in records)
        assert selected <= known, f"{type_id}: c7n selected resources the product does not know"
        if selected != expected:
            mismatched[type_id] = (selected, expected)

    assert set(mismatched) | {"sqs:queue"} == set(NOT_RUNNABLE_IN_MOTO), {
        type_id: (sorted(selected - expected), sorted(expected - selected))
        for type_id, (selected, expected) in mismatched.items()
    }
    # The Kinesis symptom: c7n sees no tags at all, so it selects every stream.
    selected, expected = mismatched["kinesis:stream"]
    assert selected == {r.arn for r in inventory.resources if r.resource_type == "kinesis:stream"} > expected
    for region in regions:
        records = json.loads((output / region / names["kinesis:stream"] / "resources.json").read_text())
        assert all(record["Tags"] == [] for record in records)


# --- a real run of the tag action ----------------------------------------------------------


def test_tag_action_fills_placeholders_only_where_the_tag_was_missing(aws_env, tmp_path):
    type_id = "ec2:instance"
    regions = list(aws_env.regions)
    try:
        before, before_evaluation = scan(aws_env, [type_id])
        missing = {key: set() for key in PLACEHOLDERS}
        to_mark: set[str] = set()
        for violation in before_evaluation.violations:
            if violation.violation_type == "missing_tag" and violation.tag_key in PLACEHOLDERS:
                missing[violation.tag_key].add(violation.resource_arn)
            else:
                to_mark.add(violation.resource_arn)
        kept_owner = {
            violation.violation_type
            for violation in before_evaluation.violations
            if violation.tag_key == "Owner" and violation.violation_type != "missing_tag"
        }
        # The estate exercises every case: missing tags, and Owner values present but invalid or
        # under a key in the wrong case, which must be left alone.
        assert all(missing.values()) and kept_owner == {"invalid_format", "wrong_key_case"}

        result = generate_custodian_policies(
            POLICY, [type_id], None, None, dry_run=False, placeholder_values=PLACEHOLDERS, mark_for_op_days=7
        )
        # No --skip-validation: the CLI checks the tag and mark-for-op policies before running them.
        custodian_run(write(result, tmp_path / "fix.yml"), tmp_path / "out", regions, aws_env)

        after, after_evaluation = scan(aws_env, [type_id])
        after_tags = {resource.arn: dict(resource.tags) for resource in after.resources}
        assert set(after_tags) == {resource.arn for resource in before.resources}
        for resource in before.resources:
            expected = dict(resource.tags)
            for key, placeholder in PLACEHOLDERS.items():
                if resource.arn in missing[key]:
                    expected[key] = placeholder
            actual = after_tags[resource.arn]
            mark = actual.pop(MARK_TAG, None)
            assert actual == expected, resource.arn
            assert (mark is not None) == (resource.arn in to_mark), resource.arn
            assert mark is None or MARK_VALUE.match(mark), mark
        assert not [
            violation
            for violation in after_evaluation.violations
            if violation.violation_type == "missing_tag" and violation.tag_key in PLACEHOLDERS
        ]
    finally:
        aws_env.reset_and_reseed()


# --- wildcard allowed values against the demo estate ---------------------------------------

WILDCARD_TYPES = ["ec2:instance", "s3:bucket", "rds:db", "lambda:function", "dynamodb:table"]


def _wildcard_policy() -> Any:
    """The repository's policy with wildcard allowed values the estate's tags exercise."""
    document = POLICY.model_dump(mode="json", exclude_none=True)
    for tag in document["required_tags"]:
        if tag["name"] == "CostCenter":
            tag["allowed_values"] = ["CC-1*", "CC-2001", "CC-3001"]  # CC-10O1 is allowed, badly formatted
        if tag["name"] == "Environment":
            tag["allowed_values"] = ["production", "stag*", "dev*", "test"]  # "stage" and "dev" allowed
    return parse_policy(document)


def test_dry_run_with_wildcard_allowed_values_selects_exactly_what_the_check_reports(aws_env, tmp_path):
    wildcard = _wildcard_policy()
    regions = list(aws_env.regions)
    result = generate_custodian_policies(wildcard, WILDCARD_TYPES, None, None)
    assert "regex-case" in result.yaml and "stag.*" in result.yaml
    names = dict(zip(result.resource_types, (policy["name"] for policy in result.policies), strict=True))
    output = tmp_path / "out"
    # No --skip-validation: the CLI validates the wildcard regexes before running them.
    custodian_run(write(result, tmp_path / "wildcard.yml"), output, regions, aws_env, "--dryrun")

    inventory = collect_inventory(
        AwsClients(Settings(AWS_ENDPOINT_URL=aws_env.endpoint_url, AWS_DEFAULT_REGION=regions[0])),
        regions,
        WILDCARD_TYPES,
    )
    assert not inventory.failed_shards and not inventory.unreadable
    expected_all = evaluate(inventory.resources, compile_policy(wildcard, WILDCARD_TYPES)).noncompliant_arns
    literal_all = evaluate(inventory.resources, compile_policy(POLICY, WILDCARD_TYPES)).noncompliant_arns
    # The wildcards matter in this estate: resources the literal lists flag are compliant now.
    relieved = literal_all - expected_all
    assert relieved, "no resource is compliant only through a wildcard: the test would prove nothing"

    load_resources(tuple(f"aws.{REGISTRY[type_id].custodian_resource}" for type_id in WILDCARD_TYPES))
    for type_id in WILDCARD_TYPES:
        known = {resource.arn for resource in inventory.resources if resource.resource_type == type_id}
        selected: set[str] = set()
        for region in regions:
            records = json.loads((output / region / names[type_id] / "resources.json").read_text())
            read = _arn_reader(type_id, region, inventory.account_id)
            selected.update(read(record) for record in records)
        expected = known & expected_all
        assert expected, f"the estate has no violation of {type_id}: the comparison would prove nothing"
        assert selected == expected, (type_id, sorted(selected - expected), sorted(expected - selected))
        assert not selected & relieved

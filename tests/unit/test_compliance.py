"""The engine: each violation type, precedence, the score, and scoping by applies_to."""

from __future__ import annotations

from tagcompliance.compliance import Resource, compile_policy, evaluate
from tagcompliance.policy import parse_policy
from tagcompliance.resources import RESOURCE_TYPE_IDS

POLICY = parse_policy(
    {
        "required_tags": [
            {
                "name": "CostCenter",
                "allowed_values": ["CC-1001", "CC-2001"],
                "validation_regex": "^CC-[0-9]{4}$",
            },
            {"name": "Owner", "validation_regex": "^[a-z]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["production", "staging"]},
            {"name": "Application", "applies_to": ["ec2:instance"]},
        ],
        "prohibited_tags": ["Temp"],
    }
)
GOOD = {"CostCenter": "CC-1001", "Owner": "ana@example.com", "Environment": "production"}


def bucket(name: str, tags: dict[str, str]) -> Resource:
    return Resource(f"arn:aws:s3:::{name}", "s3:bucket", "us-east-1", "", name, tags, name)


def run(*resources: Resource):
    return evaluate(resources, compile_policy(POLICY, RESOURCE_TYPE_IDS))


def kinds(result) -> list[tuple[str, str]]:
    return [(v.violation_type, v.tag_key) for v in result.violations]


def test_compliant_resource() -> None:
    result = run(bucket("a", GOOD))
    assert result.violations == [] and result.compliance_score == 1.0


def test_each_violation_type() -> None:
    assert kinds(run(bucket("a", {**GOOD, "Owner": "   "}))) == [("missing_tag", "Owner")]
    assert kinds(run(bucket("a", {k: v for k, v in GOOD.items() if k != "Owner"}))) == [
        ("missing_tag", "Owner")
    ]
    wrong_case = run(
        bucket("a", {"CostCenter": "CC-1001", "Owner": "ana@example.com", "environment": "production"})
    )
    assert kinds(wrong_case) == [("wrong_key_case", "Environment")]
    assert wrong_case.violations[0].actual_key == "environment"
    assert wrong_case.violations[0].current_value == "production"
    assert kinds(run(bucket("a", {**GOOD, "Environment": "prod"}))) == [("invalid_value", "Environment")]
    assert kinds(run(bucket("a", {**GOOD, "Owner": "Ana Smith"}))) == [("invalid_format", "Owner")]
    assert kinds(run(bucket("a", {**GOOD, "Temp": "yes"}))) == [("prohibited_tag", "Temp")]


def test_one_violation_per_tag_value_not_allowed_takes_precedence_over_format() -> None:
    result = run(bucket("a", {**GOOD, "CostCenter": "nine"}))
    assert kinds(result) == [("invalid_value", "CostCenter")]


def test_wrong_case_with_empty_value_is_missing() -> None:
    assert kinds(run(bucket("a", {**{k: v for k, v in GOOD.items() if k != "Owner"}, "owner": " "}))) == [
        ("missing_tag", "Owner")
    ]


def test_applies_to_limits_rules_and_score() -> None:
    instance = Resource(
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
        "ec2:instance",
        "us-east-1",
        "123456789012",
        "i-0123456789abcdef0",
        dict(GOOD),
    )
    result = run(instance, bucket("b", GOOD))
    assert kinds(result) == [("missing_tag", "Application")]
    assert (result.scanned, result.compliant, result.compliance_score) == (2, 1, 0.5)


def test_empty_scope_has_no_score() -> None:
    result = run()
    assert result.compliance_score is None and result.scanned == 0


def test_types_without_requirements_are_not_scored() -> None:
    policy = parse_policy({"required_tags": [{"name": "Owner", "applies_to": ["ec2:instance"]}]})
    result = evaluate([bucket("a", {})], compile_policy(policy, RESOURCE_TYPE_IDS))
    assert result.compliance_score is None and result.without_requirements == 1

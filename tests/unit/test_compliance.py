"""The engine: each violation type, precedence, the score, and scoping by applies_to."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagcompliance import compliance
from tagcompliance.compliance import (
    Resource,
    Violation,
    compile_policy,
    count_by,
    evaluate,
)
from tagcompliance.policy import TaggingPolicy, parse_policy
from tagcompliance.resources import RESOURCE_TYPE_IDS
from tests.compliance_reference import evaluate_reference

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


# --- wildcard allowed values (AWS tag-policy syntax) -----------------------------------------

WILDCARD_POLICY = parse_policy(
    {
        "required_tags": [
            {"name": "CostCenter", "allowed_values": ["100", "200", "300*"]},
            {"name": "Owner", "allowed_values": ["*@example.com"]},
            {
                "name": "Environment",
                "allowed_values": ["production", "staging"],
                "validation_regex": "^[a-z]+$",
            },
        ]
    }
)


def run_wildcards(*tag_sets: dict[str, str]):
    resources = [bucket(f"b{index}", tags) for index, tags in enumerate(tag_sets)]
    return evaluate(resources, compile_policy(WILDCARD_POLICY, RESOURCE_TYPE_IDS))


def test_wildcard_allowed_values_match_any_sequence() -> None:
    good = {"CostCenter": "3001", "Owner": "ana@example.com", "Environment": "production"}
    assert run_wildcards(good, {**good, "CostCenter": "300"}, {**good, "CostCenter": "100"}).violations == []
    result = run_wildcards(
        {**good, "CostCenter": "1300"},
        {**good, "Owner": "ana@exampleXcom"},  # "." is literal
        {**good, "Owner": "ana@example.com.evil.net"},  # the whole value must match
    )
    assert kinds(result) == [
        ("invalid_value", "CostCenter"),
        ("invalid_value", "Owner"),
        ("invalid_value", "Owner"),
    ]


def test_wildcard_values_are_not_regular_expressions() -> None:
    policy = parse_policy(
        {"required_tags": [{"name": "App", "allowed_values": ["a.b*", "(x|y)*", "[0-9]+"]}]}
    )
    compiled = compile_policy(policy, ["s3:bucket"])
    assert (
        evaluate([bucket("a", {"App": "a.b-1"}), bucket("b", {"App": "(x|y)z"})], compiled).violations == []
    )
    bad = evaluate(
        [bucket("c", {"App": "aXb"}), bucket("d", {"App": "x"}), bucket("e", {"App": "7"})], compiled
    )
    assert [v.current_value for v in bad.violations] == ["aXb", "x", "7"]
    assert evaluate([bucket("f", {"App": "[0-9]+"})], compiled).violations == []  # no "*": exact only


def test_policies_without_wildcards_compile_to_a_plain_set() -> None:
    compiled = compile_policy(POLICY, ["s3:bucket"])
    assert all(rule.allowed_match is None for rule in compiled.rules_for("s3:bucket"))
    wild = compile_policy(WILDCARD_POLICY, ["s3:bucket"])
    cost_center = wild.rules_for("s3:bucket")[0]
    assert cost_center.allowed == frozenset({"100", "200"}) and cost_center.allowed_match is not None


def test_wildcard_rules_keep_precedence_over_format() -> None:
    good = {"CostCenter": "100", "Owner": "ana@example.com"}
    assert kinds(run_wildcards({**good, "Environment": "Production"})) == [("invalid_value", "Environment")]


# --- the fast path equals the reference loop ---------------------------------------------------
# evaluate() runs the rules once per distinct tag map and builds Violation objects only when they
# are read; evaluate_reference() is the plain loop. Over random policies and tag maps they must give
# the same violations (same order), counts, pages and noncompliant set.

TYPES = ("ec2:instance", "s3:bucket", "lambda:function")
KEYS = ("CostCenter", "costcenter", "COSTCENTER", "Owner", "owner", "Env", "Temp", "Secret", "Name")
VALUES = ("", " ", "CC-1001", "CC-2042", "cc-1", "prod", "production", "ana@example.com", "=x", "a*b")

tag_maps = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=6)


@st.composite
def policies(draw: st.DrawFn) -> TaggingPolicy:
    names = draw(st.lists(st.sampled_from(("CostCenter", "Owner", "Env", "Name")), unique=True, max_size=4))
    required = []
    for name in names:
        tag: dict[str, object] = {"name": name}
        if draw(st.booleans()):
            tag["allowed_values"] = draw(
                st.lists(
                    st.sampled_from(("CC-1001", "CC-2*", "prod*", "production", "*@example.com")),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
        if draw(st.booleans()):
            tag["validation_regex"] = draw(
                st.sampled_from(("^CC-[0-9]{4}$", "^[a-z]+$", "^.+@example\\.com$"))
            )
        if draw(st.booleans()):
            tag["applies_to"] = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True))
        required.append(tag)
    candidates = [key for key in ("Temp", "Secret", "Name") if key not in names]
    prohibited = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=2))
    return parse_policy({"required_tags": required, "prohibited_tags": prohibited})


@st.composite
def estates(draw: st.DrawFn) -> list[Resource]:
    shared = draw(st.lists(tag_maps, min_size=1, max_size=4))  # repeated maps: the memo's case
    resources = []
    for index in range(draw(st.integers(0, 25))):
        tags = draw(st.one_of(st.sampled_from(shared), tag_maps))
        tags = dict(tags) if draw(st.booleans()) else tags  # equal maps, distinct or shared objects
        resource_type = draw(st.sampled_from((*TYPES, "dynamodb:table")))
        resources.append(
            Resource(f"arn:aws:x:us-east-1:1:r/{index}", resource_type, "us-east-1", "1", str(index), tags)
        )
    return resources


@settings(max_examples=300, deadline=None)
@given(policy=policies(), resources=estates(), offset=st.integers(0, 30), limit=st.integers(1, 10))
def test_fast_path_equals_reference(
    policy: TaggingPolicy, resources: list[Resource], offset: int, limit: int
) -> None:
    compiled = compile_policy(policy, TYPES)  # dynamodb:table is out of scope: no requirements
    fast = evaluate(resources, compiled)
    reference = evaluate_reference(resources, compiled)
    assert list(fast.iter_violations()) == reference.violations
    assert fast.violations == reference.violations
    assert all(type(v) is Violation for v in fast.violations)
    assert (fast.scanned, fast.compliant, fast.without_requirements) == (
        reference.scanned,
        reference.compliant,
        reference.without_requirements,
    )
    assert fast.violation_count == len(reference.violations)
    assert fast.noncompliant_arns == reference.noncompliant_arns
    for severities in (None, {"error"}, {"warning"}):
        selected = [v for v in reference.violations if severities is None or v.severity in severities]
        assert list(fast.iter_violations(severities)) == selected
        assert fast.page(offset, limit, severities) == selected[offset : offset + limit]
    for attribute in ("violation_type", "tag_key", "severity", "resource_type", "region"):
        assert fast.counts(attribute) == count_by(reference.violations, attribute)


@settings(max_examples=50, deadline=None)
@given(policy=policies(), resources=estates())
def test_a_full_memo_starts_over_without_changing_results(
    policy: TaggingPolicy, resources: list[Resource]
) -> None:
    compiled = compile_policy(policy, TYPES)
    previous = compliance.MEMO_LIMIT
    compliance.MEMO_LIMIT = 2  # estates overflow it, so it is cleared mid-evaluation
    try:
        fast = evaluate(resources, compiled)
    finally:
        compliance.MEMO_LIMIT = previous
    assert fast.violations == evaluate_reference(resources, compiled).violations


def test_prohibited_tags_are_reported_in_key_order() -> None:
    policy = parse_policy({"required_tags": [], "prohibited_tags": ["Zeta", "Alpha", "Mid"]})
    result = evaluate([bucket("a", {"Zeta": "1", "Mid": "2", "Alpha": "3"})], compile_policy(policy, TYPES))
    assert [v.tag_key for v in result.violations] == ["Alpha", "Mid", "Zeta"]


def test_resources_with_equal_tags_share_findings_but_keep_their_identity() -> None:
    tags = {"CostCenter": "CC-1001", "Owner": "bad"}
    result = run(bucket("a", tags), bucket("b", dict(tags)), bucket("c", tags))
    assert [(v.resource_arn, v.tag_key) for v in result.violations] == [
        ("arn:aws:s3:::a", "Owner"),
        ("arn:aws:s3:::a", "Environment"),
        ("arn:aws:s3:::b", "Owner"),
        ("arn:aws:s3:::b", "Environment"),
        ("arn:aws:s3:::c", "Owner"),
        ("arn:aws:s3:::c", "Environment"),
    ]
    assert result.page(3, 2) == result.violations[3:5]

"""Tag suggestions: each evidence source, only allowed values, S3 targets, confidence and ordering."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tagcompliance.compliance import Resource
from tagcompliance.policy import parse_policy
from tagcompliance.suggest import (
    MAX_CONFIDENCE,
    STACK_TAG,
    TagSuggestion,
    TagSuggestions,
    is_valid_value,
    name_prefix,
    suggest_tags,
)

POLICY = parse_policy(
    {
        "required_tags": [
            {
                "name": "CostCenter",
                "allowed_values": ["CC-1001", "CC-1002", "CC-2001"],
                "validation_regex": "^CC-[0-9]{4}$",
            },
            {"name": "Owner", "validation_regex": "^[a-z0-9.-]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["production", "staging", "development", "test"]},
            {"name": "Application", "applies_to": ["ec2:instance"]},
        ],
    }
)
ACCOUNT = "111122223333"
COMPLETE = {
    "CostCenter": "CC-1001",
    "Owner": "ops@example.com",
    "Environment": "production",
    "Application": "pay",
}
_serial = iter(range(1, 1_000_000))


def instance(
    name: str | None, tags: dict[str, str], vpc: str | None = None, account: str = ACCOUNT
) -> Resource:
    resource_id = f"i-{next(_serial):017x}"
    return Resource(
        f"arn:aws:ec2:us-east-1:{account}:instance/{resource_id}",
        "ec2:instance",
        "us-east-1",
        account,
        resource_id,
        tags,
        name,
        vpc,
    )


def volume(name: str | None, tags: dict[str, str], vpc: str | None = None) -> Resource:
    resource_id = f"vol-{next(_serial):017x}"
    return Resource(
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/{resource_id}",
        "ec2:volume",
        "us-east-1",
        ACCOUNT,
        resource_id,
        tags,
        name,
        vpc,
    )


def bucket(name: str, tags: dict[str, str]) -> Resource:
    # As S3 ARNs carry no account, hand-built bucket Resources here carry none either.
    return Resource(f"arn:aws:s3:::{name}", "s3:bucket", "eu-west-1", "", name, tags, name)


def without(tags: dict[str, str], *keys: str) -> dict[str, str]:
    return {key: value for key, value in tags.items() if key not in keys}


def suggestion(result: TagSuggestions, tag_key: str) -> TagSuggestion:
    found = [item for item in result.suggestions if item.tag_key == tag_key]
    assert found, f"no suggestion for {tag_key}: {result.no_suggestion}"
    return found[0]


def no_suggestion_reason(result: TagSuggestions, tag_key: str) -> str:
    found = [item for item in result.no_suggestion if item.tag_key == tag_key]
    assert found, f"{tag_key} unexpectedly suggested: {result.suggestions}"
    return found[0].reason


def test_is_valid_value_needs_allowed_value_and_regex() -> None:
    cost_center = POLICY.required_tags[0]
    assert is_valid_value(cost_center, "CC-1001")
    assert not is_valid_value(cost_center, "CC-9999")  # matches the regex, not allowed
    assert not is_valid_value(cost_center, " ")
    assert is_valid_value(POLICY.required_tags[3], "anything")


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("payments-api-prod-01", "payments-api"),
        ("payments-exports-stg-use1-01", "payments-exports"),
        ("ledger_worker.dev2", "ledger-worker"),
        ("Checkout-DB", "checkout-db"),
        ("db-01", None),  # too short to group by
        ("prod-01", None),
    ],
)
def test_name_prefix_drops_trailing_index_region_and_stage_parts(name: str, prefix: str | None) -> None:
    assert name_prefix(name) == prefix


@pytest.mark.parametrize(
    ("name", "environment", "token"),
    [
        ("payments-api-prd-01", "production", "prd"),
        ("PaymentsApiProd", "production", "prod"),
        ("payments-api-stg-01", "staging", "stg"),
        ("payments-api-dev-01", "development", "dev"),
        ("payments-api-qa", "test", "qa"),
    ],
)
def test_name_tokens_suggest_the_stage_the_policy_allows(name: str, environment: str, token: str) -> None:
    result = suggest_tags(instance(name, without(COMPLETE, "Environment")), [], POLICY)

    found = suggestion(result, "Environment")
    assert (found.issue, found.current_value, found.suggested_value) == ("missing_tag", None, environment)
    assert found.sources == ["name_token"]
    assert found.reasons == [f"the name {name!r} contains {token!r}, short for {environment!r}"]
    assert found.confidence == 0.5  # one name-token alias: WEIGHT_NAME_ALIAS, nothing competing
    assert result.compliant_tags == ["Application", "CostCenter", "Owner"]


def test_allowed_values_that_appear_in_the_name_are_suggested() -> None:
    result = suggest_tags(instance("billing-cc-2001-worker", without(COMPLETE, "CostCenter")), [], POLICY)

    found = suggestion(result, "CostCenter")
    assert found.suggested_value == "CC-2001" and found.confidence == 0.6
    assert found.reasons == ["the name 'billing-cc-2001-worker' contains 'CC-2001'"]


def test_name_tokens_only_give_values_the_policy_allows() -> None:
    live_policy = parse_policy(
        {"required_tags": [{"name": "Environment", "allowed_values": ["live", "sandbox"]}]}
    )
    odd_policy = parse_policy(
        {"required_tags": [{"name": "Environment", "allowed_values": ["prod-env", "dev-env"]}]}
    )
    target = instance("payments-api-prod-01", {})

    assert suggestion(suggest_tags(target, [], live_policy), "Environment").suggested_value == "live"
    reason = no_suggestion_reason(suggest_tags(target, [], odd_policy), "Environment")
    assert reason.startswith("no allowed value found in evidence")


def test_siblings_in_the_same_stack_give_the_majority_value_with_counts() -> None:
    stack = {STACK_TAG: "payments"}
    target = instance("api", {**without(COMPLETE, "CostCenter"), **stack})
    siblings = [volume(f"data-{n}", {**stack, "CostCenter": "CC-1001"}) for n in range(7)]
    siblings.append(volume("data-7", {**stack, "CostCenter": "CC-1002"}))
    other_stack = [volume("x", {STACK_TAG: "ledger", "CostCenter": "CC-2001"}) for _ in range(5)]

    found = suggestion(suggest_tags(target, siblings + other_stack, POLICY), "CostCenter")

    assert found.suggested_value == "CC-1001"
    assert found.sources == ["same_stack"]
    assert found.reasons == ["7 of 8 resources in stack payments carry CostCenter=CC-1001"]
    # support(CC-1001) = 0.8 * 7/8 * 7/8 = 0.6125; support(CC-1002) = 0.8 * 1/8 * 1/2 = 0.05;
    # confidence = 0.6125 * (1 - 0.5 * 0.05) = 0.597
    assert found.confidence == 0.6


def test_siblings_by_vpc_and_name_prefix_count_only_valid_values() -> None:
    target = instance("orders-api-prod-03", without(COMPLETE, "Owner"), vpc="vpc-1")
    same_vpc = [volume(f"disk-{n}", {"Owner": "orders@example.com"}, vpc="vpc-1") for n in range(3)]
    same_prefix = [
        volume("orders-api-prod-01", {"Owner": "orders@example.com"}),
        volume("orders-api-dev-01", {"Owner": "Orders Team"}),  # invalid: not counted as a value
    ]

    found = suggestion(suggest_tags(target, same_vpc + same_prefix, POLICY), "Owner")

    assert found.suggested_value == "orders@example.com"
    assert found.sources == ["same_vpc", "same_name_prefix"]  # strongest evidence first
    assert found.reasons == [
        "3 of 3 resources in vpc-1 carry Owner=orders@example.com",
        "1 of 2 resources named orders-api-* carry Owner=orders@example.com",
    ]
    # Shares count siblings with a valid value only: 1 - (1 - 0.5 * 3/3 * 3/4) * (1 - 0.7 * 1/1 * 1/2)
    # = 1 - 0.625 * 0.65 = 0.594
    assert found.confidence == 0.59


def test_account_wide_majority_is_weak_evidence() -> None:
    target = instance(None, without(COMPLETE, "Owner"))
    same_account = [instance(None, {"Owner": "ops@example.com"}) for _ in range(9)] + [instance(None, {})]
    other_account = [instance(None, {"Owner": "else@example.com"}, account="999988887777") for _ in range(20)]

    found = suggestion(suggest_tags(target, same_account + other_account, POLICY), "Owner")

    assert found.suggested_value == "ops@example.com" and found.sources == ["account_type_majority"]
    assert found.reasons == [
        f"9 of 10 resources of type ec2:instance in account {ACCOUNT} carry Owner=ops@example.com"
    ]
    assert found.confidence == 0.27  # 0.3 * 9/9 * 9/10: a single weak source stays low


def test_evidence_too_weak_gives_no_suggestion_with_the_candidate() -> None:
    target = instance(None, without(COMPLETE, "Owner"))
    population = [instance(None, {"Owner": "ops@example.com"}) for _ in range(3)]
    population += [instance(None, {"Owner": "web@example.com"}) for _ in range(2)]
    population += [instance(None, {}) for _ in range(5)]

    reason = no_suggestion_reason(suggest_tags(target, population, POLICY), "Owner")

    # support(ops) = 0.3 * 3/5 * 3/4 = 0.135, support(web) = 0.3 * 2/5 * 2/3 = 0.08;
    # confidence = 0.135 * (1 - 0.5 * 0.08) = 0.13
    assert reason == (
        "evidence too weak: the best candidate Owner=ops@example.com reaches confidence 0.13 (below 0.2): "
        f"3 of 10 resources of type ec2:instance in account {ACCOUNT} carry Owner=ops@example.com"
    )


def test_wrong_cased_key_with_a_valid_value_is_moved() -> None:
    target = instance("x", {**without(COMPLETE, "Environment"), "environment": "staging"})

    found = suggestion(suggest_tags(target, [], POLICY), "Environment")

    assert (found.issue, found.current_key, found.current_value) == (
        "wrong_key_case",
        "environment",
        "staging",
    )
    assert found.suggested_value == "staging" and found.confidence == 0.9
    assert found.sources == ["wrong_case_key"]
    assert found.reasons == [
        "the resource carries environment=staging: move the value to the key Environment"
    ]


@pytest.mark.parametrize(
    ("tags", "tag_key", "issue", "suggested"),
    [
        ({"ENVIRONMENT": "Prod"}, "Environment", "wrong_key_case", "production"),
        ({"Environment": "PRODUCTION"}, "Environment", "invalid_value", "production"),
        ({"Environment": "qa"}, "Environment", "invalid_value", "test"),
        ({"CostCenter": "cc-1001"}, "CostCenter", "invalid_value", "CC-1001"),
        ({"Owner": "Ana@Example.com"}, "Owner", "invalid_format", "ana@example.com"),
    ],
)
def test_near_miss_values_suggest_the_accepted_spelling(
    tags: dict[str, str], tag_key: str, issue: str, suggested: str
) -> None:
    target = instance("x", {**without(COMPLETE, tag_key), **tags})

    found = suggestion(suggest_tags(target, [], POLICY), tag_key)

    assert (found.issue, found.suggested_value, found.sources) == (issue, suggested, ["current_value"])
    assert found.confidence == 0.7


def test_only_values_the_policy_allows_are_suggested() -> None:
    stack = {STACK_TAG: "legacy"}
    target = instance("svc", {**without(COMPLETE, "CostCenter"), **stack})
    siblings = [
        volume("a", {**stack, "CostCenter": "CC-9999"}),
        volume("b", {**stack, "CostCenter": "finance"}),
    ]

    result = suggest_tags(target, siblings, POLICY)

    assert result.suggestions == []
    assert no_suggestion_reason(result, "CostCenter").startswith("no allowed value found in evidence")


def test_s3_bucket_target_uses_its_name_and_sibling_buckets() -> None:
    target = bucket("payments-logs-prod", {"Owner": "payments@example.com"})
    population = [
        bucket("payments-logs-dev", {"CostCenter": "CC-1002", "Environment": "development"}),
        bucket("payments-logs-staging", {"CostCenter": "CC-1002", "Environment": "staging"}),
        bucket("unrelated", {"CostCenter": "CC-2001"}),
        instance("payments-logs-prod", {"CostCenter": "CC-2001"}),  # another type: a name sibling only
    ]

    result = suggest_tags(target, population, POLICY)

    assert result.resource_arn == "arn:aws:s3:::payments-logs-prod" and result.resource_type == "s3:bucket"
    environment = suggestion(result, "Environment")
    assert environment.suggested_value == "production" and "name_token" in environment.sources
    cost_center = suggestion(result, "CostCenter")
    assert cost_center.suggested_value == "CC-1002"
    assert cost_center.reasons == [
        "2 of 3 resources named payments-logs-* carry CostCenter=CC-1002",
        "2 of 3 resources of type s3:bucket in the same account carry CostCenter=CC-1002",
    ]
    assert result.compliant_tags == ["Owner"]  # Application does not apply to buckets


def test_no_evidence_gives_a_reason_per_tag_in_key_order() -> None:
    result = suggest_tags(instance("abc", {}), [], POLICY)

    assert result.suggestions == []
    assert [item.tag_key for item in result.no_suggestion] == [
        "Application",
        "CostCenter",
        "Environment",
        "Owner",
    ]
    assert all(item.issue == "missing_tag" and item.current_value is None for item in result.no_suggestion)
    assert no_suggestion_reason(result, "CostCenter").startswith("no allowed value found in evidence")
    assert "without allowed_values only values that siblings" in no_suggestion_reason(result, "Owner")


def test_empty_value_counts_as_missing_and_keeps_the_current_value() -> None:
    found = suggestion(
        suggest_tags(instance("api-prod", {**COMPLETE, "Environment": " "}), [], POLICY), "Environment"
    )
    assert (found.issue, found.current_value, found.suggested_value) == ("missing_tag", " ", "production")


def test_the_target_is_never_its_own_sibling() -> None:
    stack = {STACK_TAG: "payments"}
    target = instance("api", {**without(COMPLETE, "CostCenter"), **stack})
    stale_copy_of_target = replace(target, tags={**stack, "CostCenter": "CC-2001"})
    siblings = [
        volume("a", {**stack, "CostCenter": "CC-1001"}),
        volume("b", {**stack, "CostCenter": "CC-1001"}),
    ]

    found = suggestion(suggest_tags(target, [target, stale_copy_of_target, *siblings], POLICY), "CostCenter")

    assert found.suggested_value == "CC-1001"
    assert found.reasons == ["2 of 2 resources in stack payments carry CostCenter=CC-1001"]


def test_agreeing_sources_raise_confidence_and_suggestions_come_best_first() -> None:
    stack = {STACK_TAG: "checkout"}
    target = instance("checkout-prod-01", {"Owner": "Ops@Example.com", "environment": "production", **stack})
    siblings = [volume("checkout-prod-02", {**stack, "Environment": "production", "CostCenter": "CC-2001"})]

    result = suggest_tags(target, siblings, POLICY)

    environment = suggestion(result, "Environment")
    assert environment.sources == ["wrong_case_key", "name_token", "same_stack", "same_name_prefix"]
    # 1 - (1 - 0.9) * (1 - 0.5) * (1 - 0.8 * 1/2) * (1 - 0.7 * 1/2) = 0.98: above any one source, below 1
    assert environment.confidence == 0.98
    confidences = [item.confidence for item in result.suggestions]
    assert confidences == sorted(confidences, reverse=True)
    assert result.suggestions[0].tag_key == "Environment"
    assert suggestion(result, "CostCenter").suggested_value == "CC-2001"


def test_confidence_never_reaches_one() -> None:
    stack = {STACK_TAG: "web"}
    target = instance("web-prod-01", {"environment": "production", **stack}, vpc="vpc-3")
    siblings = [
        volume(f"web-prod-{n:02}", {**stack, "Environment": "production"}, vpc="vpc-3") for n in range(2, 30)
    ]

    assert suggestion(suggest_tags(target, siblings, POLICY), "Environment").confidence == MAX_CONFIDENCE


def test_conflicting_evidence_lowers_confidence() -> None:
    target = instance("search-alerts-prod-02", without(COMPLETE, "Environment"))
    alone = suggestion(suggest_tags(target, [], POLICY), "Environment").confidence
    disagreeing_prefix = [instance("search-alerts-dev-01", {"Environment": "development"})]

    contested = suggestion(suggest_tags(target, disagreeing_prefix, POLICY), "Environment")

    assert contested.suggested_value == "production" and contested.confidence < alone


def test_results_do_not_depend_on_population_order() -> None:
    stack = {STACK_TAG: "s"}
    target = instance("svc-prod-01", {**stack}, vpc="vpc-2")
    population = [
        volume("svc-prod-02", {**stack, "CostCenter": "CC-1001", "Owner": "a@example.com"}, vpc="vpc-2"),
        volume("svc-dev-01", {"CostCenter": "CC-1002", "Owner": "b@example.com"}, vpc="vpc-2"),
        instance("other", {"CostCenter": "CC-1002", "Application": "svc"}),
    ]

    assert suggest_tags(target, population, POLICY) == suggest_tags(target, population[::-1], POLICY)

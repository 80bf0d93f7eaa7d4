"""The agent-safety core: estimates, tokens, thresholds, regret rules and the decision engine.

Runs on a real (SQLite) store; numbers are derived from the registry and the inputs, not from the
product's output.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tagcompliance.errors import InvalidInputError
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS
from tagcompliance.safety.engine import Proceed, SafetyEngine, SafetyRequest, ScopeRequest
from tagcompliance.safety.estimates import (
    COST_EXPLORER_USD_PER_REQUEST,
    LISTING_PAGE_SIZES,
    REQUEST_LATENCY_SECONDS,
    TAGGING_API_PAGE_SIZE,
    estimate_cost_explorer,
    estimate_scope,
    listing_requests,
)
from tagcompliance.safety.models import SafetyResponse
from tagcompliance.safety.policy import SafetyPolicy
from tagcompliance.safety.regrets import excluded_types, overwrite_existing, region_coverage
from tagcompliance.safety.tokens import Caller, ConfirmationError, Confirmations, hash_token
from tagcompliance.settings import Settings
from tagcompliance.store import ResourceStateRecord, SnapshotRecord, open_store
from tagcompliance.store.base import Store

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ALICE = Caller("alice", "claude-desktop")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(Settings(DATA_DIR=tmp_path, DATABASE_URL=None))
    yield opened
    opened.close()


def save_inventory(
    store: Store, snapshot_id: str, counts: dict[tuple[str, str], int], at: datetime = T0
) -> None:
    types = sorted({t for t, _ in counts})
    regions = sorted({r for _, r in counts})
    store.save_snapshot(
        SnapshotRecord(
            snapshot_id=snapshot_id,
            created_at=at,
            account_id="123456789012",
            regions=regions,
            resource_types=types,
            policy_digest="d",
            policy={},
            total_resources=sum(counts.values()),
            scanned_resources=0,
            compliant_resources=0,
            compliance_score=None,
            violation_count=0,
            counts_by_type={},
            counts_by_region={},
            counts_by_violation={},
            failed_shards=[],
        ),
        [
            ResourceStateRecord(
                snapshot_id, f"arn:aws:x:{region}:1:{type_id}/{n}", type_id, region, "1", {}, True
            )
            for (type_id, region), count in counts.items()
            for n in range(count)
        ],
    )


# --- estimates ------------------------------------------------------------------------------


def test_listing_requests_follow_the_registry() -> None:
    instance = REGISTRY["ec2:instance"]
    page = LISTING_PAGE_SIZES[instance.listing.operation]
    assert listing_requests(instance, 0) == 1  # an empty listing is still one request
    assert listing_requests(instance, page) == 1
    assert listing_requests(instance, page + 1) == 2
    # ECS services: list the clusters again, then at least one page per cluster.
    service = REGISTRY["ecs:service"]
    cluster_pages = math.ceil(3 / LISTING_PAGE_SIZES[REGISTRY["ecs:cluster"].listing.operation])
    assert listing_requests(service, 5, parents=3) == cluster_pages + 3
    assert listing_requests(service, 500, parents=3) == cluster_pages + math.ceil(
        500 / LISTING_PAGE_SIZES[service.listing.operation]
    )
    assert listing_requests(service, 0, parents=0) == 1  # no cluster: no ListServices
    # A type whose listing has no tags and that the Tagging API cannot filter: one read per resource.
    untaggable = replace(REGISTRY["sqs:queue"], tagging_api_filter=None)
    assert listing_requests(untaggable, 7) == 1 + 7


def test_estimate_scope_from_the_stored_inventory(store: Store) -> None:
    save_inventory(store, "old", {("ec2:instance", "us-east-1"): 99, ("sqs:queue", "us-east-1"): 1}, T0)
    save_inventory(
        store,
        "new",
        {("ec2:instance", "us-east-1"): 42, ("sqs:queue", "us-east-1"): 150, ("sqs:queue", "eu-west-1"): 3},
        T0 + timedelta(hours=1),
    )
    estimate = estimate_scope(store, ["ec2:instance", "sqs:queue"], ["us-east-1"])
    assert estimate.resources == 42 + 150 and estimate.complete and estimate.unknown_pairs == 0
    # EC2 carries tags in its listing; SQS takes ListQueues pages plus GetResources pages (100 a page).
    expected_calls = (
        1 + math.ceil(150 / LISTING_PAGE_SIZES["list_queues"]) + math.ceil(150 / TAGGING_API_PAGE_SIZE)
    )
    assert estimate.api_calls == expected_calls
    assert estimate.seconds == round(expected_calls * REQUEST_LATENCY_SECONDS / 2, 2)  # 2 shards in parallel
    assert "new taken 2026-01-05T13:00:00+00:00" in estimate.basis and "estimate" in estimate.method
    assert estimate.cost_explorer_usd == 0
    assert estimate.by_type == {"ec2:instance": 42, "sqs:queue": 150}

    partial = estimate_scope(store, ["ec2:instance", "lambda:function"], ["us-east-1", "ap-south-1"])
    assert partial.resources == 42 and not partial.complete and partial.unknown_pairs == 3
    assert (
        "no stored inventory for lambda:function in us-east-1" in partial.basis and "unknown" in partial.basis
    )

    everywhere = estimate_scope(store, ["all"], ["all"])
    assert everywhere.regions == ["eu-west-1", "us-east-1"] and everywhere.resource_types == list(
        RESOURCE_TYPE_IDS
    )
    assert everywhere.resources == 42 + 150 + 3 and '"all" regions' in everywhere.basis


def test_estimate_scope_without_inventory_says_unknown(store: Store) -> None:
    estimate = estimate_scope(store, ["ec2:instance"], ["us-east-1"])
    assert estimate.resources == 0 and not estimate.complete
    assert estimate.basis.startswith("no stored inventory")
    assert estimate.api_calls == 1  # the listing is still sent


def test_cost_explorer_estimate() -> None:
    estimate = estimate_cost_explorer(3)
    assert estimate.requests == 4 and estimate.usd == pytest.approx(4 * COST_EXPLORER_USD_PER_REQUEST)
    assert estimate_cost_explorer(0).requests == 0
    assert estimate_cost_explorer(2, True, 250).requests == 2 + 1 + 3
    assert "estimate" in estimate.method


# --- confirmation tokens ----------------------------------------------------------------------


def test_tokens_are_single_use_bound_to_parameters_caller_and_time(store: Store, tmp_path: Path) -> None:
    now = [T0]
    confirmations = Confirmations(store, clock=lambda: now[0])
    params = {"resource_types": ["ec2:instance"], "regions": ["us-east-1"], "page_size": 50}
    token, expires = confirmations.issue("acme", ALICE, "check_tag_compliance", params, {"resources": 1}, 600)
    assert expires == T0 + timedelta(seconds=600)
    # Only the hash is stored.
    raw = sqlite3.connect(tmp_path / "tagcompliance.sqlite3").execute(
        "SELECT token_hash FROM safety_confirmations"
    )
    assert [row[0] for row in raw] == [hash_token(token)]

    def refused(match: str, **changes: object) -> None:
        arguments = {
            "token": token,
            "organization": "acme",
            "caller": ALICE,
            "operation": "check_tag_compliance",
            "parameters": params,
            **changes,
        }
        with pytest.raises(ConfirmationError, match=match):
            confirmations.redeem(**arguments)  # type: ignore[arg-type]

    refused("regions changed", parameters={**params, "regions": ["eu-west-1"]})
    refused("page_size changed", parameters={**params, "page_size": 10})
    refused("another caller", caller=Caller("mallory", "claude-desktop"))
    refused("another caller", caller=Caller("alice", "other-client"))
    refused("another caller", organization="globex")
    refused("issued for check_tag_compliance", operation="find_untagged_resources")
    refused("unknown", token="ct_" + "A" * 43)
    refused("not a token", token="hello")
    record = confirmations.redeem(
        token, "acme", ALICE, "check_tag_compliance", dict(reversed(params.items()))
    )
    assert record.operation == "check_tag_compliance"
    refused("already used")

    second, _ = confirmations.issue("acme", ALICE, "check_tag_compliance", params, {}, 600)
    now[0] = T0 + timedelta(seconds=601)
    refused("expired", token=second)


# --- thresholds per organization ------------------------------------------------------------


def test_policy_per_organization() -> None:
    settings = Settings(
        SAFETY_MAX_RESOURCES=300,
        SAFETY_ORGANIZATIONS='{"acme": {"max_resources": 2000, "disabled_rules": ["excluded_types"], '
        '"rules": {"region_coverage": {"learned_share": 0.3}}}}',
    )
    default = SafetyPolicy.for_organization(settings, "globex")
    acme = SafetyPolicy.for_organization(settings, "acme")
    assert (default.max_resources, acme.max_resources) == (300, 2000)
    assert not acme.rule_enabled("excluded_types") and default.rule_enabled("excluded_types")
    assert acme.rules["region_coverage"].learned_share == 0.3
    assert acme.rules["region_coverage"].default_share == 0.0
    with pytest.raises(InvalidInputError, match="unknown regret rule"):
        SafetyPolicy.for_organization(
            Settings(SAFETY_ORGANIZATIONS='{"x": {"disabled_rules": ["nope"]}}'), "x"
        )
    with pytest.raises(InvalidInputError, match="not valid"):
        SafetyPolicy.for_organization(Settings(SAFETY_ORGANIZATIONS='{"x": {"max_resources": -1}}'), "x")


# --- regret rules -----------------------------------------------------------------------------


def test_regret_rules() -> None:
    policy = SafetyPolicy(organization="acme")
    empty = region_coverage(policy, False, ["eu-west-1"], {"us-east-1": 4, "eu-west-1": 0})
    assert empty is not None and "us-east-1 (4)" in empty.message and empty.severity == "warning"
    assert region_coverage(policy, False, ["eu-west-1"], {"us-east-1": 9, "eu-west-1": 1}) is None
    learned = region_coverage(policy, True, ["eu-west-1"], {"us-east-1": 9, "eu-west-1": 1})
    assert learned is not None and learned.learned and "only 1 of the 10" in learned.message
    assert region_coverage(policy, True, ["eu-west-1"], {"us-east-1": 5, "eu-west-1": 5}) is None
    assert region_coverage(policy, False, ["eu-west-1"], {"eu-west-1": 0}) is None  # nothing elsewhere

    most = excluded_types(policy, False, ["ec2:instance"], {"ec2:instance": 4, "rds:db": 5, "s3:bucket": 3})
    assert most is not None and most.severity == "info" and "rds:db (5), s3:bucket (3)" in most.message
    assert excluded_types(policy, False, ["ec2:instance"], {"ec2:instance": 8, "rds:db": 2}) is None
    assert excluded_types(policy, True, ["ec2:instance"], {"ec2:instance": 8, "rds:db": 2}) is not None

    overwrite = overwrite_existing(
        policy,
        {"Owner": "team@x.com"},
        {"arn:1": {"Owner": "alice@x.com"}, "arn:2": {}, "arn:3": {"Owner": ""}},
    )
    assert overwrite is not None and "1 of 3" in overwrite.message and "arn:1: Owner" in overwrite.message
    assert overwrite_existing(policy, {"Owner": "a"}, {"arn:1": {"Owner": "a"}, "arn:2": {}}) is None


# --- the decision engine ----------------------------------------------------------------------


def engine_for(store: Store, **policy: object) -> SafetyEngine:
    return SafetyEngine(store, SafetyPolicy(organization="acme", **policy))  # type: ignore[arg-type]


def check(scope: ScopeRequest, **changes: object) -> SafetyRequest:
    params = {"resource_types": scope.resource_types, "regions": scope.regions}
    return SafetyRequest(tool="check_tag_compliance", parameters=params, caller=ALICE, scope=scope, **changes)  # type: ignore[arg-type]


def test_underspecified_scope_is_clarified_with_estimates(store: Store) -> None:
    save_inventory(
        store,
        "s1",
        {("ec2:instance", "us-east-1"): 30, ("rds:db", "us-east-1"): 10, ("ec2:instance", "eu-west-1"): 5},
    )
    engine = engine_for(store, max_resources=40)
    answer = engine.evaluate(check(ScopeRequest(None, None, default_regions=["us-east-1"])))
    assert isinstance(answer, SafetyResponse) and answer.safety == "clarification_needed"
    types, regions = answer.ambiguities
    assert [(o.value, o.estimated_resources, o.requires_approval) for o in types.options] == [
        (["ec2:instance"], 35, False),
        (["ec2:instance", "rds:db"], 45, True),  # over the limit of 40
        ("all", 45, True),
    ]
    assert [(o.value, o.estimated_resources) for o in regions.options] == [
        (["us-east-1"], 40),
        (["us-east-1", "eu-west-1"], 45),
        ("all", 45),
    ]
    assert regions.options[-1].requires_approval  # "all" regions
    with pytest.raises(InvalidInputError, match="unknown resource type"):
        engine.evaluate(check(ScopeRequest(["ec2:vpc"], None)))
    with pytest.raises(InvalidInputError, match="not AWS region names"):
        engine.evaluate(check(ScopeRequest(None, ["moon-1"])))


def test_thresholds_writes_and_disabled_safety(store: Store) -> None:
    save_inventory(store, "s1", {("ec2:instance", "us-east-1"): 30})
    scope = ScopeRequest(["ec2:instance"], ["us-east-1"])
    assert isinstance(engine_for(store).evaluate(check(scope)), Proceed)
    over = engine_for(store, max_resources=10).evaluate(check(scope))
    assert isinstance(over, SafetyResponse) and over.approval_required and over.confirmation_token
    calls = engine_for(store, max_api_calls=0).evaluate(check(scope))
    assert isinstance(calls, SafetyResponse) and "AWS requests" in calls.approval_reasons[0]
    ce = engine_for(store, max_cost_explorer_requests=2).evaluate(
        check(scope, cost_explorer=estimate_cost_explorer(3))
    )
    assert isinstance(ce, SafetyResponse) and "Cost Explorer requests ($0.040)" in ce.approval_reasons[0]
    writes = engine_for(store).evaluate(check(scope, writes="saves a file"))
    assert (
        isinstance(writes, SafetyResponse)
        and writes.safety == "intent_commit"
        and not writes.approval_required
    )
    dry = engine_for(store, max_resources=10).evaluate(check(scope, dry_run=True))
    assert isinstance(dry, SafetyResponse) and dry.safety == "dry_run" and dry.confirmation_token is None
    assert dry.approval_required and dry.intent_commit is not None
    assert dry.intent_commit.estimated_scope.resources == 30
    off = engine_for(store, enabled=False, max_resources=10).evaluate(check(ScopeRequest(None, None)))
    assert isinstance(off, Proceed)


def test_outcome_mismatch_is_logged(store: Store) -> None:
    save_inventory(store, "s1", {("ec2:natgateway", "us-east-1"): 4, ("ec2:natgateway", "eu-west-1"): 0})
    engine = engine_for(store, disabled_rules=["region_coverage"])
    decision = engine.evaluate(check(ScopeRequest(["ec2:natgateway"], ["eu-west-1"])))
    assert isinstance(decision, Proceed)
    engine.record_outcome(
        decision, {"total_resources": 0, "resource_types": ["ec2:natgateway"], "regions": ["eu-west-1"]}
    )
    [belief] = store.list_beliefs("acme")
    assert belief.stage == "executed" and belief.outcome_matched is False
    assert "us-east-1 (4)" in (belief.outcome_notes or "")


def test_the_belief_log_needs_the_admin_scope() -> None:
    from tag_compliance_mcp.auth.scopes import ADMIN_SCOPE, READ_SCOPE, required_scope

    assert required_scope("get_intent_beliefs", {}) == ADMIN_SCOPE
    assert required_scope("check_tag_compliance", {"dry_run": True}) == READ_SCOPE

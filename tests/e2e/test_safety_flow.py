"""Agent safety through the official MCP client, against the seeded moto estate.

Expected numbers come from the estate's definition (``services.demo.estate``), never from the
product's output: the stored inventory the estimates read is the product's scan of that estate.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from services.demo.estate import Estate, build_estate
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tag_compliance_mcp.tools import common as tools_common
from tagcompliance.safety import tokens as tokens_module
from tagcompliance.safety.tokens import Caller

from .helpers import call, call_error, gateway_settings

pytestmark = pytest.mark.anyio
ESTATE: Estate = build_estate(seed=7)
REGIONS = list(ESTATE.regions)


def _count(types: list[str] | None, regions: list[str] | None) -> int:
    return len(ESTATE.select(types, regions))


@pytest.fixture(scope="module")
def seeded_dir(aws_env: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose store holds a full scan of the estate (the stored inventory)."""
    data_dir = tmp_path_factory.mktemp("safety")
    runtime = build_runtime(gateway_settings(aws_env, data_dir), "memory")
    try:
        result = runtime.service.check_compliance(["all"], REGIONS, force_refresh=True)
        assert result.total_resources == len(ESTATE.resources)
    finally:
        runtime.close()
    return data_dir


@pytest.fixture
def safety_runtime(aws_env: DemoAws, seeded_dir: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """A gateway on the seeded store, with an organization of its own (learned rules are per org)."""
    settings = gateway_settings(
        aws_env,
        seeded_dir,
        SAFETY_ORGANIZATION=f"org-{request.node.name}"[:100],
        LOCAL_SCHEDULER_INTERVAL_SECONDS=0,
    )
    runtime = build_runtime(settings, "memory")
    yield runtime
    runtime.close()


async def test_spec_flow_clarify_commit_confirm(safety_runtime: Runtime) -> None:
    async with Client(build_server(safety_runtime)) as client:
        # "Check my compliance"
        clarification = await call(client, "check_tag_compliance")
        assert clarification["safety"] == "clarification_needed" and clarification["clarification_needed"]
        assert clarification["executed"] is False
        by_parameter = {a["parameter"]: a for a in clarification["ambiguities"]}
        assert set(by_parameter) == {"resource_types", "regions"}

        type_options = {
            tuple(o["value"]) if isinstance(o["value"], list) else o["value"]: o
            for o in by_parameter["resource_types"]["options"]
        }
        by_type = {t: len(rs) for t, rs in ESTATE.by_type().items()}
        biggest = sorted(by_type, key=lambda t: (-by_type[t], t))
        assert type_options[(biggest[0],)]["estimated_resources"] == by_type[biggest[0]]
        assert (
            type_options[tuple(biggest[:2])]["estimated_resources"]
            == by_type[biggest[0]] + by_type[biggest[1]]
        )
        assert type_options["all"]["estimated_resources"] == len(ESTATE.resources)
        assert type_options["all"]["requires_approval"] is False  # 369 is under the 500 default
        for option in type_options.values():
            assert option["estimated_api_calls"] > 0 and option["estimated_time"]

        region_options = {
            tuple(o["value"]) if isinstance(o["value"], list) else o["value"]: o
            for o in by_parameter["regions"]["options"]
        }
        by_region = {r: len(rs) for r, rs in ESTATE.by_region().items()}
        top = sorted(by_region, key=lambda r: (-by_region[r], r))
        assert region_options[(top[0],)]["estimated_resources"] == by_region[top[0]]
        assert region_options[tuple(top[:2])]["estimated_resources"] == by_region[top[0]] + by_region[top[1]]
        assert region_options["all"]["requires_approval"] is True

        # "EC2 instances in us-east-1"
        arguments = {"resource_types": ["ec2:instance"], "regions": ["us-east-1"]}
        commit = await call(client, "check_tag_compliance", **arguments)
        assert commit["safety"] == "intent_commit" and commit["approval_required"] is False
        intent = commit["intent_commit"]
        assert intent["operation"] == "check_tag_compliance"
        assert intent["parameters"]["resource_types"] == ["ec2:instance"]
        assert intent["parameters"]["regions"] == ["us-east-1"]
        scope = intent["estimated_scope"]
        assert scope["resources"] == _count(["ec2:instance"], ["us-east-1"])
        # EC2 instances carry their tags in DescribeInstances: one page (1000 a page), no GetResources.
        assert scope["api_calls"] == 1
        assert scope["estimated_cost_usd"] == 0 and scope["complete"] is True
        assert "estimate" in scope["method"]
        assert any("will not be included" in regret for regret in intent["potential_regrets"])
        assert commit["confirmation_token"]

        # "Confirm"
        result = await call(
            client, "check_tag_compliance", **arguments, confirmation_token=commit["confirmation_token"]
        )
        assert "safety" not in result
        assert result["total_resources"] == ESTATE.expected_summary(["ec2:instance"], ["us-east-1"]).total
        assert result["scope"]["regions"] == ["us-east-1"]
        # The token never reaches the audit log, neither as an argument nor in a result summary.
        logged = str([(e.parameters, e.result_summary) for e in safety_runtime.store.list_calls(limit=10)])
        assert commit["confirmation_token"] not in logged and "[redacted]" in logged


async def test_explicit_scope_under_thresholds_runs_without_confirmation(safety_runtime: Runtime) -> None:
    async with Client(build_server(safety_runtime)) as client:
        result = await call(client, "check_tag_compliance", resource_types=["all"], regions=REGIONS)
        assert result["total_resources"] == len(ESTATE.resources)


async def test_confirmation_token_refusals(safety_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    arguments = {"resource_types": ["ec2:natgateway"], "regions": ["eu-west-1"]}
    async with Client(build_server(safety_runtime)) as client:

        async def commit() -> str:
            answer = await call(client, "check_tag_compliance", **arguments)
            assert answer["safety"] == "intent_commit", answer
            return answer["confirmation_token"]

        assert "unknown" in await call_error(
            client, "check_tag_compliance", **arguments, confirmation_token="ct_" + "x" * 43
        )
        assert "not a token" in await call_error(
            client, "check_tag_compliance", **arguments, confirmation_token="guess"
        )

        token = await commit()
        changed = await call_error(
            client,
            "check_tag_compliance",
            resource_types=["ec2:natgateway"],
            regions=["us-east-1"],
            confirmation_token=token,
        )
        assert "parameters differ" in changed and "regions" in changed
        changed_other = await call_error(
            client, "check_tag_compliance", **arguments, page_size=7, confirmation_token=token
        )
        assert "page_size" in changed_other

        with monkeypatch.context() as patch:
            patch.setattr(tools_common, "current_caller", lambda runtime: Caller("mallory"))
            assert "another caller" in await call_error(
                client, "check_tag_compliance", **arguments, confirmation_token=token
            )

        # The refused attempts did not use the token: its caller can still run exactly the commit.
        result = await call(client, "check_tag_compliance", **arguments, confirmation_token=token)
        assert result["total_resources"] == _count(["ec2:natgateway"], ["eu-west-1"]) == 0
        assert "already used" in await call_error(
            client, "check_tag_compliance", **arguments, confirmation_token=token
        )

        token = await commit()

        class Later(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
                return datetime.now(tz) + timedelta(hours=2)

        with monkeypatch.context() as patch:
            patch.setattr(tokens_module, "datetime", Later)
            assert "expired" in await call_error(
                client, "check_tag_compliance", **arguments, confirmation_token=token
            )

        assert "cannot be combined" in await call_error(
            client, "check_tag_compliance", **arguments, dry_run=True, confirmation_token=token
        )


async def test_a_token_for_one_tool_does_not_run_another(safety_runtime: Runtime) -> None:
    arguments = {"resource_types": ["ec2:natgateway"], "regions": ["eu-west-1"]}
    async with Client(build_server(safety_runtime)) as client:
        answer = await call(client, "check_tag_compliance", **arguments)
        message = await call_error(
            client, "find_untagged_resources", **arguments, confirmation_token=answer["confirmation_token"]
        )
        assert "issued for check_tag_compliance" in message


async def test_past_a_threshold_nothing_runs_without_approval(aws_env: DemoAws, seeded_dir: Path) -> None:
    settings = gateway_settings(
        aws_env, seeded_dir, SAFETY_ORGANIZATION="org-threshold", SAFETY_MAX_RESOURCES=100
    )
    runtime = build_runtime(settings, "memory")
    try:
        async with Client(build_server(runtime)) as client:
            before = runtime.service.clients.total_requests()
            snapshots = len(runtime.store.list_snapshots(limit=10_000))
            commit = await call(client, "check_tag_compliance", resource_types=["all"], regions=REGIONS)
            assert commit["safety"] == "intent_commit" and commit["approval_required"] is True
            assert any("exceeds the limit of 100" in reason for reason in commit["approval_reasons"])
            assert commit["intent_commit"]["estimated_scope"]["resources"] == len(ESTATE.resources)
            # Progressive disclosure: the smallest regions that fit under the limit, and how to expand.
            sample = commit["sample"]
            fitting = sorted(REGIONS, key=lambda r: (_count(None, [r]), r))
            expected_regions, total = [], 0
            for region in fitting:
                if total + _count(None, [region]) > 100:
                    break
                expected_regions.append(region)
                total += _count(None, [region])
            if expected_regions:
                assert sample["parameters"]["regions"] == expected_regions
                assert sample["estimated_resources"] == total
            else:
                assert sample is None
            all_regions = await call(
                client, "check_tag_compliance", resource_types=["ec2:instance"], regions=["all"]
            )
            assert all_regions["approval_required"] is True
            assert any('"all"' in reason for reason in all_regions["approval_reasons"])
            assert runtime.service.clients.total_requests() == before
            assert len(runtime.store.list_snapshots(limit=10_000)) == snapshots

            done = await call(
                client,
                "check_tag_compliance",
                resource_types=["all"],
                regions=REGIONS,
                confirmation_token=commit["confirmation_token"],
            )
            assert done["total_resources"] == len(ESTATE.resources)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("check_tag_compliance", {"resource_types": ["all"], "regions": REGIONS, "force_refresh": True}),
        ("find_untagged_resources", {"resource_types": ["ec2:volume"], "regions": ["us-west-2"]}),
        ("generate_compliance_report", {"resource_types": ["all"], "regions": ["eu-west-1"]}),
        ("detect_tag_drift", {"resource_types": ["s3:bucket"], "regions": REGIONS}),
        ("export_violations_csv", {"filters": {"resource_types": ["all"], "regions": ["us-east-1"]}}),
        (
            "get_cost_attribution_gap",
            {
                "resource_types": ["all"],
                "regions": REGIONS,
                "start_date": "2026-01-01",
                "end_date": "2026-02-01",
            },
        ),
        (
            "validate_resource_tags",
            {"resource_arns": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"]},
        ),
        ("suggest_tags", {"resource_arn": "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"}),
        ("import_aws_tag_policy", {}),
        (
            "schedule_compliance_audit",
            {
                "action": "create",
                "schedule": "daily",
                "time": "06:00",
                "timezone": "UTC",
                "recipients": ["a@example.com"],
                "format": "email",
                "resource_types": ["all"],
                "regions": REGIONS,
            },
        ),
    ],
)
async def test_dry_runs_call_no_aws_api(safety_runtime: Runtime, tool: str, arguments: dict) -> None:
    async with Client(build_server(safety_runtime)) as client:
        counts_before = dict(safety_runtime.service.clients.request_counts)
        snapshots = len(safety_runtime.store.list_snapshots(limit=10_000))
        schedules = len(safety_runtime.store.list_scheduled_audits())
        answer = await call(client, tool, **arguments, dry_run=True)
        assert answer["safety"] == "dry_run" and answer["executed"] is False
        scope = answer["intent_commit"]["estimated_scope"]
        assert scope["api_calls"] >= 1 and "estimate" in scope["method"]
        assert dict(safety_runtime.service.clients.request_counts) == counts_before
        assert len(safety_runtime.store.list_snapshots(limit=10_000)) == snapshots
        assert len(safety_runtime.store.list_scheduled_audits()) == schedules
        if tool == "get_cost_attribution_gap":
            # One request per required tag that applies plus one activation check, $0.01 each.
            policy = safety_runtime.service.loaded_policy.policy
            keys = {tag.name for tag in policy.required_tags}
            assert scope["cost_explorer_requests"] == len(keys) + 1
            assert scope["estimated_cost_usd"] == pytest.approx(0.01 * (len(keys) + 1))
        if tool == "check_tag_compliance":
            assert scope["resources"] == len(ESTATE.resources) and scope["complete"] is True


async def test_cost_gap_without_a_period_asks_for_one(safety_runtime: Runtime) -> None:
    async with Client(build_server(safety_runtime)) as client:
        answer = await call(client, "get_cost_attribution_gap", resource_types=["all"], regions=REGIONS)
        assert answer["safety"] == "clarification_needed"
        assert [a["parameter"] for a in answer["ambiguities"]] == ["period"]
        assert all(o["estimated_cost"].startswith("$") for o in answer["ambiguities"][0]["options"])


async def test_learned_warning_after_repeated_corrections(safety_runtime: Runtime) -> None:
    snapshot_types = ["ec2:snapshot"]
    # eu-west-1 holds 1 of the estate's 10 EBS snapshots: not empty, so no warning by default.
    assert 0 < _count(snapshot_types, ["eu-west-1"]) < _count(snapshot_types, None) / 2
    async with Client(build_server(safety_runtime)) as client:
        quiet = await call(
            client, "check_tag_compliance", resource_types=snapshot_types, regions=["eu-west-1"]
        )
        assert "safety" not in quiet
        assert quiet["total_resources"] == _count(snapshot_types, ["eu-west-1"])

        for _ in range(2):
            # NAT gateways: none in eu-west-1, some elsewhere -> a warning; the user then picks us-east-1.
            warned = await call(
                client, "check_tag_compliance", resource_types=["ec2:natgateway"], regions=["eu-west-1"]
            )
            assert warned["safety"] == "intent_commit"
            [warning] = [w for w in warned["intent_commit"]["warnings"] if w["rule_id"] == "region_coverage"]
            assert (
                warning["learned"] is False
                and "none of these resource types in eu-west-1" in warning["message"]
            )
            corrected = await call(
                client, "check_tag_compliance", resource_types=["ec2:natgateway"], regions=["us-east-1"]
            )
            assert "safety" not in corrected

        assert safety_runtime.store.regret_correction_counts(safety_runtime.settings.safety_organization) == {
            "region_coverage": 2
        }
        learned = await call(
            client, "check_tag_compliance", resource_types=snapshot_types, regions=["eu-west-1"]
        )
        assert learned["safety"] == "intent_commit"
        [warning] = [w for w in learned["intent_commit"]["warnings"] if w["rule_id"] == "region_coverage"]
        assert warning["learned"] is True
        assert (
            f"only {_count(snapshot_types, ['eu-west-1'])} of the {_count(snapshot_types, None)}"
            in warning["message"]
        )


async def test_belief_log_admin_tool(safety_runtime: Runtime) -> None:
    async with Client(build_server(safety_runtime)) as client:
        await call(client, "check_tag_compliance")
        commit = await call(
            client, "check_tag_compliance", resource_types=["ec2:natgateway"], regions=["eu-west-1"]
        )
        await call(
            client,
            "check_tag_compliance",
            resource_types=["ec2:natgateway"],
            regions=["eu-west-1"],
            confirmation_token=commit["confirmation_token"],
        )
        log = await call(client, "get_intent_beliefs")
        stages = [belief["stage"] for belief in log["beliefs"]]
        assert stages == ["executed", "clarification"]
        executed = log["beliefs"][0]
        assert executed["understood"]["regions"] == ["eu-west-1"]
        assert executed["outcome"]["total_resources"] == 0
        assert executed["outcome_matched"] is False
        elsewhere = {r: _count(["ec2:natgateway"], [r]) for r in REGIONS if r != "eu-west-1"}
        for region, count in elsewhere.items():
            assert f"{region} ({count})" in executed["outcome_notes"]
        clarification = log["beliefs"][1]
        assert clarification["alternatives"] and clarification["resolved_at"] is not None
        mismatched = await call(client, "get_intent_beliefs", only_mismatched=True)
        assert [b["belief_id"] for b in mismatched["beliefs"]] == [executed["belief_id"]]

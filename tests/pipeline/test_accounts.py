"""Many accounts: the organization's accounts (or a configured list), each scanned through AssumeRole.

A management account, created for this test in moto by assuming a role into a fresh account id,
creates an organization with three member accounts. Queues are created in two of them; AssumeRole
into the third is refused. Expected values come from what the test created: the per-account counts
below are worked out by hand from each queue's tags and policies/tagging_policy.json.
"""

from __future__ import annotations

import io
import json
import secrets

import boto3
import pytest

from services.scanners import handlers
from tagcompliance.audits import (
    InProcessRunner,
    MemoryLedger,
    StepFunctionsRunner,
    build_scope,
    snapshot_id_for,
)
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.reports import report_summary, write_markdown

from .conftest import policy_loader, scanner_runtime
from .faults import DenyAssumeRole

ROLE = "OrganizationAccountAccessRole"
REGION = "us-east-1"
# The policy requires CostCenter (CC-nnnn), Owner (name@example.com) and Environment (production,
# staging, development, test) on every type; Application does not apply to queues.
QUEUES = {
    "a": {
        # missing CostCenter, missing Owner, Environment "prod" not allowed: 3 violations
        "acct-a-orders": {"Environment": "prod"},
        # missing CostCenter: 1 violation
        "acct-a-billing": {"Environment": "production", "Owner": "billing@example.com"},
    },
    "b": {
        # compliant
        "acct-b-reports": {
            "CostCenter": "CC-2001",
            "Owner": "reports@example.com",
            "Environment": "production",
        },
    },
}
EXPECTED_BY_ACCOUNT = {
    "a": {"total": 2, "compliant": 0, "violations": 4},
    "b": {"total": 1, "compliant": 1, "violations": 0},
}


def _session(credentials: dict[str, str]) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


@pytest.fixture
def organization(pipeline_env):
    """(management session, {"a", "b", "blocked"} -> account id, management account id)."""
    sts = pipeline_env.client("sts", REGION)
    management_id = "3" + "".join(str(secrets.randbelow(10)) for _ in range(11))
    management = _session(
        sts.assume_role(RoleArn=f"arn:aws:iam::{management_id}:role/Admin", RoleSessionName="org-admin")[
            "Credentials"
        ]
    )
    endpoint = pipeline_env.endpoint_url
    org = management.client("organizations", region_name=REGION, endpoint_url=endpoint)
    org.create_organization(FeatureSet="ALL")
    members = {}
    for name in ("a", "b", "blocked"):
        status = org.create_account(AccountName=f"member-{name}", Email=f"{name}@example.com")
        members[name] = status["CreateAccountStatus"]["AccountId"]
    admin_sts = management.client("sts", region_name=REGION, endpoint_url=endpoint)
    for name, queues in QUEUES.items():
        member = _session(
            admin_sts.assume_role(
                RoleArn=f"arn:aws:iam::{members[name]}:role/{ROLE}", RoleSessionName="seed"
            )["Credentials"]
        )
        sqs = member.client("sqs", region_name=REGION, endpoint_url=endpoint)
        for queue, tags in queues.items():
            sqs.create_queue(QueueName=queue, tags=tags)
    return management, members, management_id


def _expected_accounts(members, management_id):
    return sorted([management_id, *members.values()])


def _expected_by_account(members):
    return {members[name]: counts for name, counts in EXPECTED_BY_ACCOUNT.items()}


def _expected_outcome_by_account(members):
    """The outcome's by_account: with each account's score, worst first (a: 0 of 2, b: 1 of 1)."""
    scores = {"a": 0.0, "b": 1.0}
    return {
        members[name]: {**EXPECTED_BY_ACCOUNT[name], "compliance_score": scores[name]} for name in ("a", "b")
    }


def _check_snapshot(store, snapshot_id, members, accounts, management_id):
    snapshot = store.get_snapshot(snapshot_id)
    assert snapshot is not None
    # account_id is the account that ran the audit; what it covers is accounts, with totals each.
    assert snapshot.account_id == management_id
    assert snapshot.accounts == sorted(accounts)
    # scanned: resources the policy has requirements for (every queue), which each score divides by.
    assert snapshot.counts_by_account == {
        account: {**counts, "scanned": counts["total"]}
        for account, counts in _expected_by_account(members).items()
    }
    assert members["blocked"] in snapshot.accounts and members["blocked"] not in snapshot.counts_by_account
    assert snapshot.total_resources == sum(len(queues) for queues in QUEUES.values())
    assert snapshot.violation_count == sum(counts["violations"] for counts in EXPECTED_BY_ACCOUNT.values())
    assert [(f["account_id"], f["region"], f["resource_type"]) for f in snapshot.failed_shards] == [
        (members["blocked"], REGION, "sqs:queue")
    ]
    assert "AccessDenied" in snapshot.failed_shards[0]["error"]
    by_account: dict[str, list[str]] = {}
    for state in store.iter_resource_states(snapshot_id):
        by_account.setdefault(state.account_id, []).append(state.resource_arn.rsplit(":", 1)[1])
    assert {account: sorted(names) for account, names in by_account.items()} == {
        members["a"]: sorted(QUEUES["a"]),
        members["b"]: sorted(QUEUES["b"]),
    }
    return snapshot


def test_configured_accounts_are_scanned_through_assume_role_in_process(settings, store, organization):
    management, members, management_id = organization
    deny = DenyAssumeRole(members["blocked"])
    management.events.register("before-call.sts.AssumeRole", deny)
    run_settings = settings.model_copy(
        update={"audit_accounts": [members["a"], members["b"], members["blocked"]], "audit_role_name": ROLE}
    )
    clients = AwsClients(run_settings, management)
    scope = build_scope(run_settings, clients, ["sqs:queue"], [REGION])
    assert scope.account_id == management_id
    assert scope.audited_accounts == [members["a"], members["b"], members["blocked"]]
    runner = InProcessRunner(clients, store, MemoryLedger(), policy_loader(settings), settings=run_settings)
    run_id = runner.start(scope, run_id="accounts-in-process")
    status = runner.wait(run_id, timeout=60)
    assert status.status == "succeeded", status.error
    assert (status.shards_total, status.shards_done, status.shards_failed) == (3, 3, 1)
    failed = [shard for shard in status.shards if shard.status == "failed"]
    assert [shard.shard_id for shard in failed] == [f"{members['blocked']}/{REGION}/sqs:queue"]
    assert deny.denied >= 1
    snapshot = _check_snapshot(store, snapshot_id_for(run_id), members, members.values(), management_id)
    assert status.outcome.accounts == sorted(members.values())
    assert status.outcome.model_dump()["by_account"] == _expected_outcome_by_account(members)
    assert snapshot.compliant_resources == sum(c["compliant"] for c in EXPECTED_BY_ACCOUNT.values())

    # The report has a section per account, worst first; the unreadable account is listed too.
    out = io.StringIO()
    write_markdown(report_summary(snapshot, []), None, out)
    report = out.getvalue()
    assert f"- Accounts: 3 ({', '.join(sorted(members.values()))}), scanned from {management_id}" in report
    section = report.split("## By account (worst first)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == [
        f"| {members['a']} | 2 | 0 | 0.0% | 4 | 0 |",
        f"| {members['b']} | 1 | 1 | 100.0% | 0 | 0 |",
        f"| {members['blocked']} | 0 | 0 | n/a | 0 | 1 |",
    ]


def test_drift_compares_a_run_only_with_runs_of_the_same_accounts(settings, store, organization):
    """Runs from one management account over [a, b] and over [a] are different scopes for drift."""
    management, members, management_id = organization
    baselines = {}
    for run_id, names in (
        ("accounts-drift-ab-1", ["a", "b"]),
        ("accounts-drift-a-1", ["a"]),
        ("accounts-drift-a-2", ["a"]),
        ("accounts-drift-ab-2", ["b", "a"]),
    ):
        run_settings = settings.model_copy(
            update={"audit_accounts": [members[name] for name in names], "audit_role_name": ROLE}
        )
        clients = AwsClients(run_settings, management)
        runner = InProcessRunner(
            clients, store, MemoryLedger(), policy_loader(settings), settings=run_settings
        )
        status = runner.wait(
            runner.start(build_scope(run_settings, clients, ["sqs:queue"], [REGION]), run_id)
        )
        assert status.status == "succeeded", status.error
        snapshot = store.get_snapshot(snapshot_id_for(run_id))
        assert snapshot.account_id == management_id
        assert snapshot.accounts == sorted(members[name] for name in names)
        baselines[run_id] = status.drift["baseline_snapshot_id"]
    assert baselines == {
        "accounts-drift-ab-1": None,
        "accounts-drift-a-1": None,  # same runner, types and regions as ab-1, but not the same accounts
        "accounts-drift-a-2": snapshot_id_for("accounts-drift-a-1"),
        "accounts-drift-ab-2": snapshot_id_for("accounts-drift-ab-1"),
    }


def test_organization_accounts_are_scanned_through_the_state_machine(
    settings, store, ledger, state_machine, organization
):
    management, members, management_id = organization
    deny = DenyAssumeRole(members["blocked"])
    management.events.register("before-call.sts.AssumeRole", deny)
    run_settings = settings.model_copy(
        update={"audit_accounts_from_organizations": True, "audit_role_name": ROLE}
    )
    handlers.runtime.set(scanner_runtime(run_settings, store, ledger, management))
    state_machine.client.start_execution(
        stateMachineArn=state_machine.arn,
        name="accounts-organization",
        input=json.dumps({"resource_types": ["sqs:queue"], "regions": [REGION], "trigger": "daily"}),
    )
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    status = runner.wait("accounts-organization", timeout=90)
    assert status.status == "succeeded", status.error
    assert status.shards_total == 4 and status.shards_failed == 1  # management + three members
    assert sorted(status.outcome.accounts) == _expected_accounts(members, management_id)
    snapshot = _check_snapshot(
        store,
        snapshot_id_for("accounts-organization"),
        members,
        _expected_accounts(members, management_id),
        management_id,
    )
    assert status.outcome.model_dump()["by_account"] == _expected_outcome_by_account(members)
    assert snapshot.trigger == "daily"
    assert deny.denied >= 1


def test_a_run_can_evaluate_with_the_organizations_tag_policy_it_imports(
    settings, store, ledger, state_machine, organization
):
    management, members, _ = organization
    org = management.client("organizations", region_name=REGION, endpoint_url=settings.aws_endpoint_url)
    content = {
        "tags": {
            "costcenter": {
                "tag_key": {"@@assign": "CostCenter"},
                "report_required_tag_for": {"@@assign": ["sqs:queue"]},
            }
        }
    }
    org.enable_policy_type(RootId=org.list_roots()["Roots"][0]["Id"], PolicyType="TAG_POLICY")
    policy_id = org.create_policy(
        Content=json.dumps(content), Description="cost centre", Name="cost-centre", Type="TAG_POLICY"
    )["Policy"]["PolicySummary"]["Id"]
    run_settings = settings.model_copy(update={"audit_accounts": [members["a"]], "audit_role_name": ROLE})
    handlers.runtime.set(scanner_runtime(run_settings, store, ledger, management))
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    for name, request in (
        ("import-ok", {"policy_id": policy_id}),
        ("import-missing", {"policy_id": "p-0000nothere"}),
    ):
        state_machine.client.start_execution(
            stateMachineArn=state_machine.arn,
            name=name,
            input=json.dumps(
                {"resource_types": ["sqs:queue"], "regions": [REGION], "import_policy": request}
            ),
        )
    imported = runner.wait("import-ok", timeout=60)
    assert imported.status == "succeeded", imported.error
    snapshot = store.get_snapshot(snapshot_id_for("import-ok"))
    assert [tag["name"] for tag in snapshot.policy["required_tags"]] == ["CostCenter"]
    # The queues carry Environment only: every one misses CostCenter.
    assert (snapshot.total_resources, snapshot.compliant_resources) == (len(QUEUES["a"]), 0)
    assert snapshot.counts_by_violation == {"missing_tag": len(QUEUES["a"])}

    missing = runner.wait("import-missing", timeout=60)
    assert missing.status == "succeeded"  # the configured policy is used, and the failure is said
    assert missing.error is not None and "import_policy_error" in missing.error
    fallback = store.get_snapshot(snapshot_id_for("import-missing"))
    assert (
        fallback.policy_digest == load_policy(settings.policy_path).policy.digest() != snapshot.policy_digest
    )

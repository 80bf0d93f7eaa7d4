"""Many accounts: the organization's accounts (or a configured list), each scanned through AssumeRole.

A management account, created for this test in moto by assuming a role into a fresh account id,
creates an organization with three member accounts. Queues are created in two of them; AssumeRole
into the third is refused. Expected values come from what the test created.
"""

from __future__ import annotations

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

from .conftest import policy_loader, scanner_runtime
from .faults import DenyAssumeRole

ROLE = "OrganizationAccountAccessRole"
REGION = "us-east-1"
QUEUES = {"a": ["acct-a-orders", "acct-a-billing"], "b": ["acct-b-reports"]}


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
        for queue in queues:
            sqs.create_queue(QueueName=queue, tags={"Environment": "prod"})
    return management, members, management_id


def _expected_accounts(members, management_id):
    return sorted([management_id, *members.values()])


def _check_snapshot(store, snapshot_id, members, accounts):
    snapshot = store.get_snapshot(snapshot_id)
    assert snapshot is not None
    assert snapshot.account_id == ",".join(sorted(accounts))
    assert snapshot.total_resources == sum(len(queues) for queues in QUEUES.values())
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
    assert (status.total_shards, status.done_shards, status.failed_shards) == (3, 3, 1)
    failed = [shard for shard in status.shards if shard.status == "failed"]
    assert [shard.shard_id for shard in failed] == [f"{members['blocked']}/{REGION}/sqs:queue"]
    assert deny.denied >= 1
    snapshot = _check_snapshot(store, snapshot_id_for(run_id), members, members.values())
    by_account = status.outcome.by_account
    assert {account: counts["total"] for account, counts in by_account.items()} == {
        members["a"]: len(QUEUES["a"]),
        members["b"]: len(QUEUES["b"]),
    }
    assert sum(counts["compliant"] for counts in by_account.values()) == snapshot.compliant_resources


def test_organization_accounts_are_scanned_through_the_state_machine(
    settings, store, ledger, state_machine, organization
):
    management, members, management_id = organization
    deny = DenyAssumeRole(members["blocked"])
    management.events.register("before-call.sts.AssumeRole", deny)
    run_settings = settings.model_copy(
        update={"audit_accounts_from_organizations": True, "audit_role_name": ROLE}
    )
    handlers.set_runtime(scanner_runtime(run_settings, store, ledger, management))
    state_machine.client.start_execution(
        stateMachineArn=state_machine.arn,
        name="accounts-organization",
        input=json.dumps({"resource_types": ["sqs:queue"], "regions": [REGION], "trigger": "daily"}),
    )
    runner = StepFunctionsRunner(state_machine.client, state_machine.arn, store, ledger, poll_seconds=0.5)
    status = runner.wait("accounts-organization", timeout=90)
    assert status.status == "succeeded", status.error
    assert status.total_shards == 4 and status.failed_shards == 1  # management + three members
    assert sorted(status.outcome.accounts) == _expected_accounts(members, management_id)
    snapshot = _check_snapshot(
        store, snapshot_id_for("accounts-organization"), members, _expected_accounts(members, management_id)
    )
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
    handlers.set_runtime(scanner_runtime(run_settings, store, ledger, management))
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

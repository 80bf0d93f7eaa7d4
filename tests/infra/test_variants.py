"""Context switches, in one extra synthesis of dev: the gateway as OAuth authorization server, a
LocalStack endpoint passed to the gateway and the Lambdas, and a deploy that requires the real
Lambda dependencies layer when it has not been built."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.constructs.gateway import CONTAINER_NAME
from stacks.permissions import SERVICE_TAG_WRITE_ACTIONS, TAGGING_WRITE_ACTIONS, gateway_read_actions

from .conftest import Synthesized, synthesize

LOCALSTACK = "http://localhost.localstack.cloud:4566"
SENDER = "audits@finops.example.com"


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(
        "dev",
        tmp_path_factory.mktemp("cdk-variant"),
        auth_mode="authorization_server",
        aws_endpoint_url=LOCALSTACK,
        lambda_deps_dir="build/not-built-here",
        require_lambda_deps="true",
        notify_email_sender=SENDER,
    )


def _errors(synth: Synthesized) -> list[str]:
    errors = []
    for path in synth.outdir.glob("*.metadata.json"):
        for items in json.loads(path.read_text(encoding="utf-8")).values():
            errors.extend(str(item["data"]) for item in items if item["type"] == "aws:cdk:error")
    return errors


def _gateway_environment(synth: Synthesized) -> dict[str, Any]:
    task = next(iter(synth.resources("gateway", "AWS::ECS::TaskDefinition").values()))
    (container,) = [c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == CONTAINER_NAME]
    return {item["Name"]: item["Value"] for item in container["Environment"]}


def test_authorization_server_mode_wires_the_idp_client_and_the_signing_key(variant: Synthesized) -> None:
    environment = _gateway_environment(variant)
    assert "AUTH_ISSUER_URL" not in environment  # the two modes are mutually exclusive
    assert environment["AUTH_IDP_ISSUER_URL"] == variant.deployment.config.env.auth_issuer_url
    assert environment["AUTH_PUBLIC_URL"]  # the load balancer's name in dev (no domain)
    secrets = variant.deployment.secrets
    assert secrets.signing_key is not None
    names = {
        s["Properties"]["Name"] for s in variant.resources("data", "AWS::SecretsManager::Secret").values()
    }
    assert f"{variant.deployment.config.secret_prefix}/oauth-signing-key" in names
    statements = [
        statement
        for logical_id, policy in variant.resources("gateway", "AWS::IAM::Policy").items()
        if logical_id.startswith("GatewayTaskRoleDefaultPolicy")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    read = [json.dumps(s["Resource"]) for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert len(read) == 2
    assert any("OAuthCredentials" in resource for resource in read)
    assert any("OAuthSigningKey" in resource for resource in read)


def test_resource_server_mode_reads_no_secret_in_the_task_role(synthesized: dict[str, Synthesized]) -> None:
    dev = synthesized["dev"]
    assert dev.deployment.secrets.signing_key is None
    policies = json.dumps(dev.resources("gateway", "AWS::IAM::Policy"))
    task_role = [
        p for k, p in dev.resources("gateway", "AWS::IAM::Policy").items() if k.startswith("GatewayTaskRole")
    ]
    assert "secretsmanager:GetSecretValue" not in json.dumps(task_role)
    assert (
        "secretsmanager:GetSecretValue" in policies
    )  # the execution role injects DATABASE_PASSWORD / REDIS_AUTH_TOKEN


def test_localstack_endpoint_reaches_the_gateway_and_every_lambda(variant: Synthesized) -> None:
    assert _gateway_environment(variant)["AWS_ENDPOINT_URL"] == LOCALSTACK
    functions = variant.resources("pipeline", "AWS::Lambda::Function")
    assert functions
    for function in functions.values():
        assert function["Properties"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == LOCALSTACK


def test_missing_lambda_dependencies_fail_a_deploy_synth(variant: Synthesized) -> None:
    errors = _errors(variant)
    assert any("build/not-built-here/python is missing" in error for error in errors), errors
    assert not [error for error in errors if "AwsSolutions" in error]


def test_notification_sender_may_send_mail_from_that_address_only(variant: Synthesized) -> None:
    statements = [
        statement
        for policy in variant.resources("pipeline", "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "SendNotifications"
    ]
    assert len(statements) == 1  # the audit steps' role (the state machine's notify step)
    for statement in statements:
        assert statement["Action"] == "ses:SendEmail"
        assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": SENDER}}
    for function in variant.resources("pipeline", "AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["NOTIFY_EMAIL_SENDER"] == SENDER


@pytest.fixture(scope="module")
def remediating(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-remediating"), remediation_enabled="true")


def _gateway_statements(synth: Synthesized) -> list[dict[str, Any]]:
    return [
        statement
        for logical_id, policy in synth.resources("gateway", "AWS::IAM::Policy").items()
        if logical_id.startswith("GatewayTaskRole")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_remediation_is_off_by_default_and_grants_no_tag_writes(variant: Synthesized) -> None:
    assert _gateway_environment(variant)["REMEDIATION_ENABLED"] == "false"
    actions = {a for s in _gateway_statements(variant) for a in _listed(s["Action"])}
    writes = {*TAGGING_WRITE_ACTIONS, *(a for acts in SERVICE_TAG_WRITE_ACTIONS.values() for a in acts)}
    writes -= set(gateway_read_actions())  # the tag reads scanning needs anyway
    assert actions and not actions & writes, sorted(actions & writes)
    # Nor may it assume the member accounts' remediation role.
    assert not [s for s in _gateway_statements(variant) if s.get("Sid") == "AssumeRemediationRoles"]


def test_remediation_enabled_grants_tag_writes_scoped_to_the_registry_arns(remediating: Synthesized) -> None:
    assert _gateway_environment(remediating)["REMEDIATION_ENABLED"] == "true"
    statements = _gateway_statements(remediating)
    tagging = [s for s in statements if "tag:TagResources" in _listed(s["Action"])]
    assert len(tagging) == 1 and set(_listed(tagging[0]["Action"])) == {
        "tag:TagResources",
        "tag:UntagResources",
    }
    ec2 = [s for s in statements if "ec2:CreateTags" in _listed(s["Action"])]
    assert len(ec2) == 1
    resources = json.dumps(ec2[0]["Resource"])
    assert ":instance/*" in resources and ":volume/*" in resources and '"*"' not in resources
    s3 = [s for s in statements if "s3:PutBucketTagging" in _listed(s["Action"])]
    assert len(s3) == 1 and ":s3:::*" in json.dumps(s3[0]["Resource"])
    # Other accounts: AssumeRole of the one named remediation role in each, nothing else.
    assert _gateway_environment(remediating)["REMEDIATION_ROLE_NAME"] == "TagComplianceRemediationRole"
    (assume,) = [s for s in statements if s.get("Sid") == "AssumeRemediationRoles"]
    assert assume["Action"] == "sts:AssumeRole"
    assert ':iam::*:role/TagComplianceRemediationRole"' in json.dumps(assume["Resource"])
    # cdk-nag: still no unsuppressed finding with the write grants.
    errors = []
    for path in remediating.outdir.glob("*.metadata.json"):
        for items in json.loads(path.read_text(encoding="utf-8")).values():
            errors.extend(
                str(i["data"])[:200]
                for i in items
                if i["type"] in ("aws:cdk:error", "aws:cdk:warning") and "AwsSolutions" in str(i["data"])
            )
    assert errors == []

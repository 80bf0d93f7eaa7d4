"""Environments come from cdk.json context, validated; one place for names and sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from stacks.config import CDK_JSON, ENVIRONMENT_NAMES, cdk_json_context, load_config


def _app(**context: Any) -> App:
    return App(context={**cdk_json_context(), **context})


def test_cdk_json_defines_exactly_the_three_environments() -> None:
    context = json.loads(Path(CDK_JSON).read_text(encoding="utf-8"))["context"]
    assert sorted(context["environments"]) == sorted(ENVIRONMENT_NAMES)
    assert context["env"] == "dev"


@pytest.mark.parametrize("env", ENVIRONMENT_NAMES)
def test_each_environment_validates(env: str) -> None:
    config = load_config(_app(env=env))
    assert config.env_name == env
    assert config.prefix == f"tag-compliance-{env}"
    assert len(config.availability_zones) == 3


def test_prod_is_multi_az_and_protected_dev_is_not() -> None:
    prod, dev = load_config(_app(env="prod")).env, load_config(_app(env="dev")).env
    assert prod.multi_az and prod.deletion_protection and prod.redis_replicas >= 1
    assert not dev.multi_az and not dev.deletion_protection


def test_blue_green_bake_time_grows_towards_prod_and_is_bounded() -> None:
    bake = {env: load_config(_app(env=env)).env.gateway_bake_time_minutes for env in ENVIRONMENT_NAMES}
    assert bake["dev"] < bake["staging"] < bake["prod"]
    # At least the deployment alarm's 3-minute window, so the alarm can still roll back while it bakes.
    assert bake["dev"] >= 3
    environments = cdk_json_context()["environments"]
    too_long = {**environments, "prod": {**environments["prod"], "gateway_bake_time_minutes": 1441}}
    with pytest.raises(SystemExit, match="gateway_bake_time_minutes"):
        load_config(_app(env="prod", environments=too_long))


def test_unknown_environment_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"unknown environment 'qa' .*dev, prod, staging"):
        load_config(_app(env="qa"))


def test_command_line_overrides_certificate_and_snapshot_time_is_checked() -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abcd-1234"
    assert load_config(_app(env="staging", certificate_arn=arn)).env.certificate_arn == arn
    with pytest.raises(SystemExit, match="not an ACM certificate ARN"):
        load_config(_app(env="staging", certificate_arn="not-an-arn"))
    environments = cdk_json_context()["environments"]
    broken = {**environments, "dev": {**environments["dev"], "daily_snapshot_time": "6am"}}
    with pytest.raises(SystemExit, match="daily_snapshot_time must be HH:MM"):
        load_config(_app(env="dev", environments=broken))
    inconsistent = {**environments, "prod": {**environments["prod"], "redis_replicas": 0}}
    with pytest.raises(SystemExit, match="multi_az needs redis_replicas"):
        load_config(_app(env="prod", environments=inconsistent))


def test_optional_context_values() -> None:
    config = load_config(
        _app(env="dev", aws_endpoint_url="http://localhost:4566", gateway_image_tag="abc123")
    )
    assert config.aws_endpoint_url == "http://localhost:4566"
    assert config.gateway_image_tag == "abc123"
    assert load_config(_app(env="dev")).aws_endpoint_url is None


def _with(env: str, **changes: Any) -> App:
    environments = cdk_json_context()["environments"]
    return _app(env=env, environments={**environments, env: {**environments[env], **changes}})


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_refuse_alarms_that_reach_no_one(env: str) -> None:
    with pytest.raises(SystemExit, match=f"{env} alarms would reach no one: set alarm_email"):
        load_config(_with(env, alarm_email=None))
    # Slack alone is a destination too; dev may go without.
    slack = load_config(
        _with(env, alarm_email=None, alarm_slack_workspace_id="T0123ABCD", alarm_slack_channel_id="C0456EFGH")
    )
    assert slack.env.alarm_destinations == ["slack:T0123ABCD/C0456EFGH"]
    assert load_config(_app(env="dev")).env.alarm_destinations == []
    # The deploy workflow passes the address of the GitHub environment's ALARM_EMAIL.
    assert (
        load_config(_app(env=env, alarm_email="oncall@example.org")).env.alarm_email == "oncall@example.org"
    )


def test_alarm_destinations_and_edge_settings_are_checked() -> None:
    cases = [
        ({"alarm_email": "not-an-address"}, "alarm_email is not an e-mail address"),
        ({"alarm_slack_channel_id": "C0456EFGH"}, "go together"),
        (
            {"alarm_slack_workspace_id": "workspace", "alarm_slack_channel_id": "C0456EFGH"},
            "not a Slack workspace id",
        ),
        (
            {"hosted_zone_id": "Z0123456789"},
            "a Route 53 alias needs hosted_zone_id, hosted_zone_name and domain_name",
        ),
        (
            {"hosted_zone_id": "Z0123456789", "hosted_zone_name": "other.example.com"},
            "is not in hosted zone 'other.example.com'",
        ),
        (
            {"interface_endpoints": ["SecretsManager", "Kinesis"]},
            r"unknown interface endpoints \['Kinesis'\]",
        ),
        ({"gateway_cpu": 1024, "gateway_memory_mib": 1024}, "is not a Fargate task size"),
    ]
    for changes, message in cases:
        with pytest.raises(SystemExit, match=message):
            load_config(_with("staging", **changes))
    zone = load_config(_with("staging", hosted_zone_id="Z0123456789", hosted_zone_name="finops.example.com."))
    assert zone.env.hosted_zone_name == "finops.example.com."

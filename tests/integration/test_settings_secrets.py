"""Connection secrets resolved by Settings: the database password from Secrets Manager (the demo
estate's moto server) and the Redis URL from the ECS task's host, port and AUTH token."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from services.demo.aws import DemoAws
from tagcompliance.errors import TagComplianceError
from tagcompliance.settings import Settings
from tagcompliance.store import open_store
from tests.conftest import fresh_postgres_database


@pytest.fixture
def aws(demo_aws: DemoAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoAws]:
    for name, value in demo_aws.environment.items():
        monkeypatch.setenv(name, value)
    yield demo_aws


@pytest.fixture
def secret_arn(aws: DemoAws) -> Iterator[str]:
    client = aws.client("secretsmanager")
    arn = client.create_secret(
        Name=f"tagging-mcp/test/database-{secrets.token_hex(4)}",
        SecretString=json.dumps({"username": "mcp_admin", "password": "s3cr3t-pw"}),
    )["ARN"]
    yield arn
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_the_database_password_is_read_from_its_secret_and_reaches_the_store(secret_arn: str) -> None:
    with fresh_postgres_database() as url:
        settings = Settings(DATABASE_URL=url, DATABASE_PASSWORD_SECRET_ARN=secret_arn)
        assert settings.database_password is not None
        assert settings.database_password.get_secret_value() == "s3cr3t-pw"
        assert "s3cr3t-pw" not in repr(settings)
        store = open_store(settings)  # the password travels beside the URL (the server trusts it)
        try:
            assert store.info().backend == "postgresql"
            assert "s3cr3t-pw" not in store.info().location
        finally:
            store.close()


def test_a_given_password_is_not_overridden_by_the_secret(secret_arn: str) -> None:
    settings = Settings(DATABASE_PASSWORD="given", DATABASE_PASSWORD_SECRET_ARN=secret_arn)
    assert settings.database_password is not None
    assert settings.database_password.get_secret_value() == "given"


def test_an_unknown_secret_stops_the_start_naming_its_arn(aws: DemoAws) -> None:
    missing = f"arn:aws:secretsmanager:us-east-1:{aws.account_id}:secret:tagging-mcp/none-AbCdEf"
    with pytest.raises(TagComplianceError, match="cannot read the database password") as raised:
        Settings(DATABASE_PASSWORD_SECRET_ARN=missing)
    assert missing in str(raised.value) and "ResourceNotFoundException" in str(raised.value)


def test_a_secret_without_a_password_is_refused(aws: DemoAws) -> None:
    client = aws.client("secretsmanager")
    arn = client.create_secret(Name=f"tagging-mcp/test/plain-{secrets.token_hex(4)}", SecretString="hunter2")[
        "ARN"
    ]
    try:
        with pytest.raises(TagComplianceError, match='not JSON with a "password"') as raised:
            Settings(DATABASE_PASSWORD_SECRET_ARN=arn)
        assert "hunter2" not in str(raised.value)
    finally:
        client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_redis_url_is_built_from_the_task_host_port_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(REDIS_HOST="cache.internal", REDIS_PORT="6380", REDIS_AUTH_TOKEN="t0ken")
    assert settings.redis_url == "rediss://:t0ken@cache.internal:6380/0"
    assert Settings(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_HOST="cache.internal").redis_url == (
        "redis://127.0.0.1:6379/0"
    )
    assert Settings().redis_url is None  # neither: the in-memory cache

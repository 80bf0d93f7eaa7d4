"""Data: PostgreSQL (Multi-AZ and deletion protection in prod), RDS Proxy, Redis, the shard ledger, secrets."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from tagcompliance.audits.ledger import TTL_ATTRIBUTE, _LedgerRow

from .conftest import Synthesized


def test_postgres_is_encrypted_backed_up_and_multi_az_in_prod(synth: Synthesized) -> None:
    env = synth.deployment.config.env
    data = synth.template("data")
    data.resource_count_is("AWS::RDS::DBInstance", 1)
    data.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "StorageEncrypted": True,
            "MultiAZ": env.multi_az,
            "DeletionProtection": env.deletion_protection,
            "BackupRetentionPeriod": env.db_backup_retention_days,
            "PubliclyAccessible": False,
            "DBInstanceClass": f"db.{env.db_instance_type}",
            "AllocatedStorage": str(env.db_allocated_storage_gb),
        },
    )
    assert env.multi_az is (synth.env == "prod")
    assert env.deletion_protection is (synth.env == "prod")


def test_rds_proxy_where_chosen_requires_tls_uses_the_secret_and_holds_the_budget(synth: Synthesized) -> None:
    data = synth.template("data")
    with_proxy = synth.deployment.config.env.rds_proxy
    data.resource_count_is("AWS::RDS::DBProxy", 1 if with_proxy else 0)
    if not with_proxy:
        return
    percent = synth.deployment.budget.proxy_max_connections_percent
    data.has_resource_properties(
        "AWS::RDS::DBProxyTargetGroup",
        {"ConnectionPoolConfigurationInfo": Match.object_like({"MaxConnectionsPercent": percent})},
    )
    data.has_resource_properties(
        "AWS::RDS::DBProxy",
        {
            "EngineFamily": "POSTGRESQL",
            "RequireTLS": True,
            "Auth": [Match.object_like({"AuthScheme": "SECRETS", "IAMAuth": "DISABLED"})],
        },
    )


def test_redis_replication_group_encrypted_with_auth_token_from_secrets_manager(synth: Synthesized) -> None:
    env = synth.deployment.config.env
    groups = synth.resources("data", "AWS::ElastiCache::ReplicationGroup")
    assert len(groups) == 1
    props = next(iter(groups.values()))["Properties"]
    assert props["TransitEncryptionEnabled"] is True
    assert props["AtRestEncryptionEnabled"] is True
    assert props["MultiAZEnabled"] is env.multi_az
    assert props["AutomaticFailoverEnabled"] is (env.redis_replicas > 0)
    assert props["NumCacheClusters"] == 1 + env.redis_replicas
    # The token is a CloudFormation dynamic reference to the Redis secret, never a literal.
    token = json.dumps(props["AuthToken"])
    assert "{{resolve:secretsmanager:" in token and ":SecretString:auth_token::}}" in token
    synth.template("data").resource_count_is("AWS::ElastiCache::SubnetGroup", 1)


def test_ledger_table_matches_the_pynamodb_model(synth: Synthesized) -> None:
    hash_key = _LedgerRow._hash_key_attribute().attr_name
    range_key = _LedgerRow._range_key_attribute().attr_name
    synth.template("data").has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": hash_key, "AttributeType": "S"},
                    {"AttributeName": range_key, "AttributeType": "S"},
                ]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )
    assert (hash_key, range_key, TTL_ATTRIBUTE) == ("run_id", "shard_id", "expires_at")


def test_secrets_of_the_spec_are_generated_not_written(synth: Synthesized) -> None:
    secrets = synth.resources("data", "AWS::SecretsManager::Secret")
    prefix = synth.deployment.config.secret_prefix
    names = {secret["Properties"]["Name"] for secret in secrets.values()}
    assert names == {
        f"{prefix}/oauth-credentials",
        f"{prefix}/database-credentials",
        f"{prefix}/redis-auth-token",
        f"{prefix}/encryption-keys",
    }
    for secret in secrets.values():
        generated = secret["Properties"]["GenerateSecretString"]
        assert generated["GenerateStringKey"] in ("client_secret", "password", "auth_token", "jwt_secret")
        assert "SecretString" not in secret["Properties"]

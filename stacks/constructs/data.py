"""Data: RDS PostgreSQL (+ RDS Proxy for the Lambdas where cdk.json ``rds_proxy``), ElastiCache Redis,
the DynamoDB shard ledger."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_rds as rds
from constructs import Construct

from stacks.config import DATABASE_NAME, DATABASE_PORT, REDIS_PORT
from tagcompliance.audits.ledger import TTL_ATTRIBUTE, _LedgerRow

from .foundation import Foundation

POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17_9  # auto_minor_version_upgrade keeps it patched
REDIS_ENGINE_VERSION = "7.1"


def ledger_key_names() -> tuple[str, str]:
    """(hash key, range key) attribute names of the ledger's pynamodb model: the one schema."""
    hash_key = _LedgerRow._hash_key_attribute()
    range_key = _LedgerRow._range_key_attribute()
    return hash_key.attr_name, range_key.attr_name


class Data(Construct):
    def __init__(self, scope: Construct, construct_id: str, base: Foundation) -> None:
        super().__init__(scope, construct_id)
        config, network, secrets, budget = base.config, base.network, base.secrets, base.budget
        env = config.env
        vpc = network.vpc

        # --- PostgreSQL -----------------------------------------------------------------------
        self.database_security_group = ec2.SecurityGroup(
            self, "DatabaseSecurityGroup", vpc=vpc, description="RDS PostgreSQL", allow_all_outbound=False
        )
        self.database = rds.DatabaseInstance(
            self,
            "Postgres",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            instance_type=ec2.InstanceType(env.db_instance_type),
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[self.database_security_group],
            credentials=rds.Credentials.from_secret(secrets.database),
            database_name=DATABASE_NAME,
            port=DATABASE_PORT,
            multi_az=env.multi_az,
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=env.db_allocated_storage_gb,
            max_allocated_storage=env.db_max_allocated_storage_gb,
            backup_retention=Duration.days(env.db_backup_retention_days),
            preferred_backup_window="03:00-04:00",
            preferred_maintenance_window="sun:04:30-sun:05:30",
            delete_automated_backups=not config.is_prod,
            deletion_protection=env.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if env.deletion_protection else RemovalPolicy.DESTROY,
            auto_minor_version_upgrade=True,
            publicly_accessible=False,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
            copy_tags_to_snapshot=True,
        )
        # The Lambdas' path to PostgreSQL: RDS Proxy (pooling, faster failover) or the instance itself.
        self.proxy: rds.DatabaseProxy | None = None
        self.lambda_database_host = self.database.db_instance_endpoint_address
        self.lambda_security_group: ec2.ISecurityGroup = self.database_security_group
        if env.rds_proxy:
            proxy_security_group = ec2.SecurityGroup(
                self, "ProxySecurityGroup", vpc=vpc, description="RDS Proxy in front of PostgreSQL (Lambdas)"
            )
            percent = budget.proxy_max_connections_percent
            self.proxy = self.database.add_proxy(
                "Proxy",
                secrets=[secrets.database],
                vpc=vpc,
                vpc_subnets=network.data_subnets,
                security_groups=[proxy_security_group],
                require_tls=True,
                iam_auth=False,
                debug_logging=False,
                max_connections_percent=percent,
                max_idle_connections_percent=max(1, percent // 2),
            )
            self.database.connections.allow_default_port_from(proxy_security_group, "RDS Proxy")
            self.lambda_database_host = self.proxy.endpoint
            self.lambda_security_group = proxy_security_group

        # --- Redis ----------------------------------------------------------------------------
        self.redis_security_group = ec2.SecurityGroup(
            self, "RedisSecurityGroup", vpc=vpc, description="ElastiCache Redis", allow_all_outbound=False
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description=f"{config.prefix} Redis (isolated data subnets)",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
            cache_subnet_group_name=f"{config.prefix}-redis",
        )
        replicas = env.redis_replicas
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_id=f"{config.prefix}-redis",
            replication_group_description=f"{config.prefix} violation and policy cache",
            engine="redis",
            engine_version=REDIS_ENGINE_VERSION,
            cache_node_type=env.redis_node_type,
            num_cache_clusters=1 + replicas,
            automatic_failover_enabled=replicas > 0,
            multi_az_enabled=env.multi_az,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=secrets.redis.secret_value_from_json("auth_token").unsafe_unwrap(),
            port=REDIS_PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.redis_security_group.security_group_id],
            snapshot_retention_limit=7 if config.is_prod else 1,
            preferred_maintenance_window="sun:05:30-sun:06:30",
            snapshot_window="02:00-03:00",
            auto_minor_version_upgrade=True,
        )
        self.redis.node.add_dependency(subnet_group)

        # --- The shard ledger ------------------------------------------------------------------
        hash_key, range_key = ledger_key_names()
        self.ledger = dynamodb.Table(
            self,
            "ShardLedger",
            partition_key=dynamodb.Attribute(name=hash_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=range_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=config.data_removal_policy,
        )

    @property
    def redis_host(self) -> str:
        return self.redis.attr_primary_end_point_address

    @property
    def redis_port(self) -> str:
        return self.redis.attr_primary_end_point_port

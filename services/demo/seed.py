"""Create the demo estate in a moto server, resource by resource, with exactly the defined tags.

``seed_estate`` creates the supporting pieces each type needs (a VPC per named estate VPC with
subnets in two availability zones, an IAM role, a Lambda zip, an ECS task definition, Elastic IPs,
DB subnet groups), then every resource in its region, then checks with each type's listing API
from the registry that the account holds exactly the estate: every resource, nothing else.

Never-tagged resources are created without any tag argument. The account must start empty of
registry resources; for EC2 that needs moto's default AMIs off (``MOTO_EC2_LOAD_DEFAULT_AMIS=false``),
because moto gives them snapshots the account appears to own.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS, ArnContext, ResourceType

from .estate import Estate, EstateResource

ACCOUNT_ID = "123456789012"  # moto's default account
PARTITION = "aws"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Any id works: moto validates AMIs only with MOTO_ENABLE_AMI_VALIDATION set.
_AMI_ID = "ami-0d0e0a0d0e0a0d0e0"
_LAMBDA_ROLE = "demo-service-role"
_TASK_FAMILY = "demo-app"
_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "eks.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


class SeedError(RuntimeError):
    """The estate could not be created, or moto does not hold exactly the estate afterwards."""


class DemoClients:
    """boto3 clients for the demo server with the demo's dummy credentials, one per (service, region).

    One session and a cache: building a client loads its service model, which costs far more than
    a request to moto.
    """

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()  # sessions are not safe to build clients from concurrently

    def __call__(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"max_attempts": 2}),
                    **CREDENTIALS,
                )
            return self._clients[(service, region)]


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@dataclass(frozen=True)
class _Network:
    vpc_id: str
    subnet_ids: tuple[str, str]  # one per availability zone: ELBv2, RDS and EKS need two


@dataclass
class _RegionSeeder:
    """Creates one region's resources; supporting pieces are made on first use and reused."""

    region: str
    clients: DemoClients
    role_arn: str
    lambda_zip: bytes
    _networks: dict[str, _Network] = field(default_factory=dict)
    _db_subnet_groups: dict[str, str] = field(default_factory=dict)
    _task_definition: str | None = None
    _snapshot_source: str | None = None

    def client(self, service: str) -> Any:
        return self.clients(service, self.region)

    def arn(self, resource_type: str, resource_id: str) -> str:
        return REGISTRY[resource_type].build_arn(PARTITION, self.region, ACCOUNT_ID, resource_id)

    def network(self, vpc_name: str | None) -> _Network:
        if vpc_name is None:
            raise SeedError(f"a resource in {self.region} needs a VPC but the estate names none")
        if vpc_name not in self._networks:
            ec2 = self.client("ec2")
            octet = 10 + len(self._networks)
            vpc_id = ec2.create_vpc(
                CidrBlock=f"10.{octet}.0.0/16",
                TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": vpc_name}]}],
            )["Vpc"]["VpcId"]
            subnets = tuple(
                ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=f"10.{octet}.{index}.0/24",
                    AvailabilityZone=f"{self.region}{zone}",
                )["Subnet"]["SubnetId"]
                for index, zone in enumerate("ab")
            )
            self._networks[vpc_name] = _Network(vpc_id, (subnets[0], subnets[1]))
        return self._networks[vpc_name]

    def db_subnet_group(self, vpc_name: str | None) -> str:
        network = self.network(vpc_name)
        if network.vpc_id not in self._db_subnet_groups:
            name = f"demo-{vpc_name}"
            self.client("rds").create_db_subnet_group(
                DBSubnetGroupName=name,
                DBSubnetGroupDescription=f"{vpc_name} databases",
                SubnetIds=list(network.subnet_ids),
            )
            self._db_subnet_groups[network.vpc_id] = name
        return self._db_subnet_groups[network.vpc_id]

    def task_definition(self) -> str:
        if self._task_definition is None:
            self._task_definition = self.client("ecs").register_task_definition(
                family=_TASK_FAMILY, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 256}]
            )["taskDefinition"]["taskDefinitionArn"]
        return self._task_definition

    def snapshot_source(self) -> str:
        """A scratch volume to snapshot; deleted once the region is seeded (snapshots outlive it)."""
        if self._snapshot_source is None:
            self._snapshot_source = self.client("ec2").create_volume(
                AvailabilityZone=f"{self.region}a", Size=8
            )["VolumeId"]
        return self._snapshot_source

    def seed(self, resources: list[EstateResource], estate: Estate) -> dict[str, str]:
        arns: dict[str, str] = {}
        for resource in resources:
            try:
                arns[resource.key] = _CREATORS[resource.resource_type](self, resource, estate)
            except Exception as error:
                raise SeedError(f"could not create {resource.key}: {error}") from error
        if self._snapshot_source is not None:
            self.client("ec2").delete_volume(VolumeId=self._snapshot_source)
        return arns


def _tag_arg(
    param: str, resource: EstateResource, shape: Callable[[dict[str, str]], Any] = _tag_list
) -> dict[str, Any]:
    """``{param: shape(tags)}``, or nothing for a never-tagged resource: no tag argument at all."""
    return {} if resource.tags is None else {param: shape(resource.tags)}


def _ec2_tags(resource: EstateResource, ec2_type: str) -> dict[str, Any]:
    return _tag_arg(
        "TagSpecifications", resource, lambda tags: [{"ResourceType": ec2_type, "Tags": _tag_list(tags)}]
    )


def _ecs_tags(resource: EstateResource) -> dict[str, Any]:
    return _tag_arg("tags", resource, lambda tags: [{"key": k, "value": v} for k, v in tags.items()])


def _instance(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    instance = seeder.client("ec2").run_instances(
        ImageId=_AMI_ID,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=seeder.network(resource.vpc).subnet_ids[0],
        # No root EBS volume: it would be a volume the estate does not define.
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "NoDevice": ""}],
        **_ec2_tags(resource, "instance"),
    )["Instances"][0]
    return seeder.arn(resource.resource_type, instance["InstanceId"])


def _volume(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    volume = seeder.client("ec2").create_volume(
        AvailabilityZone=f"{resource.region}a", Size=50, VolumeType="gp3", **_ec2_tags(resource, "volume")
    )
    return seeder.arn(resource.resource_type, volume["VolumeId"])


def _snapshot(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    snapshot = seeder.client("ec2").create_snapshot(
        VolumeId=seeder.snapshot_source(), Description=resource.name, **_ec2_tags(resource, "snapshot")
    )
    return seeder.arn(resource.resource_type, snapshot["SnapshotId"])


def _nat_gateway(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    ec2 = seeder.client("ec2")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = ec2.create_nat_gateway(
        SubnetId=seeder.network(resource.vpc).subnet_ids[0],
        AllocationId=allocation,
        **_ec2_tags(resource, "natgateway"),
    )["NatGateway"]
    return seeder.arn(resource.resource_type, gateway["NatGatewayId"])


# The one login of every demo database (moto stores it and checks nothing).
_DEMO_LOGIN = {"MasterUsername": "demo", "MasterUserPassword": "demo-password-1"}


def _rds_db(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("rds").create_db_instance(
        DBInstanceIdentifier=resource.name,
        DBInstanceClass="db.t3.medium",
        Engine="postgres",
        **_DEMO_LOGIN,
        AllocatedStorage=20,
        DBSubnetGroupName=seeder.db_subnet_group(resource.vpc),
        **_tag_arg("Tags", resource),
    )["DBInstance"]["DBInstanceArn"]


def _rds_cluster(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("rds").create_db_cluster(
        DBClusterIdentifier=resource.name,
        Engine="aurora-postgresql",
        **_DEMO_LOGIN,
        **_tag_arg("Tags", resource),
    )["DBCluster"]["DBClusterArn"]


def _bucket(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    s3 = seeder.client("s3")
    location = (
        {}
        if resource.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": resource.region}}
    )
    s3.create_bucket(Bucket=resource.name, **location)
    if resource.tags is not None:
        s3.put_bucket_tagging(Bucket=resource.name, Tagging={"TagSet": _tag_list(resource.tags)})
    return seeder.arn(resource.resource_type, resource.name)


def _function(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("lambda").create_function(
        FunctionName=resource.name,
        Runtime="python3.12",
        Role=seeder.role_arn,
        Handler="handler.handler",
        Code={"ZipFile": seeder.lambda_zip},
        **_tag_arg("Tags", resource, dict),
    )["FunctionArn"]


def _ecs_cluster(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("ecs").create_cluster(clusterName=resource.name, **_ecs_tags(resource))["cluster"][
        "clusterArn"
    ]


def _ecs_service(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    if resource.parent is None:
        raise SeedError(f"ECS service {resource.key} has no parent cluster")
    return seeder.client("ecs").create_service(
        cluster=estate.get(resource.parent).name,
        serviceName=resource.name,
        taskDefinition=seeder.task_definition(),
        desiredCount=0,
        **_ecs_tags(resource),
    )["service"]["serviceArn"]


def _eks_cluster(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("eks").create_cluster(
        name=resource.name,
        roleArn=seeder.role_arn,
        resourcesVpcConfig={"subnetIds": list(seeder.network(resource.vpc).subnet_ids)},
        **_tag_arg("tags", resource, dict),
    )["cluster"]["arn"]


def _table(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("dynamodb").create_table(
        TableName=resource.name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        **_tag_arg("Tags", resource),
    )["TableDescription"]["TableArn"]


def _cache_cluster(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    cluster = seeder.client("elasticache").create_cache_cluster(
        CacheClusterId=resource.name,
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheNodes=1,
        **_tag_arg("Tags", resource),
    )["CacheCluster"]
    return cluster.get("ARN") or seeder.arn(resource.resource_type, resource.name)


def _file_system(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("efs").create_file_system(
        CreationToken=resource.key,
        PerformanceMode="generalPurpose",
        **_tag_arg("Tags", resource),
    )["FileSystemArn"]


def _domain(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("opensearch").create_domain(
        DomainName=resource.name,
        EngineVersion="OpenSearch_2.11",
        **_tag_arg("TagList", resource),
    )["DomainStatus"]["ARN"]


def _topic(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("sns").create_topic(Name=resource.name, **_tag_arg("Tags", resource))["TopicArn"]


def _queue(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    seeder.client("sqs").create_queue(QueueName=resource.name, **_tag_arg("tags", resource, dict))
    return seeder.arn(resource.resource_type, resource.name)


def _load_balancer(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("elbv2").create_load_balancer(
        Name=resource.name,
        Subnets=list(seeder.network(resource.vpc).subnet_ids),
        Scheme="internal",
        Type="application",
        **_tag_arg("Tags", resource),
    )["LoadBalancers"][0]["LoadBalancerArn"]


def _stream(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    kinesis = seeder.client("kinesis")
    kinesis.create_stream(StreamName=resource.name, ShardCount=1)
    if resource.tags is not None:  # AddTagsToStream takes at most 10 tags a call
        items = list(resource.tags.items())
        for start in range(0, len(items), 10):
            kinesis.add_tags_to_stream(StreamName=resource.name, Tags=dict(items[start : start + 10]))
    return seeder.arn(resource.resource_type, resource.name)


def _secret(seeder: _RegionSeeder, resource: EstateResource, estate: Estate) -> str:
    return seeder.client("secretsmanager").create_secret(
        Name=resource.name,
        SecretString="demo-secret-value",
        **_tag_arg("Tags", resource),
    )["ARN"]


_Creator = Callable[[_RegionSeeder, EstateResource, Estate], str]
_CREATORS: dict[str, _Creator] = {
    "ec2:instance": _instance,
    "ec2:volume": _volume,
    "ec2:snapshot": _snapshot,
    "ec2:natgateway": _nat_gateway,
    "rds:db": _rds_db,
    "rds:cluster": _rds_cluster,
    "s3:bucket": _bucket,
    "lambda:function": _function,
    "ecs:cluster": _ecs_cluster,
    "ecs:service": _ecs_service,
    "eks:cluster": _eks_cluster,
    "dynamodb:table": _table,
    "elasticache:cluster": _cache_cluster,
    "elasticfilesystem:file-system": _file_system,
    "opensearch:domain": _domain,
    "sns:topic": _topic,
    "sqs:queue": _queue,
    "elasticloadbalancing:loadbalancer": _load_balancer,
    "kinesis:stream": _stream,
    "secretsmanager:secret": _secret,
}
if set(_CREATORS) != set(RESOURCE_TYPE_IDS):
    raise RuntimeError("services.demo.seed needs a creator for every registry type")


def seed_estate(estate: Estate, endpoint_url: str, clients: DemoClients | None = None) -> dict[str, str]:
    """Create every estate resource in the moto server at ``endpoint_url``; returns key -> ARN.

    Resources are created in the estate's order, so ECS clusters exist before their services.
    (Seeding regions in parallel gains nothing: moto serves from the same process and GIL.)
    """
    clients = clients or DemoClients(endpoint_url)
    role_arn = clients("iam", "us-east-1").create_role(
        RoleName=_LAMBDA_ROLE, AssumeRolePolicyDocument=_TRUST_POLICY
    )["Role"]["Arn"]
    lambda_zip = _lambda_zip()
    arns: dict[str, str] = {}
    for region, resources in estate.by_region().items():
        arns.update(_RegionSeeder(region, clients, role_arn, lambda_zip).seed(resources, estate))
    verify_seeded(estate, arns, clients)
    return arns


# --- verification --------------------------------------------------------------------------


def _pages(client: Any, operation: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if client.can_paginate(operation):
        yield from client.get_paginator(operation).paginate(**params)
    else:
        yield getattr(client, operation)(**params)


def _listed_arns(row: ResourceType, client: Any, region: str, parent_arns: set[str]) -> set[str]:
    """ARNs the type's listing operation (as the registry declares it) returns in ``region``."""
    listing = row.listing
    context = ArnContext(PARTITION, region, ACCOUNT_ID)
    params = dict(listing.params or {})
    if listing.region_param:
        params[listing.region_param] = region
    calls = (
        [params]
        if listing.parent is None
        else [{**params, str(listing.parent_param): parent} for parent in sorted(parent_arns)]
    )
    return {
        listing.arn(item, context)
        for call in calls
        for page in _pages(client, listing.operation, call)
        for item in listing.items(page)
        if listing.include(item)
    }


def verify_seeded(estate: Estate, arns: dict[str, str], clients: DemoClients) -> None:
    """Raise SeedError unless each (region, type) lists exactly the estate's ARNs."""
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for resource in estate.resources:
        expected[(resource.region, resource.resource_type)].add(arns[resource.key])
    problems: list[str] = []
    for region in estate.regions:
        listed: dict[str, set[str]] = {}
        for type_id in RESOURCE_TYPE_IDS:  # registry order lists parents (ECS clusters) first
            row = REGISTRY[type_id]
            client = clients(row.listing.client, region)
            parents = listed.get(row.listing.parent, set()) if row.listing.parent else set()
            listed[type_id] = _listed_arns(row, client, region, parents)
            missing = expected[(region, type_id)] - listed[type_id]
            unexpected = listed[type_id] - expected[(region, type_id)]
            if missing or unexpected:
                problems.append(
                    f"{type_id} in {region}: {len(missing)} missing {sorted(missing)[:3]}, "
                    f"{len(unexpected)} not in the estate {sorted(unexpected)[:3]}"
                )
    if problems:
        raise SeedError(
            "moto does not hold exactly the demo estate (is MOTO_EC2_LOAD_DEFAULT_AMIS=false set and the "
            "server fresh?): " + "; ".join(problems)
        )

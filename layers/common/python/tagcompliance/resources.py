"""The resource registry: every supported AWS resource type, declared once.

One row per type drives scanning (how to enumerate it and where its tags come from), ARN parsing
and validation, the Resource Groups Tagging API filter, the Cloud Custodian resource name, the
Cost Explorer service and the AWS Organizations tag-policy name. Adding a type is adding a row.

It stays one module over the size limit on purpose: the registry is data, read best as one table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_ACCOUNT = re.compile(r"^\d{12}$")

TagMap = dict[str, str]
Item = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ArnContext:
    """What an enumerator needs to build an ARN that the listing API does not return."""

    partition: str
    region: str
    account_id: str


@dataclass(frozen=True, slots=True)
class Listing:
    """How to enumerate one type with its own service API, so never-tagged resources are found.

    ``operation`` is a boto3 paginator name; ``items`` picks the records out of one page;
    ``arn`` builds the ARN from a record. ``tags`` reads tags from the record when the listing
    returns them (then no other tag source is needed). ``parent`` names a registry type whose
    resources must be listed first (ECS services live inside clusters); its ARN is passed to the
    operation as ``parent_param``.
    """

    client: str
    operation: str
    items: Callable[[Item], Iterable[Item]]
    arn: Callable[[Item, ArnContext], str]
    name: Callable[[Item], str | None] = lambda item: None
    tags: Callable[[Item], TagMap] | None = None
    vpc_id: Callable[[Item], str | None] = lambda item: None
    params: Mapping[str, Any] | None = None
    include: Callable[[Item], bool] = lambda item: True
    parent: str | None = None
    parent_param: str | None = None
    region_param: str | None = None


@dataclass(frozen=True, slots=True)
class TagReader:
    """How to read one resource's tags with a per-resource call (the fallback tag source)."""

    client: str
    read: Callable[[Any, str, str], TagMap]  # (boto3 client, arn, resource id) -> tags


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One row of the registry."""

    id: str  # our identifier, e.g. "ec2:instance"
    description: str
    arn_service: str  # the service field of the ARN ("es" for OpenSearch)
    arn_prefix: str | None  # resource-type word at the start of the ARN resource ("instance")
    arn_separator: str  # "/" or ":" between that word and the id; "" when there is no word
    id_pattern: str  # regex the id part must match
    listing: Listing
    tagging_api_filter: str | None  # ResourceTypeFilters value, None if the Tagging API lacks it
    tag_reader: TagReader | None
    custodian_resource: str
    cost_explorer_service: str
    tag_policy_name: str  # the type's name in AWS Organizations tag policies' enforced_for
    global_arn: bool = False  # ARN has empty region and account (S3)
    # Writes the resource's WHOLE tag set with the type's own API (client: the tag_reader's), for a
    # type the Tagging API cannot write; None: TagResources / UntagResources write it.
    tag_set_writer: Callable[[Any, str, str, TagMap], None] | None = None

    @property
    def service(self) -> str:
        return self.id.split(":", 1)[0]

    def build_arn(self, partition: str, region: str, account_id: str, resource_id: str) -> str:
        if self.global_arn:
            region = account_id = ""
        head = f"{self.arn_prefix}{self.arn_separator}" if self.arn_prefix else ""
        return f"arn:{partition}:{self.arn_service}:{region}:{account_id}:{head}{resource_id}"


# --- helpers used by the rows --------------------------------------------------------------


def _kv_tags(field: str, key: str = "Key", value: str = "Value") -> Callable[[Item], TagMap]:
    def read(item: Item) -> TagMap:
        return {entry[key]: entry.get(value, "") for entry in item.get(field) or []}

    return read


def _tag_named(field: str = "Tags") -> Callable[[Item], str | None]:
    read = _kv_tags(field)
    return lambda item: read(item).get("Name")


def _field(name: str) -> Callable[[Item], Any]:
    return lambda item: item.get(name)


def _list(name: str) -> Callable[[Item], Iterable[Item]]:
    return lambda page: page.get(name) or []


def _wrapped(name: str, key: str) -> Callable[[Item], Iterable[Item]]:
    """Turn a page's list of strings into records ``{key: value}``."""
    return lambda page: ({key: value} for value in page.get(name) or [])


def _built(row_id: str, field: str) -> Callable[[Item, ArnContext], str]:
    """ARN built from the row's own pattern and one record field (the registry is the source)."""

    def build(item: Item, ctx: ArnContext) -> str:
        return REGISTRY[row_id].build_arn(ctx.partition, ctx.region, ctx.account_id, str(item[field]))

    return build


def _ec2_instances(page: Item) -> Iterator[Item]:
    for reservation in page.get("Reservations") or []:
        yield from reservation.get("Instances") or []


def _sqs_arn(item: Item, ctx: ArnContext) -> str:
    # Queue URLs end with /<account>/<name> on AWS, LocalStack and moto alike.
    account_id, name = item["QueueUrl"].rstrip("/").split("/")[-2:]
    return f"arn:{ctx.partition}:sqs:{ctx.region}:{account_id}:{name}"


def _last_segment(field: str, separator: str) -> Callable[[Item], str | None]:
    return lambda item: str(item[field]).rsplit(separator, 1)[-1] if item.get(field) else None


def _kv_list_reader(method: str, arn_param: str, field: str, key: str = "Key", value: str = "Value"):
    to_map = _kv_tags(field, key, value)

    def read(client: Any, arn: str, resource_id: str) -> TagMap:
        return to_map(getattr(client, method)(**{arn_param: arn}))

    return read


def _dict_reader(method: str, arn_param: str, field: str):
    def read(client: Any, arn: str, resource_id: str) -> TagMap:
        return dict(getattr(client, method)(**{arn_param: arn}).get(field) or {})

    return read


def _s3_tags(client: Any, arn: str, bucket: str) -> TagMap:
    try:
        response = client.get_bucket_tagging(Bucket=bucket)
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchTagSet":
            return {}
        raise
    return _kv_tags("TagSet")(response)


def _s3_put_tags(client: Any, arn: str, bucket: str, tags: TagMap) -> None:
    # PutBucketTagging replaces the whole set, and an empty TagSet is refused: delete instead.
    if tags:
        client.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
        )
    else:
        client.delete_bucket_tagging(Bucket=bucket)


def _sqs_tags(client: Any, arn: str, name: str) -> TagMap:
    url = client.get_queue_url(QueueName=name)["QueueUrl"]
    return dict(client.list_queue_tags(QueueUrl=url).get("Tags") or {})


def _kinesis_tags(client: Any, arn: str, name: str) -> TagMap:
    tags: TagMap = {}
    kwargs: dict[str, Any] = {"StreamName": name}
    while True:
        page = client.list_tags_for_stream(**kwargs)
        batch = _kv_tags("Tags")(page)
        tags.update(batch)
        if not page.get("HasMoreTags") or not batch:
            return tags
        kwargs["ExclusiveStartTagKey"] = list(batch)[-1]


def _elbv2_tags(client: Any, arn: str, resource_id: str) -> TagMap:
    descriptions = client.describe_tags(ResourceArns=[arn]).get("TagDescriptions") or []
    return _kv_tags("Tags")(descriptions[0]) if descriptions else {}


def _row(**fields: Any) -> ResourceType:
    return ResourceType(**fields)


_ROWS: tuple[ResourceType, ...] = (
    _row(
        id="ec2:instance",
        description="EC2 instances (terminated ones excluded)",
        arn_service="ec2",
        arn_prefix="instance",
        arn_separator="/",
        id_pattern=r"i-[0-9a-f]{8,17}",
        listing=Listing(
            client="ec2",
            operation="describe_instances",
            items=_ec2_instances,
            arn=_built("ec2:instance", "InstanceId"),
            name=_tag_named(),
            tags=_kv_tags("Tags"),
            vpc_id=_field("VpcId"),
            include=lambda item: (item.get("State") or {}).get("Name") not in ("terminated", "shutting-down"),
        ),
        tagging_api_filter="ec2:instance",
        tag_reader=None,
        custodian_resource="ec2",
        cost_explorer_service="Amazon Elastic Compute Cloud - Compute",
        tag_policy_name="ec2:instance",
    ),
    _row(
        id="ec2:volume",
        description="EBS volumes",
        arn_service="ec2",
        arn_prefix="volume",
        arn_separator="/",
        id_pattern=r"vol-[0-9a-f]{8,17}",
        listing=Listing(
            client="ec2",
            operation="describe_volumes",
            items=_list("Volumes"),
            arn=_built("ec2:volume", "VolumeId"),
            name=_tag_named(),
            tags=_kv_tags("Tags"),
        ),
        tagging_api_filter="ec2:volume",
        tag_reader=None,
        custodian_resource="ebs",
        cost_explorer_service="EC2 - Other",
        tag_policy_name="ec2:volume",
    ),
    _row(
        id="ec2:snapshot",
        description="EBS snapshots owned by the account",
        arn_service="ec2",
        arn_prefix="snapshot",
        arn_separator="/",
        id_pattern=r"snap-[0-9a-f]{8,17}",
        listing=Listing(
            client="ec2",
            operation="describe_snapshots",
            items=_list("Snapshots"),
            arn=_built("ec2:snapshot", "SnapshotId"),
            name=_tag_named(),
            tags=_kv_tags("Tags"),
            params={"OwnerIds": ["self"]},
        ),
        tagging_api_filter="ec2:snapshot",
        tag_reader=None,
        custodian_resource="ebs-snapshot",
        cost_explorer_service="EC2 - Other",
        tag_policy_name="ec2:snapshot",
    ),
    _row(
        id="ec2:natgateway",
        description="NAT gateways (deleted ones excluded)",
        arn_service="ec2",
        arn_prefix="natgateway",
        arn_separator="/",
        id_pattern=r"nat-[0-9a-f]{8,17}",
        listing=Listing(
            client="ec2",
            operation="describe_nat_gateways",
            items=_list("NatGateways"),
            arn=_built("ec2:natgateway", "NatGatewayId"),
            name=_tag_named(),
            tags=_kv_tags("Tags"),
            vpc_id=_field("VpcId"),
            include=lambda item: item.get("State") not in ("deleted", "deleting"),
        ),
        tagging_api_filter="ec2:natgateway",
        tag_reader=None,
        custodian_resource="nat-gateway",
        cost_explorer_service="EC2 - Other",
        tag_policy_name="ec2:natgateway",
    ),
    _row(
        id="rds:db",
        description="RDS database instances",
        arn_service="rds",
        arn_prefix="db",
        arn_separator=":",
        id_pattern=r"[a-zA-Z][a-zA-Z0-9-]{0,62}",
        listing=Listing(
            client="rds",
            operation="describe_db_instances",
            items=_list("DBInstances"),
            arn=lambda item, ctx: item["DBInstanceArn"],
            name=_field("DBInstanceIdentifier"),
            tags=_kv_tags("TagList"),
            vpc_id=lambda item: (item.get("DBSubnetGroup") or {}).get("VpcId"),
        ),
        tagging_api_filter="rds:db",
        tag_reader=None,
        custodian_resource="rds",
        cost_explorer_service="Amazon Relational Database Service",
        tag_policy_name="rds:db",
    ),
    _row(
        id="rds:cluster",
        description="RDS / Aurora database clusters",
        arn_service="rds",
        arn_prefix="cluster",
        arn_separator=":",
        id_pattern=r"[a-zA-Z][a-zA-Z0-9-]{0,62}",
        listing=Listing(
            client="rds",
            operation="describe_db_clusters",
            items=_list("DBClusters"),
            arn=lambda item, ctx: item["DBClusterArn"],
            name=_field("DBClusterIdentifier"),
            tags=_kv_tags("TagList"),
        ),
        tagging_api_filter="rds:cluster",
        tag_reader=None,
        custodian_resource="rds-cluster",
        cost_explorer_service="Amazon Relational Database Service",
        tag_policy_name="rds:cluster",
    ),
    _row(
        id="s3:bucket",
        description="S3 buckets, each in the region it lives in",
        arn_service="s3",
        arn_prefix=None,
        arn_separator="",
        id_pattern=r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]",
        listing=Listing(
            client="s3",
            operation="list_buckets",
            items=_list("Buckets"),
            arn=_built("s3:bucket", "Name"),
            name=_field("Name"),
            region_param="BucketRegion",
        ),
        tagging_api_filter="s3:bucket",
        tag_reader=TagReader("s3", _s3_tags),
        # The Tagging API's TagResources on a bucket replaces its tag set (the S3 API underneath
        # does): read, merge and write the whole set with the S3 API instead.
        tag_set_writer=_s3_put_tags,
        custodian_resource="s3",
        cost_explorer_service="Amazon Simple Storage Service",
        tag_policy_name="s3:bucket",
        global_arn=True,
    ),
    _row(
        id="lambda:function",
        description="Lambda functions",
        arn_service="lambda",
        arn_prefix="function",
        arn_separator=":",
        id_pattern=r"[a-zA-Z0-9_-]{1,140}(:(\$LATEST|[a-zA-Z0-9_-]+))?",
        listing=Listing(
            client="lambda",
            operation="list_functions",
            items=_list("Functions"),
            arn=lambda item, ctx: item["FunctionArn"],
            name=_field("FunctionName"),
            vpc_id=lambda item: (item.get("VpcConfig") or {}).get("VpcId") or None,
        ),
        tagging_api_filter="lambda:function",
        tag_reader=TagReader("lambda", _dict_reader("list_tags", "Resource", "Tags")),
        custodian_resource="lambda",
        cost_explorer_service="AWS Lambda",
        tag_policy_name="lambda:function",
    ),
    _row(
        id="ecs:cluster",
        description="ECS clusters",
        arn_service="ecs",
        arn_prefix="cluster",
        arn_separator="/",
        id_pattern=r"[a-zA-Z0-9_-]{1,255}",
        listing=Listing(
            client="ecs",
            operation="list_clusters",
            items=_wrapped("clusterArns", "arn"),
            arn=lambda item, ctx: item["arn"],
            name=_last_segment("arn", "/"),
        ),
        tagging_api_filter="ecs:cluster",
        tag_reader=TagReader(
            "ecs", _kv_list_reader("list_tags_for_resource", "resourceArn", "tags", "key", "value")
        ),
        custodian_resource="ecs",
        cost_explorer_service="Amazon Elastic Container Service",
        tag_policy_name="ecs:cluster",
    ),
    _row(
        id="ecs:service",
        description="ECS services, in every cluster",
        arn_service="ecs",
        arn_prefix="service",
        arn_separator="/",
        id_pattern=r"([a-zA-Z0-9_-]{1,255}/)?[a-zA-Z0-9_-]{1,255}",
        listing=Listing(
            client="ecs",
            operation="list_services",
            items=_wrapped("serviceArns", "arn"),
            arn=lambda item, ctx: item["arn"],
            name=_last_segment("arn", "/"),
            parent="ecs:cluster",
            parent_param="cluster",
        ),
        tagging_api_filter="ecs:service",
        tag_reader=TagReader(
            "ecs", _kv_list_reader("list_tags_for_resource", "resourceArn", "tags", "key", "value")
        ),
        custodian_resource="ecs-service",
        cost_explorer_service="Amazon Elastic Container Service",
        tag_policy_name="ecs:service",
    ),
    _row(
        id="eks:cluster",
        description="EKS clusters",
        arn_service="eks",
        arn_prefix="cluster",
        arn_separator="/",
        id_pattern=r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}",
        listing=Listing(
            client="eks",
            operation="list_clusters",
            items=_wrapped("clusters", "name"),
            arn=_built("eks:cluster", "name"),
            name=_field("name"),
        ),
        tagging_api_filter="eks:cluster",
        tag_reader=TagReader("eks", _dict_reader("list_tags_for_resource", "resourceArn", "tags")),
        custodian_resource="eks",
        cost_explorer_service="Amazon Elastic Container Service for Kubernetes",
        tag_policy_name="eks:cluster",
    ),
    _row(
        id="dynamodb:table",
        description="DynamoDB tables",
        arn_service="dynamodb",
        arn_prefix="table",
        arn_separator="/",
        id_pattern=r"[a-zA-Z0-9_.-]{3,255}",
        listing=Listing(
            client="dynamodb",
            operation="list_tables",
            items=_wrapped("TableNames", "name"),
            arn=_built("dynamodb:table", "name"),
            name=_field("name"),
        ),
        tagging_api_filter="dynamodb:table",
        tag_reader=TagReader("dynamodb", _kv_list_reader("list_tags_of_resource", "ResourceArn", "Tags")),
        custodian_resource="dynamodb-table",
        cost_explorer_service="Amazon DynamoDB",
        tag_policy_name="dynamodb:table",
    ),
    _row(
        id="elasticache:cluster",
        description="ElastiCache cache clusters",
        arn_service="elasticache",
        arn_prefix="cluster",
        arn_separator=":",
        id_pattern=r"[a-zA-Z][a-zA-Z0-9-]{0,49}",
        listing=Listing(
            client="elasticache",
            operation="describe_cache_clusters",
            items=_list("CacheClusters"),
            arn=lambda item, ctx: (
                item.get("ARN")
                or REGISTRY["elasticache:cluster"].build_arn(
                    ctx.partition, ctx.region, ctx.account_id, item["CacheClusterId"]
                )
            ),
            name=_field("CacheClusterId"),
        ),
        tagging_api_filter="elasticache:cluster",
        tag_reader=TagReader(
            "elasticache", _kv_list_reader("list_tags_for_resource", "ResourceName", "TagList")
        ),
        custodian_resource="cache-cluster",
        cost_explorer_service="Amazon ElastiCache",
        tag_policy_name="elasticache:cluster",
    ),
    _row(
        id="elasticfilesystem:file-system",
        description="EFS file systems",
        arn_service="elasticfilesystem",
        arn_prefix="file-system",
        arn_separator="/",
        id_pattern=r"fs-[0-9a-f]{8,40}",
        listing=Listing(
            client="efs",
            operation="describe_file_systems",
            items=_list("FileSystems"),
            arn=lambda item, ctx: (
                item.get("FileSystemArn")
                or REGISTRY["elasticfilesystem:file-system"].build_arn(
                    ctx.partition, ctx.region, ctx.account_id, item["FileSystemId"]
                )
            ),
            name=lambda item: item.get("Name") or None,
            tags=_kv_tags("Tags"),
            params={"MaxItems": 100},  # AWS's largest page (its default too; moto's default is 10)
        ),
        tagging_api_filter="elasticfilesystem:file-system",
        tag_reader=None,
        custodian_resource="efs",
        cost_explorer_service="Amazon Elastic File System",
        tag_policy_name="elasticfilesystem:file-system",
    ),
    _row(
        id="opensearch:domain",
        description="OpenSearch Service (and Elasticsearch) domains",
        arn_service="es",
        arn_prefix="domain",
        arn_separator="/",
        id_pattern=r"[a-z][a-z0-9-]{2,27}",
        listing=Listing(
            client="opensearch",
            operation="list_domain_names",
            items=_list("DomainNames"),
            arn=_built("opensearch:domain", "DomainName"),
            name=_field("DomainName"),
        ),
        tagging_api_filter="es:domain",
        tag_reader=TagReader("opensearch", _kv_list_reader("list_tags", "ARN", "TagList")),
        custodian_resource="elasticsearch",
        cost_explorer_service="Amazon OpenSearch Service",
        tag_policy_name="es:domain",
    ),
    _row(
        id="sns:topic",
        description="SNS topics",
        arn_service="sns",
        arn_prefix=None,
        arn_separator="",
        id_pattern=r"[a-zA-Z0-9_-]{1,256}(\.fifo)?",
        listing=Listing(
            client="sns",
            operation="list_topics",
            items=_list("Topics"),
            arn=lambda item, ctx: item["TopicArn"],
            name=_last_segment("TopicArn", ":"),
        ),
        tagging_api_filter="sns:topic",
        tag_reader=TagReader("sns", _kv_list_reader("list_tags_for_resource", "ResourceArn", "Tags")),
        custodian_resource="sns",
        cost_explorer_service="Amazon Simple Notification Service",
        tag_policy_name="sns:topic",
    ),
    _row(
        id="sqs:queue",
        description="SQS queues",
        arn_service="sqs",
        arn_prefix=None,
        arn_separator="",
        id_pattern=r"[a-zA-Z0-9_-]{1,80}(\.fifo)?",
        listing=Listing(
            client="sqs",
            operation="list_queues",
            items=_wrapped("QueueUrls", "QueueUrl"),
            arn=_sqs_arn,
            name=_last_segment("QueueUrl", "/"),
            # Without MaxResults, ListQueues returns at most 1,000 queues and no NextToken: the rest
            # would silently be missing from the scan.
            params={"MaxResults": 1000},
        ),
        tagging_api_filter="sqs",
        tag_reader=TagReader("sqs", _sqs_tags),
        custodian_resource="sqs",
        cost_explorer_service="Amazon Simple Queue Service",
        tag_policy_name="sqs:queue",
    ),
    _row(
        id="elasticloadbalancing:loadbalancer",
        description="Application, network and gateway load balancers (ELBv2)",
        arn_service="elasticloadbalancing",
        arn_prefix="loadbalancer",
        arn_separator="/",
        id_pattern=r"((app|net|gwy)/[a-zA-Z0-9-]{1,32}/[0-9a-f]{16}|[a-zA-Z0-9-]{1,32})",
        listing=Listing(
            client="elbv2",
            operation="describe_load_balancers",
            items=_list("LoadBalancers"),
            arn=lambda item, ctx: item["LoadBalancerArn"],
            name=_field("LoadBalancerName"),
            vpc_id=_field("VpcId"),
        ),
        tagging_api_filter="elasticloadbalancing:loadbalancer",
        tag_reader=TagReader("elbv2", _elbv2_tags),
        custodian_resource="app-elb",
        cost_explorer_service="Amazon Elastic Load Balancing",
        tag_policy_name="elasticloadbalancing:loadbalancer",
    ),
    _row(
        id="kinesis:stream",
        description="Kinesis data streams",
        arn_service="kinesis",
        arn_prefix="stream",
        arn_separator="/",
        id_pattern=r"[a-zA-Z0-9_.-]{1,128}",
        listing=Listing(
            client="kinesis",
            operation="list_streams",
            items=_wrapped("StreamNames", "name"),
            arn=_built("kinesis:stream", "name"),
            name=_field("name"),
        ),
        tagging_api_filter="kinesis:stream",
        tag_reader=TagReader("kinesis", _kinesis_tags),
        custodian_resource="kinesis",
        cost_explorer_service="Amazon Kinesis",
        tag_policy_name="kinesis:stream",
    ),
    _row(
        id="secretsmanager:secret",
        description="Secrets Manager secrets",
        arn_service="secretsmanager",
        arn_prefix="secret",
        arn_separator=":",
        id_pattern=r"[a-zA-Z0-9/_+=.@-]{1,512}",
        listing=Listing(
            client="secretsmanager",
            operation="list_secrets",
            items=_list("SecretList"),
            arn=lambda item, ctx: item["ARN"],
            name=_field("Name"),
            tags=_kv_tags("Tags"),
        ),
        tagging_api_filter="secretsmanager:secret",
        tag_reader=None,
        custodian_resource="secrets-manager",
        cost_explorer_service="AWS Secrets Manager",
        tag_policy_name="secretsmanager:secret",
    ),
)

REGISTRY: dict[str, ResourceType] = {row.id: row for row in _ROWS}
# A type whose listing carries no tags needs a per-resource reader, the tag source of last resort.
assert all(row.listing.tags is not None or row.tag_reader is not None for row in _ROWS)
RESOURCE_TYPE_IDS: tuple[str, ...] = tuple(REGISTRY)
_ID_PATTERNS = {row.id: re.compile(rf"^{row.id_pattern}$") for row in _ROWS}


def get_resource_type(type_id: str) -> ResourceType:
    try:
        return REGISTRY[type_id]
    except KeyError:
        raise InvalidInputError(
            f"unknown resource type {type_id!r}; supported types: {', '.join(RESOURCE_TYPE_IDS)}"
        ) from None


def resolve_resource_types(requested: Iterable[str] | None) -> list[str]:
    """Registry ids for a tool's ``resource_types`` argument: None / [] / ["all"] mean every type."""
    values = list(requested or [])
    if not values or values == ["all"]:
        return list(RESOURCE_TYPE_IDS)
    if "all" in values:
        raise InvalidInputError('"all" cannot be combined with other resource types')
    unknown = [value for value in values if value not in REGISTRY]
    if unknown:
        raise InvalidInputError(
            f"unknown resource type(s): {', '.join(map(repr, unknown))}; "
            f"supported types: {', '.join(RESOURCE_TYPE_IDS)}"
        )
    return list(dict.fromkeys(values))


def validate_region_names(values: Iterable[object]) -> list[str]:
    """Region names as given, deduplicated; an error naming every value that is not a region."""
    names = list(values)
    bad = [value for value in names if not isinstance(value, str) or not REGION_PATTERN.match(value)]
    if bad:
        raise InvalidInputError(f"not AWS region names: {', '.join(map(repr, bad))} (e.g. 'us-east-1')")
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


def region_filter(regions: Iterable[object] | None) -> list[str] | None:
    """A ``regions`` filter argument: None when omitted, empty or ["all"] (no filter)."""
    values = list(regions or [])
    if not values or values == ["all"]:
        return None
    if "all" in values:
        raise InvalidInputError('"all" cannot be combined with other regions')
    return validate_region_names(values)


# --- ARN parsing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedArn:
    arn: str
    partition: str
    service: str
    region: str
    account_id: str
    resource_type: str  # registry id
    resource_id: str


def _match_row(service: str, resource: str) -> tuple[ResourceType, str] | None:
    """The registry row whose prefix and separator open ``resource``, with the id that follows."""
    fallback: tuple[ResourceType, str] | None = None
    for row in _ROWS:
        if row.arn_service != service:
            continue
        if row.arn_prefix is None:
            fallback = (row, resource)
        elif resource.startswith(row.arn_prefix + row.arn_separator):
            return row, resource[len(row.arn_prefix) + len(row.arn_separator) :]
    return fallback


def parse_arn(arn: str) -> ParsedArn:
    """Parse and validate an ARN of a registered type; the error says exactly what is wrong."""
    if not isinstance(arn, str) or not arn.strip():
        raise InvalidInputError("ARN is empty")
    if arn != arn.strip():
        raise InvalidInputError(f"ARN {arn!r} has leading or trailing whitespace")
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise InvalidInputError(
            f"{arn!r} is not an ARN: expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE"
        )
    _, partition, service, region, account_id, resource = parts
    if partition not in PARTITIONS:
        raise InvalidInputError(
            f"ARN {arn!r} has unknown partition {partition!r}; expected one of {', '.join(PARTITIONS)}"
        )
    if not resource:
        raise InvalidInputError(f"ARN {arn!r} has an empty resource part")
    matched = _match_row(service, resource)
    if matched is None:
        services = sorted({row.arn_service for row in _ROWS})
        if service in services:
            raise InvalidInputError(
                f"ARN {arn!r}: resource {resource!r} is not a supported {service} resource type; "
                f"supported: {', '.join(row.id for row in _ROWS if row.arn_service == service)}"
            )
        raise InvalidInputError(
            f"ARN {arn!r}: service {service!r} is not supported; supported services: {', '.join(services)}"
        )
    row, resource_id = matched
    if row.global_arn:
        if region or account_id:
            raise InvalidInputError(
                f"ARN {arn!r}: {row.id} ARNs have empty region and account (arn:{partition}:s3:::NAME)"
            )
    else:
        if not REGION_PATTERN.match(region):
            raise InvalidInputError(f"ARN {arn!r} has invalid region {region!r}")
        if not _ACCOUNT.match(account_id):
            raise InvalidInputError(f"ARN {arn!r} has invalid account id {account_id!r}: expected 12 digits")
    if not _ID_PATTERNS[row.id].match(resource_id):
        raise InvalidInputError(f"ARN {arn!r} has an invalid {row.id} identifier {resource_id!r}")
    return ParsedArn(
        arn=arn,
        partition=partition,
        service=row.arn_service,
        region=region,
        account_id=account_id,
        resource_type=row.id,
        resource_id=resource_id,
    )


def resource_id_from_arn(resource_type: ResourceType, arn: str) -> str:
    """The id part of an ARN already known to be of ``resource_type`` (no validation)."""
    resource = arn.split(":", 5)[5]
    head = f"{resource_type.arn_prefix}{resource_type.arn_separator}" if resource_type.arn_prefix else ""
    return resource[len(head) :] if head and resource.startswith(head) else resource

"""The estate of the remediation tests: one resource of several types in two regions, some carrying
tags already (so an apply overwrites and an undo must restore values, not just remove keys)."""

from __future__ import annotations

from typing import Any

from .conftest import ACCOUNT, REGIONS, FaultyAwsProcess

BUCKET = "remediation-test-bucket"


def seed(aws: FaultyAwsProcess) -> dict[str, str]:
    """Creates the estate; returns name -> ARN."""
    east, west = REGIONS
    arns: dict[str, str] = {}
    for region, suffix in ((east, ""), (west, "-west")):
        ec2 = aws.client("ec2", region)
        instance = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "Name", "Value": f"web-01{suffix}"},
                        {"Key": "Environment", "Value": "prod"},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
        arns[f"instance{suffix}"] = f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{instance}"
        table = aws.client("dynamodb", region).create_table(
            TableName=f"orders{suffix}",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        arns[f"table{suffix}"] = table["TableDescription"]["TableArn"]
    ec2 = aws.client("ec2", east)
    volume = ec2.create_volume(AvailabilityZone=f"{east}a", Size=1)["VolumeId"]
    arns["volume"] = f"arn:aws:ec2:{east}:{ACCOUNT}:volume/{volume}"
    s3 = aws.client("s3", east)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_tagging(
        Bucket=BUCKET,
        Tagging={"TagSet": [{"Key": "Owner", "Value": "old@example.com"}, {"Key": "Keep", "Value": "me"}]},
    )
    arns["bucket"] = f"arn:aws:s3:::{BUCKET}"
    arns["topic"] = aws.client("sns", east).create_topic(
        Name="alerts", Tags=[{"Key": "CostCenter", "Value": "CC-9999"}]
    )["TopicArn"]
    arns["secret"] = aws.client("secretsmanager", east).create_secret(Name="db-password", SecretString="x")[
        "ARN"
    ]
    arns["db"] = aws.client("rds", east).create_db_instance(
        DBInstanceIdentifier="orders-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="admin1",
        MasterUserPassword="password123",
        AllocatedStorage=20,
    )["DBInstance"]["DBInstanceArn"]
    return arns


def tags_now(aws: FaultyAwsProcess, arn: str) -> dict[str, str]:
    """The resource's tags read straight from the server (the type's own API, not the product's)."""
    service, region = arn.split(":")[2], arn.split(":")[3] or REGIONS[0]
    resource = arn.split(":", 5)[5]
    pairs: list[dict[str, Any]]
    if service == "ec2":
        ident = resource.split("/", 1)[1]
        pairs = aws.client("ec2", region).describe_tags(Filters=[{"Name": "resource-id", "Values": [ident]}])[
            "Tags"
        ]
    elif service == "s3":
        try:
            pairs = aws.client("s3", region).get_bucket_tagging(Bucket=resource)["TagSet"]
        except aws.client("s3", region).exceptions.ClientError:
            pairs = []
    elif service == "dynamodb":
        pairs = aws.client("dynamodb", region).list_tags_of_resource(ResourceArn=arn).get("Tags", [])
    elif service == "sns":
        pairs = aws.client("sns", region).list_tags_for_resource(ResourceArn=arn)["Tags"]
    elif service == "secretsmanager":
        pairs = aws.client("secretsmanager", region).describe_secret(SecretId=arn).get("Tags", [])
    elif service == "rds":
        pairs = aws.client("rds", region).list_tags_for_resource(ResourceName=arn)["TagList"]
    else:
        raise AssertionError(f"no reader for {arn}")
    return {pair["Key"]: pair["Value"] for pair in pairs}

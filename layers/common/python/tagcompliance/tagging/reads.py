"""The current tags of named resources, read from AWS right before planning or undoing a change.

Per region, one Tagging API ``GetResources`` per 100 ARNs; a resource it does not return (the API
never lists a resource that was never tagged) is read with the registry's per-resource tag reader,
or, for a type without one, found by ``fallback`` (a scan of that type in that region). S3 buckets'
ARNs carry no region: the bucket's own location is asked. A resource found nowhere is not found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import AwsClients, describe_aws_error, error_code
from tagcompliance.errors import InvalidInputError
from tagcompliance.resources import REGISTRY, ParsedArn, resource_id_from_arn

READ_BATCH = 100  # ResourceARNList takes at most 100 ARNs
NOT_FOUND_CODES = frozenset(
    {"NoSuchBucket", "ResourceNotFoundException", "NotFoundException", "InvalidInstanceID.NotFound"}
)

# (resource type, region) -> {arn: tags} of every resource of that type there.
Fallback = Callable[[str, str], dict[str, dict[str, str]]]


@dataclass(frozen=True, slots=True)
class CurrentTags:
    region: str
    tags: dict[str, str]


class TagReadError(InvalidInputError):
    """Tags that could not be read: nothing is planned on a guess."""


def bucket_region(clients: AwsClients, bucket: str) -> str:
    location = clients.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def read_current_tags(
    clients: AwsClients, parsed: Sequence[ParsedArn], fallback: Fallback
) -> tuple[dict[str, CurrentTags], list[str]]:
    """(found, not_found ARNs). Raises ``TagReadError`` when a read fails (throttled, denied, down)."""
    found: dict[str, CurrentTags] = {}
    missing: list[str] = []
    by_region: dict[str, list[ParsedArn]] = defaultdict(list)
    for item in parsed:
        row = REGISTRY[item.resource_type]
        if row.global_arn:  # S3: the region is the bucket's, the tags come from the S3 API
            try:
                region = bucket_region(clients, item.resource_id)
                assert row.tag_reader is not None
                client = clients.client(row.tag_reader.client, region)
                found[item.arn] = CurrentTags(region, row.tag_reader.read(client, item.arn, item.resource_id))
            except (ClientError, BotoCoreError) as error:
                if error_code(error) in NOT_FOUND_CODES:
                    missing.append(item.arn)
                    continue
                raise TagReadError(
                    f"could not read the tags of {item.arn}: {describe_aws_error(error)}"
                ) from None
        else:
            by_region[item.region].append(item)
    for region, items in sorted(by_region.items()):
        tagged = _tagging_api(clients, region, [item.arn for item in items])
        unresolved: dict[str, list[ParsedArn]] = defaultdict(list)
        for item in items:
            if item.arn in tagged:
                found[item.arn] = CurrentTags(region, tagged[item.arn])
                continue
            row = REGISTRY[item.resource_type]
            if row.tag_reader is None:
                unresolved[item.resource_type].append(item)
                continue
            try:
                client = clients.client(row.tag_reader.client, region)
                tags = row.tag_reader.read(client, item.arn, resource_id_from_arn(row, item.arn))
                found[item.arn] = CurrentTags(region, tags)
            except (ClientError, BotoCoreError) as error:
                if error_code(error) in NOT_FOUND_CODES or "not found" in str(error).lower():
                    missing.append(item.arn)
                    continue
                raise TagReadError(
                    f"could not read the tags of {item.arn}: {describe_aws_error(error)}"
                ) from None
        for type_id, pending in sorted(unresolved.items()):
            listed = fallback(type_id, region)
            for item in pending:
                if item.arn in listed:
                    found[item.arn] = CurrentTags(region, dict(listed[item.arn]))
                else:
                    missing.append(item.arn)
    return found, missing


def _tagging_api(clients: AwsClients, region: str, arns: Iterable[str]) -> dict[str, dict[str, str]]:
    client = clients.client("resourcegroupstaggingapi", region)
    wanted = list(arns)
    tags: dict[str, dict[str, str]] = {}
    try:
        for start in range(0, len(wanted), READ_BATCH):
            kwargs = {"ResourceARNList": wanted[start : start + READ_BATCH]}
            while True:
                page = client.get_resources(**kwargs)
                for mapping in page.get("ResourceTagMappingList") or []:
                    tags[mapping["ResourceARN"]] = {t["Key"]: t["Value"] for t in mapping.get("Tags") or []}
                token = page.get("PaginationToken")
                if not token:
                    break
                kwargs["PaginationToken"] = token
    except (ClientError, BotoCoreError) as error:
        raise TagReadError(f"could not read tags in {region}: {describe_aws_error(error)}") from None
    return tags

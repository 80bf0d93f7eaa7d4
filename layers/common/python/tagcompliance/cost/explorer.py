"""The Cost Explorer client (request tally, fail-fast operations) and the requests a question makes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import AwsClients, describe_aws_error, error_code

from .amounts import TagStream
from .models import COST_EXPLORER_REGION, COST_METRIC, DEFAULT_CURRENCY, CostExplorerError

_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# Operations with a fallback: when the endpoint cannot serve them they must fail at once.
_FAIL_FAST_OPERATIONS = ("ListCostAllocationTags", "GetCostAndUsageWithResources")


class _RequestTally(threading.local):
    """Cost Explorer requests sent by this thread: a question's count stays exact when others run."""

    def __init__(self) -> None:
        self.sent = 0


TALLY = _RequestTally()


def _tally_request(**_: Any) -> None:
    TALLY.sent += 1


def _fail_fast(
    response: tuple[Any, Mapping[str, Any]] | None = None,
    caught_exception: Exception | None = None,
    operation: Any = None,
    **_: Any,
) -> None:
    """Stop retries of an operation the endpoint cannot serve (botocore runs this hook first).

    Adaptive retries would repeat a 5xx or a failed connection with backoff for about half a
    minute (moto answers 500 for operations it lacks); these operations have a fallback instead.
    """
    if caught_exception is not None:
        raise CostExplorerError(f"{operation.name}: {describe_aws_error(caught_exception)}")
    if response is not None and response[0].status_code >= 500:
        raise CostExplorerError(
            f"{operation.name} answered HTTP {response[0].status_code}: not available at this endpoint"
        )


def cost_explorer(clients: AwsClients) -> Any:
    client = clients.client("ce", COST_EXPLORER_REGION)
    events = client.meta.events
    events.register("before-send.cost-explorer", _tally_request, unique_id="tagcompliance-cost-tally")
    for operation in _FAIL_FAST_OPERATIONS:
        events.register(
            f"needs-retry.cost-explorer.{operation}",
            _fail_fast,
            unique_id=f"tagcompliance-fail-fast-{operation}",
        )
    return client


def denied_or_failed(error: Exception, action: str) -> str:
    if error_code(error) in _ACCESS_DENIED:
        return f"access denied: the caller's IAM policy must allow {action} ({describe_aws_error(error)})"
    return str(error) if isinstance(error, CostExplorerError) else describe_aws_error(error)


def request_filter(
    services: Sequence[str], regions: Sequence[str] | None, accounts: Sequence[str] | None = None
) -> dict[str, Any]:
    dimensions: list[dict[str, Any]] = [{"Dimensions": {"Key": "SERVICE", "Values": list(services)}}]
    if regions is not None:
        dimensions.append({"Dimensions": {"Key": "REGION", "Values": list(regions)}})
    if accounts is not None:  # a management account's data holds every member's spend
        dimensions.append({"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": list(accounts)}})
    return dimensions[0] if len(dimensions) == 1 else {"And": dimensions}


def pages(call: Any, params: dict[str, Any], token_field: str) -> Iterator[dict[str, Any]]:
    """Every page of a Cost Explorer listing (it has no boto3 paginators), guarding against token loops."""
    seen: set[str] = set()
    while True:
        page = call(**params)
        yield page
        token = page.get(token_field)
        if not token:
            return
        if token in seen:  # each page is billed: never loop on a repeated token
            raise CostExplorerError(f"Cost Explorer returned the page token {token!r} twice")
        seen.add(token)
        params = {**params, token_field: token}


def tag_stream(
    ce: Any, tag_key: str, start: date, end: date, request_filter: dict[str, Any], dimension: str = "SERVICE"
) -> TagStream:
    """Spend grouped by ``dimension`` (SERVICE, or LINKED_ACCOUNT for the gap per account) and the tag."""
    params = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "MONTHLY",
        "Metrics": [COST_METRIC],
        "Filter": request_filter,
        "GroupBy": [{"Type": "DIMENSION", "Key": dimension}, {"Type": "TAG", "Key": tag_key}],
    }
    stream = TagStream()
    try:
        for page in pages(ce.get_cost_and_usage, params, "NextPageToken"):
            for period in page.get("ResultsByTime") or []:
                stream.estimated |= bool(period.get("Estimated"))
                for group in period.get("Groups") or []:
                    service, tag_group = group["Keys"]
                    metric = group["Metrics"][COST_METRIC]
                    # Keys read "Key$Value"; the value may itself hold "$", and is empty without the tag.
                    stream.spend[(service, tag_group.partition("$")[2])] += Decimal(metric["Amount"])
                    stream.units.add(metric.get("Unit") or DEFAULT_CURRENCY)
    except (ClientError, BotoCoreError) as error:
        raise CostExplorerError(
            f"Cost Explorer GetCostAndUsage failed for tag {tag_key}: "
            f"{denied_or_failed(error, 'ce:GetCostAndUsage')}"
        ) from error
    return stream


def tag_activation(ce: Any, tag_keys: list[str]) -> tuple[dict[str, bool] | None, str | None]:
    """Whether each key is an active cost allocation tag, or None and why that is unknown."""
    active = dict.fromkeys(tag_keys, False)  # a key Cost Explorer does not list is not active
    try:
        for page in pages(ce.list_cost_allocation_tags, {"TagKeys": tag_keys}, "NextToken"):
            for entry in page.get("CostAllocationTags") or []:
                if entry.get("TagKey") in active:
                    active[entry["TagKey"]] = entry.get("Status") == "Active"
    except (ClientError, BotoCoreError, CostExplorerError) as error:
        return None, f"ListCostAllocationTags failed: {denied_or_failed(error, 'ce:ListCostAllocationTags')}"
    return active, None

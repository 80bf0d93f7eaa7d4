"""Cost Explorer for the demo: answers GetCostAndUsage and ListCostAllocationTags from the estate.

moto's Cost Explorer returns nothing unless results are queued, one per distinct request, so it
cannot answer arbitrary questions consistently. ``install_cost_model`` therefore replaces moto's
``CostExplorerBackend.get_cost_and_usage(self, body)`` and adds ``list_cost_allocation_tags`` (which
moto lacks) on the backend and response classes, in the process that runs the moto server. Every
answer is computed from the estate's definition: each resource costs its ``daily_cost_usd`` every
day, grouped and filtered as Cost Explorer would, with Cost Explorer's pagination. Tag changes
made in moto afterwards do not move spend (real billing data lags tagging too).

Supported: TimePeriod (Start inclusive, End exclusive), Granularity DAILY or MONTHLY, cost Metrics
(all with the same amounts), Filter of Dimensions SERVICE / REGION / LINKED_ACCOUNT and Tags combined
with And / Or / Not, and GroupBy of up to two DIMENSION SERVICE / REGION / LINKED_ACCOUNT or TAG keys.
Anything else gets a ValidationException naming what is not supported, as AWS answers invalid input.
LINKED_ACCOUNT is the demo account unless ``CostModel.linked_accounts`` bills a resource to a member.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from moto.ce.models import CostExplorerBackend
from moto.ce.responses import CostExplorerResponse
from moto.core.exceptions import JsonRESTError

from .estate import Estate, EstateResource
from .seed import ACCOUNT_ID

DEFAULT_PAGE_SIZE = 50
COST_METRICS = frozenset(
    {"UnblendedCost", "AmortizedCost", "BlendedCost", "NetUnblendedCost", "NetAmortizedCost"}
)
_DIMENSIONS: dict[str, Callable[[EstateResource], str]] = {
    "SERVICE": lambda resource: resource.cost_explorer_service,
    "REGION": lambda resource: resource.region,
    # The estate is one account's; CostModel.linked_accounts moves resources' spend to members.
    "LINKED_ACCOUNT": lambda resource: ACCOUNT_ID,
}
_MAX_GROUP_BY = 2
_MAX_TAG_RESULTS = 1000

Request = dict[str, Any]


class CostExplorerValidationError(JsonRESTError):
    """Rendered by moto as AWS renders it: HTTP 400 with ``__type`` ValidationException."""

    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CostExplorerValidationError(message)


@dataclass(frozen=True, slots=True)
class _Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def as_json(self) -> dict[str, str]:
        return {"Start": self.start.isoformat(), "End": self.end.isoformat()}


def _parse_date(value: Any, field: str) -> date:
    _require(isinstance(value, str), f"TimePeriod.{field} is required (yyyy-MM-dd)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CostExplorerValidationError(
            f"TimePeriod.{field} {value!r} is not a date in yyyy-MM-dd format"
        ) from None


def _periods(request: Request) -> list[_Period]:
    time_period = request.get("TimePeriod")
    _require(isinstance(time_period, dict), "TimePeriod is required")
    start = _parse_date(time_period.get("Start"), "Start")
    end = _parse_date(time_period.get("End"), "End")
    _require(start < end, "Start date (and hour) should be before end date (and hour)")
    granularity = request.get("Granularity")
    _require(
        granularity in ("DAILY", "MONTHLY"),
        f"Granularity {granularity!r} is not supported: use DAILY or MONTHLY",
    )
    periods: list[_Period] = []
    cursor = start
    while cursor < end:
        if granularity == "DAILY":
            boundary = date.fromordinal(cursor.toordinal() + 1)
        else:
            boundary = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        periods.append(_Period(cursor, min(boundary, end)))
        cursor = periods[-1].end
    return periods


def _metrics(request: Request) -> list[str]:
    metrics = request.get("Metrics")
    _require(isinstance(metrics, list) and bool(metrics), "Metrics is required")
    unknown = [metric for metric in metrics if metric not in COST_METRICS]
    _require(not unknown, f"Metrics {unknown} are not supported; use {sorted(COST_METRICS)}")
    return list(dict.fromkeys(metrics))


def _group_by(request: Request) -> list[tuple[str, str]]:
    group_by = request.get("GroupBy") or []
    _require(isinstance(group_by, list), "GroupBy must be a list")
    _require(
        len(group_by) <= _MAX_GROUP_BY, f"You can only group by up to {_MAX_GROUP_BY} dimensions or tags"
    )
    groups: list[tuple[str, str]] = []
    for item in group_by:
        _require(isinstance(item, dict), "each GroupBy entry needs Type and Key")
        kind, key = item.get("Type"), item.get("Key")
        _require(
            kind in ("DIMENSION", "TAG"), f"GroupBy Type {kind!r} is not supported: use DIMENSION or TAG"
        )
        _require(isinstance(key, str) and bool(key), "GroupBy Key is required")
        _require(
            kind == "TAG" or key in _DIMENSIONS,
            f"Dimension {key!r} is not supported: use {sorted(_DIMENSIONS)}",
        )
        _require((kind, key) not in groups, f"GroupBy {kind} {key} is repeated")
        groups.append((kind, key))
    return groups


def _match_options(spec: dict[str, Any], allowed: Sequence[str]) -> str:
    options = spec.get("MatchOptions") or ["EQUALS"]
    _require(
        isinstance(options, list) and len(options) == 1 and options[0] in allowed,
        f"MatchOptions {options} are not supported here: use one of {list(allowed)}",
    )
    return str(options[0])


def _encode_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "request": fingerprint}).encode()).decode()


def _decode_token(token: Any, fingerprint: str, total: int) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        offset, owner = decoded["offset"], decoded["request"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise CostExplorerValidationError("Invalid NextPageToken") from None
    _require(owner == fingerprint, "NextPageToken belongs to a different request")
    _require(isinstance(offset, int) and 0 < offset < total, "Invalid NextPageToken")
    return offset


def _fingerprint(request: Request, token_field: str) -> str:
    """Identifies a request without its page token, so a token only continues its own request."""
    canonical = json.dumps(
        {k: v for k, v in request.items() if k != token_field}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _page(
    items: Sequence[Any], request: Request, token_field: str, size: int
) -> tuple[Sequence[Any], str | None]:
    fingerprint = _fingerprint(request, token_field)
    offset = _decode_token(request[token_field], fingerprint, len(items)) if request.get(token_field) else 0
    end = offset + size
    return items[offset:end], (_encode_token(end, fingerprint) if end < len(items) else None)


def _amounts(amount: Decimal, metrics: list[str]) -> dict[str, dict[str, str]]:
    return {metric: {"Amount": f"{amount:.2f}", "Unit": "USD"} for metric in metrics}


class CostModel:
    """The estate's spend, queried as Cost Explorer is; counts the requests it serves."""

    def __init__(self, estate: Estate, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.estate = estate
        self.page_size = page_size  # groups per GetCostAndUsage page; tests lower it
        self._counts: Counter[str] = Counter()
        # Estate key -> the member account its spend is billed to (a management account's data
        # holds every member's); unlisted resources are the demo account's own.
        self.linked_accounts: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- request accounting (Cost Explorer bills every request, every page) -------------

    def count(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def request_counts(self) -> dict[str, int]:
        """Requests served per operation name ("GetCostAndUsage", "ListCostAllocationTags")."""
        with self._lock:
            return dict(self._counts)

    def reset_request_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    # --- GetCostAndUsage ------------------------------------------------------------------

    def _matches(self, expression: Any, resource: EstateResource) -> bool:
        _require(
            isinstance(expression, dict) and len(expression) == 1,
            "each Filter expression needs exactly one of And, Or, Not, Dimensions, Tags",
        )
        ((operator, operand),) = expression.items()
        if operator in ("And", "Or"):
            _require(
                isinstance(operand, list) and len(operand) >= 2, f"{operator} needs at least two expressions"
            )
            results = (self._matches(item, resource) for item in operand)
            return all(results) if operator == "And" else any(results)
        if operator == "Not":
            return not self._matches(operand, resource)
        _require(
            operator in ("Dimensions", "Tags"), f"Filter {operator!r} is not supported by the demo cost model"
        )
        _require(isinstance(operand, dict) and isinstance(operand.get("Key"), str), f"{operator} needs a Key")
        key = operand["Key"]
        if operator == "Dimensions":
            _require(key in _DIMENSIONS, f"Dimension {key!r} is not supported: use {sorted(_DIMENSIONS)}")
            _match_options(operand, ["EQUALS"])
            return self._dimension(key, resource) in (operand.get("Values") or [])
        value = self.estate.cost_tag_value(resource, key)
        if _match_options(operand, ["EQUALS", "ABSENT"]) == "ABSENT":
            return value == ""
        return value in (operand.get("Values") or [])  # "" selects spend without the tag

    def _dimension(self, key: str, resource: EstateResource) -> str:
        if key == "LINKED_ACCOUNT":
            return self.linked_accounts.get(resource.key, ACCOUNT_ID)
        return _DIMENSIONS[key](resource)

    def _group_keys(self, resource: EstateResource, group_by: list[tuple[str, str]]) -> tuple[str, ...]:
        return tuple(
            self._dimension(key, resource)
            if kind == "DIMENSION"
            else f"{key}${self.estate.cost_tag_value(resource, key)}"
            for kind, key in group_by
        )

    def get_cost_and_usage(self, request: Request) -> dict[str, Any]:
        periods = _periods(request)
        metrics = _metrics(request)
        group_by = _group_by(request)
        selected = [
            resource
            for resource in self.estate.resources
            if "Filter" not in request or self._matches(request["Filter"], resource)
        ]
        daily: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
        for resource in selected:
            daily[self._group_keys(resource, group_by)] += resource.daily_cost_usd
        if not group_by:  # one result per period, never more than one page
            _require(not request.get("NextPageToken"), "Invalid NextPageToken")
            return {
                "ResultsByTime": [
                    {
                        "TimePeriod": period.as_json(),
                        "Total": _amounts(daily[()] * period.days, metrics),
                        "Groups": [],
                        "Estimated": False,
                    }
                    for period in periods
                ],
                "DimensionValueAttributes": [],
            }
        rows = [(index, keys) for index in range(len(periods)) for keys in sorted(daily)]
        page, token = _page(rows, request, "NextPageToken", self.page_size)
        groups_by_period: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for index, keys in page:
            groups_by_period[index].append(
                {"Keys": list(keys), "Metrics": _amounts(daily[keys] * periods[index].days, metrics)}
            )
        shown = sorted(groups_by_period) if rows else range(len(periods))
        response: dict[str, Any] = {
            "GroupDefinitions": [{"Type": kind, "Key": key} for kind, key in group_by],
            "ResultsByTime": [
                {
                    "TimePeriod": periods[index].as_json(),
                    "Total": {},
                    "Groups": groups_by_period[index],
                    "Estimated": False,
                }
                for index in shown
            ],
            "DimensionValueAttributes": [],
        }
        if token:
            response["NextPageToken"] = token
        return response

    # --- ListCostAllocationTags -------------------------------------------------------------

    def _allocation_tags(self) -> Iterator[dict[str, str]]:
        keys = sorted({key for resource in self.estate.resources for key in resource.tags or {}})
        for key in keys:
            yield {
                "TagKey": key,
                "Type": "AWSGenerated" if key.startswith("aws:") else "UserDefined",
                "Status": "Active" if key in self.estate.activated_cost_allocation_tags else "Inactive",
            }

    def list_cost_allocation_tags(self, request: Request) -> dict[str, Any]:
        status, tag_type, tag_keys = request.get("Status"), request.get("Type"), request.get("TagKeys")
        _require(status in (None, "Active", "Inactive"), f"Status {status!r} must be Active or Inactive")
        _require(
            tag_type in (None, "AWSGenerated", "UserDefined"),
            f"Type {tag_type!r} must be AWSGenerated or UserDefined",
        )
        _require(tag_keys is None or isinstance(tag_keys, list), "TagKeys must be a list")
        max_results = request.get("MaxResults", _MAX_TAG_RESULTS)
        _require(
            isinstance(max_results, int) and 1 <= max_results <= _MAX_TAG_RESULTS,
            f"MaxResults must be between 1 and {_MAX_TAG_RESULTS}",
        )
        tags = [
            tag
            for tag in self._allocation_tags()
            if (status is None or tag["Status"] == status)
            and (tag_type is None or tag["Type"] == tag_type)
            and (tag_keys is None or tag["TagKey"] in tag_keys)
        ]
        page, token = _page(tags, request, "NextToken", max_results)
        return {"CostAllocationTags": list(page), **({"NextToken": token} if token else {})}


def install_cost_model(estate: Estate, page_size: int = DEFAULT_PAGE_SIZE) -> CostModel:
    """Make moto's Cost Explorer (in this process) answer from ``estate``; returns the model.

    Patches classes, so it holds for every account and survives ``/moto-api/reset``. Installing
    again replaces the previous model.
    """
    model = CostModel(estate, page_size)

    def get_cost_and_usage(backend: CostExplorerBackend, body: str) -> dict[str, Any]:
        model.count("GetCostAndUsage")
        return model.get_cost_and_usage(_request(body))

    def list_cost_allocation_tags(backend: CostExplorerBackend, body: str) -> dict[str, Any]:
        model.count("ListCostAllocationTags")
        return model.list_cost_allocation_tags(_request(body))

    def respond_list_cost_allocation_tags(response: CostExplorerResponse) -> str:
        return json.dumps(response.ce_backend.list_cost_allocation_tags(response.body))

    CostExplorerBackend.get_cost_and_usage = get_cost_and_usage  # type: ignore[method-assign]
    CostExplorerBackend.list_cost_allocation_tags = list_cost_allocation_tags  # type: ignore[attr-defined]
    CostExplorerResponse.list_cost_allocation_tags = respond_list_cost_allocation_tags  # type: ignore[attr-defined]
    return model


def _request(body: str | bytes | None) -> Request:
    try:
        request = json.loads(body or "{}")
    except ValueError:
        raise CostExplorerValidationError("request body is not JSON") from None
    _require(isinstance(request, dict), "request body must be a JSON object")
    return request

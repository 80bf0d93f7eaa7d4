"""Cost attribution: how much spend Cost Explorer cannot attribute to each required tag.

One ``GetCostAndUsage`` request stream per tag key, grouped by SERVICE and that tag and filtered to
the Cost Explorer services of the requested resource types and the requested regions. Each
tag-group row is unattributed (empty value: the spend carries no such tag), invalid (a value the
policy does not accept) or attributed; the service totals come from the same rows. A question
therefore costs one request per tag key plus one ``ListCostAllocationTags`` request, and extra
pages only when AWS paginates: Cost Explorer bills $0.01 per request.

Cost Explorer groups by at most two keys, so the spend missing at least one of several tags (the
union) cannot be computed: the headline gap is the largest single-tag gap, a lower bound, with the
sum of the per-tag gaps as an upper bound.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from .aws import AwsClients, describe_aws_error, error_code
from .compliance import Resource
from .errors import InvalidInputError, TagComplianceError
from .policy import RequiredTag, TaggingPolicy
from .resources import REGISTRY, get_resource_type, parse_arn, resolve_resource_types, validate_region_names
from .suggest import is_valid_value

COST_EXPLORER_REGION = "us-east-1"  # Cost Explorer is served from one endpoint, in us-east-1
COST_METRIC = "UnblendedCost"
RESOURCE_LEVEL_DAYS = 14  # GetCostAndUsageWithResources only holds the last 14 days
TAG_GROUP_METHOD = "cost_explorer_tag_group"
DEFAULT_CURRENCY = "USD"

CostMethod = Literal["cost_explorer_tag_group"]
EstimateMethod = Literal["service_average_estimate", "resource_level"]

_CENT = Decimal("0.01")
_ZERO = Decimal(0)
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# Operations with a fallback: when the endpoint cannot serve them they must fail at once.
_FAIL_FAST_OPERATIONS = ("ListCostAllocationTags", "GetCostAndUsageWithResources")


class CostExplorerError(TagComplianceError):
    """Cost Explorer refused or failed a request; the message says why and what to grant or change."""


class ResourceCostsUnavailableError(CostExplorerError):
    """Resource-level costs cannot be had: fall back to ``estimate_resource_costs``."""


# --- result models -------------------------------------------------------------------------


class Period(BaseModel):
    start: date
    end: date = Field(description="Exclusive, as Cost Explorer uses it.")


class ServiceSpend(BaseModel):
    service: str = Field(description="Cost Explorer SERVICE dimension value.")
    spend: float
    resource_types: list[str] = Field(description="Requested resource types whose spend this service holds.")
    method: CostMethod = TAG_GROUP_METHOD


class ServiceGap(BaseModel):
    service: str
    spend: float
    attributed_spend: float
    unattributed_spend: float
    invalid_value_spend: float
    gap_spend: float


class InvalidValueSpend(BaseModel):
    value: str
    spend: float


class TagGap(BaseModel):
    tag_key: str
    total_spend: float = Field(
        description="Spend in this tag's request stream (the same services and regions)."
    )
    attributed_spend: float = Field(description="Spend carrying a value the policy accepts.")
    unattributed_spend: float = Field(description="Spend without the tag (Cost Explorer's empty tag group).")
    invalid_value_spend: float = Field(description="Spend carrying a value the policy does not accept.")
    gap_spend: float = Field(description="unattributed_spend + invalid_value_spend.")
    gap_percent: float | None = Field(description="gap_spend / total_spend in percent; None without spend.")
    tag_activated: bool | None = Field(
        description="Whether the tag is an active cost allocation tag; None when that could not be checked."
    )
    method: CostMethod = TAG_GROUP_METHOD
    by_service: list[ServiceGap]
    invalid_values: list[InvalidValueSpend] = Field(
        description="Spend per value the policy rejects, largest first."
    )


class AttributionGapHeadline(BaseModel):
    gap_spend: float = Field(
        description="Spend missing, or carrying an invalid value for, at least one required tag."
    )
    gap_percent: float | None
    tag_key: str = Field(description="The tag whose gap gives the figure.")
    tag_activated: bool | None
    bound: Literal["exact", "lower_bound"]
    upper_bound_spend: float = Field(description="The sum of the per-tag gaps, capped at the total spend.")
    method: CostMethod = TAG_GROUP_METHOD
    explanation: str


class ResourceCostEstimate(BaseModel):
    arn: str
    resource_type: str
    service: str
    cost: float
    currency: str = DEFAULT_CURRENCY
    method: EstimateMethod
    basis: str = Field(description="How the figure was obtained.")


class CostAttributionGap(BaseModel):
    period: Period
    currency: str
    resource_types: list[str]
    regions: list[str] | None = Field(description="None: every region (no REGION filter).")
    total_spend: float
    method: CostMethod = Field(default=TAG_GROUP_METHOD, description="How total_spend was obtained.")
    services: list[ServiceSpend]
    by_tag: list[TagGap]
    attribution_gap: AttributionGapHeadline
    activation_status: Literal["checked", "unknown"]
    activation_status_reason: str | None = None
    cost_explorer_requests: int = Field(
        description="Requests sent to Cost Explorer, every page and retry counted."
    )
    estimated: bool = Field(description="AWS marks part of the period's figures as estimated (not final).")
    notes: list[str]
    cached: bool = Field(default=False, description="Served from the cache: no Cost Explorer request made.")
    estimates: list[ResourceCostEstimate] = Field(
        description="Service-average estimates for the in-scope resources given (none without resources)."
    )


# --- Cost Explorer client -------------------------------------------------------------------


class _RequestTally(threading.local):
    """Cost Explorer requests sent by this thread: a question's count stays exact when others run."""

    def __init__(self) -> None:
        self.sent = 0


_TALLY = _RequestTally()


def _tally_request(**_: Any) -> None:
    _TALLY.sent += 1


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


def _cost_explorer(clients: AwsClients) -> Any:
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


def _denied_or_failed(error: Exception, action: str) -> str:
    if error_code(error) in _ACCESS_DENIED:
        return f"access denied: the caller's IAM policy must allow {action} ({describe_aws_error(error)})"
    return str(error) if isinstance(error, CostExplorerError) else describe_aws_error(error)


# --- money ----------------------------------------------------------------------------------


def _money(amount: Decimal) -> float:
    return float(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def _percent(part: Decimal, whole: Decimal) -> float | None:
    return float((part * 100 / whole).quantize(_CENT, rounding=ROUND_HALF_UP)) if whole else None


@dataclass(slots=True)
class _Split:
    attributed: Decimal = _ZERO
    unattributed: Decimal = _ZERO
    invalid: Decimal = _ZERO

    @property
    def gap(self) -> Decimal:
        return self.unattributed + self.invalid

    @property
    def total(self) -> Decimal:
        return self.attributed + self.gap


@dataclass(slots=True)
class _TagStream:
    """One tag's GetCostAndUsage answers, summed over every page and time period."""

    # (service, tag value) -> spend; the value is "" for spend without the tag
    spend: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    units: set[str] = field(default_factory=set)
    estimated: bool = False

    def service_totals(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (service, _), amount in self.spend.items():
            totals[service] += amount
        return totals


# --- validation -----------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(UTC).date()  # Cost Explorer days are UTC days


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return date(day.year + 1, 3, 1)


def _check_period(start: date, end: date) -> None:
    if start >= end:
        raise InvalidInputError(f"start {start} must be before end {end} (end is exclusive)")
    latest_end = _today() + timedelta(days=1)
    if end > latest_end:
        raise InvalidInputError(
            f"end {end} is in the future: Cost Explorer has data up to today, so end (exclusive) "
            f"can be {latest_end} at the latest"
        )
    if end > _one_year_after(start):
        raise InvalidInputError(
            f"period {start}..{end} is longer than 12 months: with MONTHLY granularity ask for 12 months "
            f"at most (end {_one_year_after(start)} at the latest for this start)"
        )


def _check_regions(regions: Sequence[str] | None) -> list[str] | None:
    if regions is None or list(regions) == ["all"]:
        return None
    region_list = list(dict.fromkeys(regions))
    if not region_list:
        raise InvalidInputError('regions is empty: name at least one region, or "all" for every region')
    return validate_region_names(region_list)


def _tags_in_scope(
    policy: TaggingPolicy, type_ids: Sequence[str], tag_keys: Sequence[str] | None
) -> list[RequiredTag]:
    """The required tags the question is about: the requested ones, or all that apply to the types."""
    required = {tag.name: tag for tag in policy.required_tags}
    if not tag_keys:
        applicable = [tag for tag in policy.required_tags if any(tag.applies(t) for t in type_ids)]
        if not applicable:
            raise InvalidInputError(f"the tagging policy requires no tag on {', '.join(type_ids)}")
        return applicable
    requested = list(dict.fromkeys(tag_keys))
    unknown = [key for key in requested if key not in required]
    if unknown:
        raise InvalidInputError(
            f"unknown tag key(s) {', '.join(map(repr, unknown))}: not required tags of the policy "
            f"(tag keys are case-sensitive); required tags: {', '.join(required) or 'none'}"
        )
    inapplicable = [key for key in requested if not any(required[key].applies(t) for t in type_ids)]
    if inapplicable:
        raise InvalidInputError(
            f"tag key(s) {', '.join(map(repr, inapplicable))} are not required on any of "
            f"{', '.join(type_ids)}"
        )
    return [required[key] for key in requested]


# --- Cost Explorer requests -----------------------------------------------------------------


def _request_filter(services: Sequence[str], regions: Sequence[str] | None) -> dict[str, Any]:
    dimensions: list[dict[str, Any]] = [{"Dimensions": {"Key": "SERVICE", "Values": list(services)}}]
    if regions is not None:
        dimensions.append({"Dimensions": {"Key": "REGION", "Values": list(regions)}})
    return dimensions[0] if len(dimensions) == 1 else {"And": dimensions}


def _pages(call: Any, params: dict[str, Any], token_field: str) -> Iterator[dict[str, Any]]:
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


def _tag_stream(ce: Any, tag_key: str, start: date, end: date, request_filter: dict[str, Any]) -> _TagStream:
    params = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "MONTHLY",
        "Metrics": [COST_METRIC],
        "Filter": request_filter,
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": tag_key}],
    }
    stream = _TagStream()
    try:
        for page in _pages(ce.get_cost_and_usage, params, "NextPageToken"):
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
            f"{_denied_or_failed(error, 'ce:GetCostAndUsage')}"
        ) from error
    return stream


def _activation(ce: Any, tag_keys: list[str]) -> tuple[dict[str, bool] | None, str | None]:
    """Whether each key is an active cost allocation tag, or None and why that is unknown."""
    active = dict.fromkeys(tag_keys, False)  # a key Cost Explorer does not list is not active
    try:
        for page in _pages(ce.list_cost_allocation_tags, {"TagKeys": tag_keys}, "NextToken"):
            for entry in page.get("CostAllocationTags") or []:
                if entry.get("TagKey") in active:
                    active[entry["TagKey"]] = entry.get("Status") == "Active"
    except (ClientError, BotoCoreError, CostExplorerError) as error:
        return None, f"ListCostAllocationTags failed: {_denied_or_failed(error, 'ce:ListCostAllocationTags')}"
    return active, None


# --- assembling the answer ------------------------------------------------------------------


def _split_by_service(
    tag: RequiredTag, stream: _TagStream, services: Sequence[str]
) -> tuple[dict[str, _Split], dict[str, Decimal]]:
    splits = {service: _Split() for service in services}
    invalid_values: dict[str, Decimal] = defaultdict(Decimal)
    for (service, value), amount in stream.spend.items():
        split = splits.setdefault(service, _Split())
        if not value.strip():
            split.unattributed += amount
        elif is_valid_value(tag, value):
            split.attributed += amount
        else:
            split.invalid += amount
            invalid_values[value] += amount
    return splits, invalid_values


def _tag_gap(tag: RequiredTag, stream: _TagStream, services: Sequence[str], activated: bool | None) -> TagGap:
    splits, invalid_values = _split_by_service(tag, stream, services)
    total = _Split(
        attributed=sum((s.attributed for s in splits.values()), _ZERO),
        unattributed=sum((s.unattributed for s in splits.values()), _ZERO),
        invalid=sum((s.invalid for s in splits.values()), _ZERO),
    )
    return TagGap(
        tag_key=tag.name,
        total_spend=_money(total.total),
        attributed_spend=_money(total.attributed),
        unattributed_spend=_money(total.unattributed),
        invalid_value_spend=_money(total.invalid),
        gap_spend=_money(total.gap),
        gap_percent=_percent(total.gap, total.total),
        tag_activated=activated,
        by_service=[
            ServiceGap(
                service=service,
                spend=_money(split.total),
                attributed_spend=_money(split.attributed),
                unattributed_spend=_money(split.unattributed),
                invalid_value_spend=_money(split.invalid),
                gap_spend=_money(split.gap),
            )
            for service, split in sorted(splits.items())
        ],
        invalid_values=[
            InvalidValueSpend(value=value, spend=_money(amount))
            for value, amount in sorted(invalid_values.items(), key=lambda item: (-item[1], item[0]))
        ],
    )


def _headline(by_tag: list[TagGap], total_spend: Decimal) -> AttributionGapHeadline:
    # A tag Cost Explorer cannot group by shows all its spend as unattributed: use the tags it can.
    candidates = [gap for gap in by_tag if gap.tag_activated is not False] or by_tag
    left_out = [gap.tag_key for gap in by_tag if gap not in candidates]
    largest = max(candidates, key=lambda gap: gap.gap_spend)  # max keeps the first of equals: policy order
    # Per-tag gaps are whole cents, so summing their decimal forms is exact.
    upper = min(sum((Decimal(str(gap.gap_spend)) for gap in candidates), _ZERO), total_spend)
    if len(candidates) == 1:
        explanation = f"Spend without a valid {largest.tag_key} value, as Cost Explorer groups it."
    else:
        explanation = (
            f"At least this much spend lacks a valid value for one of {len(candidates)} required tags: "
            f"the largest single-tag gap ({largest.tag_key}). Cost Explorer groups by at most 2 keys "
            f"(here SERVICE and one tag), so the spend missing any of the tags (the union) cannot be "
            f"computed exactly; it lies between this figure and upper_bound_spend."
        )
    if left_out:
        explanation += f" Left out, as Cost Explorer cannot group by them: {', '.join(left_out)}."
    if largest.tag_activated is False:
        explanation += (
            f" {largest.tag_key} is not an active cost allocation tag: the figure is not meaningful."
        )
    return AttributionGapHeadline(
        gap_spend=largest.gap_spend,
        gap_percent=largest.gap_percent,
        tag_key=largest.tag_key,
        tag_activated=largest.tag_activated,
        bound="exact" if len(candidates) == 1 else "lower_bound",
        upper_bound_spend=_money(upper),
        explanation=explanation,
    )


def _scope_notes(
    services: Mapping[str, list[str]],
    tag_services: Mapping[str, list[str]],
    tags: Sequence[RequiredTag],
    regions: Sequence[str] | None,
) -> list[str]:
    notes = []
    queried = {service for names in tag_services.values() for service in names}
    for service, requested in services.items():
        if service not in queried:
            notes.append(
                f"No requested tag is required on {', '.join(requested)}: {service!r} was not queried."
            )
            continue
        others = [
            row.id
            for row in REGISTRY.values()
            if row.cost_explorer_service == service and row.id not in requested
        ]
        if others:
            notes.append(
                f"Cost Explorer books {', '.join(requested)} under {service!r} together with "
                f"{', '.join(others)}, which were not requested: the service's spend and gaps include theirs."
            )
    notes.append(
        "Service spend includes charges no resource tag can carry (e.g. data transfer, requests); Cost "
        "Explorer shows them in the empty tag group, so part of every gap cannot be closed by tagging."
    )
    for tag in tags:
        exempt = [
            type_id
            for service in tag_services[tag.name]
            for type_id in services[service]
            if not tag.applies(type_id)
        ]
        if exempt:
            notes.append(
                f"{tag.name} is not required on {', '.join(exempt)}, but Cost Explorer books their spend "
                f"under the same service as types it is required on, so it counts towards {tag.name}'s gap."
            )
    if regions is None:
        notes.append("No region filter: spend in every region, including global charges, is included.")
    return notes


def _activation_notes(
    by_tag: Sequence[TagGap], status_known: bool, in_scope: Sequence[Resource] | None
) -> list[str]:
    notes = []
    for gap in by_tag:
        if gap.tag_activated is False:
            notes.append(
                f"{gap.tag_key} is not an active cost allocation tag (inactive or never seen by billing): "
                f"Cost Explorer cannot group by it, so all its spend shows as unattributed. Activate it "
                f"under Billing > Cost allocation tags."
            )
        elif not status_known and gap.total_spend and gap.unattributed_spend == gap.total_spend:
            carriers = sum(1 for resource in in_scope or () if resource.tags.get(gap.tag_key, "").strip())
            if carriers:
                notes.append(
                    f"Every dollar lands in the empty {gap.tag_key} group although {carriers} in-scope "
                    f"resource(s) carry {gap.tag_key}: it is probably not an active cost allocation tag."
                )
            elif in_scope is None:
                notes.append(
                    f"Every dollar lands in the empty {gap.tag_key} group: if resources do carry "
                    f"{gap.tag_key}, it is probably not an active cost allocation tag."
                )
    return notes


def cost_attribution_gap(
    clients: AwsClients,
    policy: TaggingPolicy,
    resource_types: Sequence[str] | None,
    regions: Sequence[str] | None,
    start: date,
    end: date,
    tag_keys: list[str] | None = None,
    resources: Sequence[Resource] | None = None,
) -> CostAttributionGap:
    """Spend of the requested types' services that each required tag cannot attribute.

    ``regions`` None (or ["all"]) means every region. ``resources``, when given (an inventory of
    the scope), adds per-resource estimates and lets a missing activation status be inferred.
    """
    type_ids = resolve_resource_types(resource_types)
    region_list = _check_regions(regions)
    _check_period(start, end)
    tags = _tags_in_scope(policy, type_ids, tag_keys)
    services: dict[str, list[str]] = defaultdict(list)  # Cost Explorer service -> requested types in it
    for type_id in type_ids:
        services[REGISTRY[type_id].cost_explorer_service].append(type_id)
    services = dict(sorted(services.items()))
    # Each tag is asked about the services of the types it is required on, and no others.
    tag_services = {
        tag.name: [service for service, members in services.items() if any(map(tag.applies, members))]
        for tag in tags
    }

    ce = _cost_explorer(clients)
    sent_before = _TALLY.sent
    activation, activation_reason = _activation(ce, [tag.name for tag in tags])
    streams = {
        tag.name: _tag_stream(ce, tag.name, start, end, _request_filter(tag_services[tag.name], region_list))
        for tag in tags
    }
    requests_sent = _TALLY.sent - sent_before

    # A service's rows are the same in every stream that covers it, only grouped differently.
    totals = {name: stream.service_totals() for name, stream in streams.items()}
    service_spend: dict[str, Decimal] = {}
    for service in services:
        covering = next((tag.name for tag in tags if service in tag_services[tag.name]), None)
        if covering is not None:  # no requested tag applies to the service's types: not queried
            service_spend[service] = totals[covering].get(service, _ZERO)
    total_spend = sum(service_spend.values(), _ZERO)
    by_tag = [
        _tag_gap(
            tag,
            streams[tag.name],
            tag_services[tag.name],
            None if activation is None else activation[tag.name],
        )
        for tag in tags
    ]
    units = sorted(set().union(*(stream.units for stream in streams.values())))
    currency = units[0] if units else DEFAULT_CURRENCY
    in_scope = (
        None
        if resources is None
        else [
            resource
            for resource in resources
            if resource.resource_type in type_ids and (region_list is None or resource.region in region_list)
        ]
    )

    notes = _scope_notes(services, tag_services, tags, region_list)
    if activation_reason is not None:
        notes.append(f"Cost allocation tag activation could not be checked ({activation_reason}).")
    notes.extend(_activation_notes(by_tag, activation is not None, in_scope))
    if len(units) > 1:
        notes.append(f"Cost Explorer reported several currencies ({', '.join(units)}): the sums mix them.")
    estimated = any(stream.estimated for stream in streams.values())
    if estimated:
        notes.append("AWS marks part of this period as estimated: figures may still change.")
    estimates = (
        [] if in_scope is None else list(estimate_resource_costs(service_spend, in_scope, currency).values())
    )
    if estimates:
        notes.append("Per-resource figures in estimates are service averages, not measured costs.")

    return CostAttributionGap(
        period=Period(start=start, end=end),
        currency=currency,
        resource_types=type_ids,
        regions=region_list,
        total_spend=_money(total_spend),
        services=[
            ServiceSpend(service=service, spend=_money(spend), resource_types=services[service])
            for service, spend in service_spend.items()
        ],
        by_tag=by_tag,
        attribution_gap=_headline(by_tag, total_spend),
        activation_status="unknown" if activation is None else "checked",
        activation_status_reason=activation_reason,
        cost_explorer_requests=requests_sent,
        estimated=estimated,
        notes=notes,
        estimates=estimates,
    )


# --- per-resource costs ---------------------------------------------------------------------


def estimate_resource_costs(
    service_spend: Mapping[str, Decimal], resources: Sequence[Resource], currency: str = DEFAULT_CURRENCY
) -> dict[str, ResourceCostEstimate]:
    """Each service's spend split evenly among the given resources of types Cost Explorer books under it.

    An estimate for when no resource-level data exists; resources of services absent from
    ``service_spend`` get none. Keyed and ordered by ARN.
    """
    members: dict[str, dict[str, Resource]] = defaultdict(dict)
    for resource in resources:
        service = get_resource_type(resource.resource_type).cost_explorer_service
        if service in service_spend:
            members[service][resource.arn] = resource
    estimates: dict[str, ResourceCostEstimate] = {}
    for service, by_arn in members.items():
        spend = service_spend[service]
        basis = (
            f"service spend {_money(spend):.2f} {currency} / {len(by_arn)} resources of types mapped to "
            f"{service} in scope"
        )
        for arn, resource in by_arn.items():
            estimates[arn] = ResourceCostEstimate(
                arn=arn,
                resource_type=resource.resource_type,
                service=service,
                cost=_money(spend / len(by_arn)),
                currency=currency,
                method="service_average_estimate",
                basis=basis,
            )
    return dict(sorted(estimates.items()))


def _check_resource_level_window(start: date, end: date) -> None:
    if start >= end:
        raise InvalidInputError(f"start {start} must be before end {end} (end is exclusive)")
    earliest = _today() - timedelta(days=RESOURCE_LEVEL_DAYS)
    latest_end = _today() + timedelta(days=1)
    if start < earliest or end > latest_end:
        raise ResourceCostsUnavailableError(
            f"resource-level costs exist only for the last {RESOURCE_LEVEL_DAYS} days: "
            f"{start}..{end} is outside {earliest}..{latest_end}"
        )


def resource_level_costs(
    clients: AwsClients, arns: Sequence[str], start: date, end: date
) -> dict[str, ResourceCostEstimate]:
    """Measured cost per resource from ``GetCostAndUsageWithResources`` (the last 14 days only).

    Raises ``ResourceCostsUnavailableError`` when the data cannot be had (window, permission,
    resource-level data not enabled, endpoint without the operation): fall back to
    ``estimate_resource_costs``. One request stream per Cost Explorer service, which it requires.
    """
    parsed = {arn: parse_arn(arn) for arn in dict.fromkeys(arns)}
    if not parsed:
        raise InvalidInputError("no ARNs given")
    _check_resource_level_window(start, end)
    by_service: dict[str, list[str]] = defaultdict(list)
    for arn, parts in parsed.items():
        by_service[REGISTRY[parts.resource_type].cost_explorer_service].append(arn)
    ce = _cost_explorer(clients)
    costs: dict[str, Decimal] = defaultdict(Decimal)  # RESOURCE_ID -> cost
    units: set[str] = set()
    for service, service_arns in sorted(by_service.items()):
        # RESOURCE_ID is the ARN for most services but the bare id for some (EC2, EBS, S3): ask for both.
        resource_ids = sorted({key for arn in service_arns for key in (arn, parsed[arn].resource_id)})
        params = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "DAILY",
            "Metrics": [COST_METRIC],
            "Filter": {
                "And": [
                    {"Dimensions": {"Key": "SERVICE", "Values": [service]}},
                    {"Dimensions": {"Key": "RESOURCE_ID", "Values": resource_ids}},
                ]
            },
            "GroupBy": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}],
        }
        try:
            for page in _pages(ce.get_cost_and_usage_with_resources, params, "NextPageToken"):
                for period in page.get("ResultsByTime") or []:
                    for group in period.get("Groups") or []:
                        metric = group["Metrics"][COST_METRIC]
                        costs[group["Keys"][0]] += Decimal(metric["Amount"])
                        units.add(metric.get("Unit") or DEFAULT_CURRENCY)
        except (ClientError, BotoCoreError, CostExplorerError) as error:
            raise ResourceCostsUnavailableError(
                f"resource-level costs are unavailable: "
                f"{_denied_or_failed(error, 'ce:GetCostAndUsageWithResources')}. They also need hourly and "
                f"resource-level data enabled in Cost Explorer's preferences."
            ) from error
    currency = min(units) if units else DEFAULT_CURRENCY
    basis = f"GetCostAndUsageWithResources grouped by RESOURCE_ID, {start}..{end} (end exclusive)"
    return {
        arn: ResourceCostEstimate(
            arn=arn,
            resource_type=parts.resource_type,
            service=REGISTRY[parts.resource_type].cost_explorer_service,
            cost=_money(costs.get(arn, _ZERO) + costs.get(parts.resource_id, _ZERO)),
            currency=currency,
            method="resource_level",
            basis=basis,
        )
        for arn, parts in sorted(parsed.items())
    }

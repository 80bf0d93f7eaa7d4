"""Per-resource costs: service-average estimates and Cost Explorer's resource-level figures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import AwsClients
from tagcompliance.compliance import Resource
from tagcompliance.errors import InvalidInputError
from tagcompliance.resources import (
    REGISTRY,
    get_resource_type,
    parse_arn,
)

from .amounts import ZERO, money, today
from .explorer import cost_explorer, denied_or_failed, pages
from .models import (
    COST_METRIC,
    DEFAULT_CURRENCY,
    RESOURCE_LEVEL_DAYS,
    CostExplorerError,
    ResourceCostEstimate,
    ResourceCostsUnavailableError,
)


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
            f"service spend {money(spend):.2f} {currency} / {len(by_arn)} resources of types mapped to "
            f"{service} in scope"
        )
        for arn, resource in by_arn.items():
            estimates[arn] = ResourceCostEstimate(
                arn=arn,
                resource_type=resource.resource_type,
                service=service,
                cost=money(spend / len(by_arn)),
                currency=currency,
                method="service_average_estimate",
                basis=basis,
            )
    return dict(sorted(estimates.items()))


def _check_resource_level_window(start: date, end: date) -> None:
    if start >= end:
        raise InvalidInputError(f"start {start} must be before end {end} (end is exclusive)")
    earliest = today() - timedelta(days=RESOURCE_LEVEL_DAYS)
    latest_end = today() + timedelta(days=1)
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
    ce = cost_explorer(clients)
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
            for page in pages(ce.get_cost_and_usage_with_resources, params, "NextPageToken"):
                for period in page.get("ResultsByTime") or []:
                    for group in period.get("Groups") or []:
                        metric = group["Metrics"][COST_METRIC]
                        costs[group["Keys"][0]] += Decimal(metric["Amount"])
                        units.add(metric.get("Unit") or DEFAULT_CURRENCY)
        except (ClientError, BotoCoreError, CostExplorerError) as error:
            raise ResourceCostsUnavailableError(
                f"resource-level costs are unavailable: "
                f"{denied_or_failed(error, 'ce:GetCostAndUsageWithResources')}. They also need hourly and "
                f"resource-level data enabled in Cost Explorer's preferences."
            ) from error
    currency = min(units) if units else DEFAULT_CURRENCY
    basis = f"GetCostAndUsageWithResources grouped by RESOURCE_ID, {start}..{end} (end exclusive)"
    return {
        arn: ResourceCostEstimate(
            arn=arn,
            resource_type=parts.resource_type,
            service=REGISTRY[parts.resource_type].cost_explorer_service,
            cost=money(costs.get(arn, ZERO) + costs.get(parts.resource_id, ZERO)),
            currency=currency,
            method="resource_level",
            basis=basis,
        )
        for arn, parts in sorted(parsed.items())
    }

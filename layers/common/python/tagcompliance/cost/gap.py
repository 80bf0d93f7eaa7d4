"""``cost_attribution_gap``: argument checks and assembling the answer from the requests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from tagcompliance.aws import AwsClients
from tagcompliance.compliance import Resource
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import RequiredTag, TaggingPolicy
from tagcompliance.resources import (
    REGISTRY,
    resolve_resource_types,
    validate_region_names,
)
from tagcompliance.suggest import is_valid_value

from .amounts import ZERO, Split, TagStream, money, percent, today
from .explorer import TALLY, cost_explorer, request_filter, tag_activation, tag_stream
from .models import (
    DEFAULT_CURRENCY,
    AccountGap,
    AttributionGapHeadline,
    CostAttributionGap,
    InvalidValueSpend,
    Period,
    ServiceGap,
    ServiceSpend,
    TagGap,
)
from .resource_costs import estimate_resource_costs


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return date(day.year + 1, 3, 1)


def _check_period(start: date, end: date) -> None:
    if start >= end:
        raise InvalidInputError(f"start {start} must be before end {end} (end is exclusive)")
    latest_end = today() + timedelta(days=1)
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


def _split_by_service(
    tag: RequiredTag, stream: TagStream, services: Sequence[str]
) -> tuple[dict[str, Split], dict[str, Decimal]]:
    splits = {service: Split() for service in services}
    invalid_values: dict[str, Decimal] = defaultdict(Decimal)
    for (service, value), amount in stream.spend.items():
        split = splits.setdefault(service, Split())
        if not value.strip():
            split.unattributed += amount
        elif is_valid_value(tag, value):
            split.attributed += amount
        else:
            split.invalid += amount
            invalid_values[value] += amount
    return splits, invalid_values


def _tag_gap(tag: RequiredTag, stream: TagStream, services: Sequence[str], activated: bool | None) -> TagGap:
    splits, invalid_values = _split_by_service(tag, stream, services)
    total = Split(
        attributed=sum((s.attributed for s in splits.values()), ZERO),
        unattributed=sum((s.unattributed for s in splits.values()), ZERO),
        invalid=sum((s.invalid for s in splits.values()), ZERO),
    )
    return TagGap(
        tag_key=tag.name,
        total_spend=money(total.total),
        attributed_spend=money(total.attributed),
        unattributed_spend=money(total.unattributed),
        invalid_value_spend=money(total.invalid),
        gap_spend=money(total.gap),
        gap_percent=percent(total.gap, total.total),
        tag_activated=activated,
        by_service=[
            ServiceGap(
                service=service,
                spend=money(split.total),
                attributed_spend=money(split.attributed),
                unattributed_spend=money(split.unattributed),
                invalid_value_spend=money(split.invalid),
                gap_spend=money(split.gap),
            )
            for service, split in sorted(splits.items())
        ],
        invalid_values=[
            InvalidValueSpend(value=value, spend=money(amount))
            for value, amount in sorted(invalid_values.items(), key=lambda item: (-item[1], item[0]))
        ],
    )


def _account_gaps(
    tags: Sequence[RequiredTag], streams: Mapping[str, TagStream], tag_key: str
) -> dict[str, AccountGap]:
    """Per account, its spend and its gap for the headline tag, the largest gap first."""
    if tag_key not in streams:
        return {}
    tag = next(tag for tag in tags if tag.name == tag_key)
    splits, _ = _split_by_service(tag, streams[tag_key], [])  # "service" here is the account
    gaps = {
        account: AccountGap(
            total_spend=money(split.total),
            gap_spend=money(split.gap),
            gap_percent=percent(split.gap, split.total),
        )
        for account, split in splits.items()
    }
    return dict(sorted(gaps.items(), key=lambda item: (-item[1].gap_spend, item[0])))


def _headline(by_tag: list[TagGap], total_spend: Decimal) -> AttributionGapHeadline:
    # A tag Cost Explorer cannot group by shows all its spend as unattributed: use the tags it can.
    candidates = [gap for gap in by_tag if gap.tag_activated is not False] or by_tag
    left_out = [gap.tag_key for gap in by_tag if gap not in candidates]
    largest = max(candidates, key=lambda gap: gap.gap_spend)  # max keeps the first of equals: policy order
    # Per-tag gaps are whole cents, so summing their decimal forms is exact.
    upper = min(sum((Decimal(str(gap.gap_spend)) for gap in candidates), ZERO), total_spend)
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
        upper_bound_spend=money(upper),
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
    accounts: Sequence[str] | None = None,
) -> CostAttributionGap:
    """Spend of the requested types' services that each required tag cannot attribute.

    ``regions`` None (or ["all"]) means every region. ``resources``, when given (an inventory of
    the scope), adds per-resource estimates and lets a missing activation status be inferred.
    ``accounts`` (asked of a management account, whose Cost Explorer holds every member's spend):
    only their spend, and the gap of each (``by_account``: one more request per tag, grouped by
    LINKED_ACCOUNT and the tag; no role is assumed).
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

    ce = cost_explorer(clients)
    sent_before = TALLY.sent
    activation, activation_reason = tag_activation(ce, [tag.name for tag in tags])
    streams = {
        tag.name: tag_stream(
            ce, tag.name, start, end, request_filter(tag_services[tag.name], region_list, accounts)
        )
        for tag in tags
    }
    account_streams = (
        {
            tag.name: tag_stream(
                ce,
                tag.name,
                start,
                end,
                request_filter(tag_services[tag.name], region_list, accounts),
                "LINKED_ACCOUNT",
            )
            for tag in tags
        }
        if accounts is not None
        else {}
    )
    requests_sent = TALLY.sent - sent_before

    # A service's rows are the same in every stream that covers it, only grouped differently.
    totals = {name: stream.service_totals() for name, stream in streams.items()}
    service_spend: dict[str, Decimal] = {}
    for service in services:
        covering = next((tag.name for tag in tags if service in tag_services[tag.name]), None)
        if covering is not None:  # no requested tag applies to the service's types: not queried
            service_spend[service] = totals[covering].get(service, ZERO)
    total_spend = sum(service_spend.values(), ZERO)
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

    headline = _headline(by_tag, total_spend)
    return CostAttributionGap(
        accounts=sorted(accounts) if accounts is not None else [],
        by_account=_account_gaps(tags, account_streams, headline.tag_key),
        period=Period(start=start, end=end),
        currency=currency,
        resource_types=type_ids,
        regions=region_list,
        total_spend=money(total_spend),
        services=[
            ServiceSpend(service=service, spend=money(spend), resource_types=services[service])
            for service, spend in service_spend.items()
        ],
        by_tag=by_tag,
        attribution_gap=headline,
        activation_status="unknown" if activation is None else "checked",
        activation_status_reason=activation_reason,
        cost_explorer_requests=requests_sent,
        estimated=estimated,
        notes=notes,
        estimates=estimates,
    )

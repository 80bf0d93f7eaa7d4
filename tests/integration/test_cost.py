"""Cost attribution against a real moto server: hand-computed figures, pagination, requests, errors.

moto answers GetCostAndUsage from a queue of canned results (each distinct request body takes the
next one) and implements neither ListCostAllocationTags nor GetCostAndUsageWithResources (HTTP
500), which exercises the "activation unknown" and the resource-level fallback paths. The demo
cost model (services/demo) answers both from an estate, for one end-to-end check.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto.ce.models import CostExplorerBackend, ce_backends
from moto.ce.responses import CostExplorerResponse
from moto.server import ThreadedMotoServer

from tagcompliance.aws import AwsClients
from tagcompliance.compliance import Resource
from tagcompliance.cost import (
    CostExplorerError,
    ResourceCostsUnavailableError,
    cost_attribution_gap,
    estimate_resource_costs,
    resource_level_costs,
)
from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import parse_policy
from tagcompliance.resources import REGISTRY
from tagcompliance.settings import Settings

EC2_OTHER = "EC2 - Other"
RDS = "Amazon Relational Database Service"
POLICY = parse_policy(
    {
        "required_tags": [
            {
                "name": "CostCenter",
                "allowed_values": ["CC-1001", "CC-1002"],
                "validation_regex": "^CC-[0-9]{4}$",
            },
            {"name": "Owner", "validation_regex": "^[a-z.]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["production", "staging"]},
            {"name": "Application", "applies_to": ["ec2:instance"]},
        ],
    }
)
START, END = date(2025, 1, 1), date(2025, 3, 1)
ACCOUNT = "123456789012"
TYPES = ["ec2:volume", "rds:db"]
# moto's own Cost Explorer, captured before any test can install the demo model over it.
_MOTO_GET_COST_AND_USAGE = CostExplorerBackend.get_cost_and_usage


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # the OS picks a free port
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_clients(endpoint: str) -> AwsClients:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return AwsClients(Settings(AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1"), session)


@pytest.fixture
def clients(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsClients:
    """Fresh Cost Explorer state and moto's own Cost Explorer behaviour (whatever ran before)."""
    monkeypatch.setattr(CostExplorerBackend, "get_cost_and_usage", _MOTO_GET_COST_AND_USAGE)
    monkeypatch.delattr(CostExplorerBackend, "list_cost_allocation_tags", raising=False)
    monkeypatch.delattr(CostExplorerResponse, "list_cost_allocation_tags", raising=False)
    # Only Cost Explorer's state: a global moto reset would wipe the shared demo estate too.
    ce_backends[ACCOUNT]["aws"].reset()
    return make_clients(endpoint)


def _post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def queue_results(endpoint: str, *results: dict[str, Any]) -> None:
    _post(f"{endpoint}/moto-api/static/ce/cost-and-usage-results", {"results": list(results)})


def group(service: str, tag_group: str, amount: str) -> dict[str, Any]:
    return {"Keys": [service, tag_group], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}


def month(start: str, end: str, *groups: dict[str, Any], estimated: bool = False) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Total": {},
        "Groups": list(groups),
        "Estimated": estimated,
    }


def page(*months: dict[str, Any], next_token: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"ResultsByTime": list(months), "DimensionValueAttributes": []}
    if next_token:
        result["NextPageToken"] = next_token
    return result


def capture_requests(clients: AwsClients) -> list[dict[str, Any]]:
    """The parameters of every GetCostAndUsage call, as the product built them."""
    sent: list[dict[str, Any]] = []
    clients.client("ce", "us-east-1").meta.events.register(
        "before-parameter-build.cost-explorer.GetCostAndUsage", lambda params, **_: sent.append(dict(params))
    )
    return sent


def answer_with(clients: AwsClients, operation: str, status: int, body: dict[str, Any]) -> None:
    """Answer ``operation`` with a canned HTTP response: for what moto cannot produce (denials)."""

    class Body:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield json.dumps(body).encode()

    def respond(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, Body())

    clients.client("ce", "us-east-1").meta.events.register(f"before-send.cost-explorer.{operation}", respond)


COST_CENTER_PAGE_1 = page(
    month(
        "2025-01-01",
        "2025-02-01",
        group(EC2_OTHER, "CostCenter$CC-1001", "100.10"),
        group(EC2_OTHER, "CostCenter$", "40.05"),
        group(RDS, "CostCenter$cc-1001", "10.50"),
    ),
    next_token="cost-center-page-2",
)
COST_CENTER_PAGE_2 = page(
    month("2025-01-01", "2025-02-01", group(RDS, "CostCenter$CC-1002", "200.25")),
    month(
        "2025-02-01",
        "2025-03-01",
        group(EC2_OTHER, "CostCenter$", "9.25"),
        group(RDS, "CostCenter$CC-1001$old", "5.00"),  # the value holds "$": invalid, not CC-1001
    ),
)
ENVIRONMENT_PAGE = page(
    month(
        "2025-01-01",
        "2025-02-01",
        group(EC2_OTHER, "Environment$production", "140.15"),
        group(RDS, "Environment$prod", "210.75"),
    ),
    month(
        "2025-02-01",
        "2025-03-01",
        group(EC2_OTHER, "Environment$", "9.25"),
        group(RDS, "Environment$staging", "5.00"),
    ),
)


def test_gap_per_tag_from_paginated_tag_groups(clients: AwsClients, endpoint: str) -> None:
    queue_results(endpoint, COST_CENTER_PAGE_1, COST_CENTER_PAGE_2, ENVIRONMENT_PAGE)
    sent = capture_requests(clients)

    result = cost_attribution_gap(
        clients,
        POLICY,
        ["ec2:volume", "ec2:snapshot", "rds:db"],
        ["us-east-1", "eu-west-1"],
        START,
        END,
        tag_keys=["CostCenter", "Environment"],
    )

    # EC2 - Other: 100.10 + 40.05 + 9.25 = 149.40; RDS: 10.50 + 200.25 + 5.00 = 215.75; total 365.15
    assert [(s.service, s.spend, s.resource_types) for s in result.services] == [
        (RDS, 215.75, ["rds:db"]),
        (EC2_OTHER, 149.40, ["ec2:volume", "ec2:snapshot"]),  # shared by two requested types: counted once
    ]
    assert result.total_spend == 365.15 and result.currency == "USD"
    cost_center, environment = result.by_tag
    # CostCenter: attributed 100.10 + 200.25; empty group 40.05 + 9.25; invalid "cc-1001" 10.50 and
    # "CC-1001$old" 5.00; gap 64.80 = 17.75 % of 365.15
    assert (
        cost_center.attributed_spend,
        cost_center.unattributed_spend,
        cost_center.invalid_value_spend,
    ) == (300.35, 49.30, 15.50)
    assert (cost_center.gap_spend, cost_center.gap_percent, cost_center.total_spend) == (64.80, 17.75, 365.15)
    assert [(v.value, v.spend) for v in cost_center.invalid_values] == [
        ("cc-1001", 10.50),
        ("CC-1001$old", 5.00),
    ]
    assert [
        (s.service, s.attributed_spend, s.unattributed_spend, s.invalid_value_spend, s.gap_spend)
        for s in cost_center.by_service
    ] == [(RDS, 200.25, 0.0, 15.50, 15.50), (EC2_OTHER, 100.10, 49.30, 0.0, 49.30)]
    # Environment: attributed 140.15 + 5.00; empty 9.25; invalid "prod" 210.75; gap 220.00 = 60.25 %
    assert (
        environment.attributed_spend,
        environment.unattributed_spend,
        environment.invalid_value_spend,
    ) == (145.15, 9.25, 210.75)
    assert (environment.gap_spend, environment.gap_percent) == (220.00, 60.25)
    assert all(tag.method == "cost_explorer_tag_group" for tag in result.by_tag)

    headline = result.attribution_gap
    assert (headline.tag_key, headline.gap_spend, headline.gap_percent, headline.bound) == (
        "Environment",
        220.00,
        60.25,
        "lower_bound",
    )
    assert headline.upper_bound_spend == 284.80  # 64.80 + 220.00, below the total
    assert "at most 2 keys" in headline.explanation and headline.method == "cost_explorer_tag_group"

    # One request stream per tag, the first over two pages; the same filter for every request.
    assert (
        len(sent) == 3 and sent[1]["NextPageToken"] == "cost-center-page-2" and "NextPageToken" not in sent[2]
    )
    assert sent[0]["Filter"] == {
        "And": [
            {"Dimensions": {"Key": "SERVICE", "Values": [RDS, EC2_OTHER]}},
            {"Dimensions": {"Key": "REGION", "Values": ["us-east-1", "eu-west-1"]}},
        ]
    }
    assert all(request["Filter"] == sent[0]["Filter"] for request in sent)
    assert [request["GroupBy"][1]["Key"] for request in sent] == ["CostCenter", "CostCenter", "Environment"]
    assert sent[0]["GroupBy"][0] == {"Type": "DIMENSION", "Key": "SERVICE"}
    assert (sent[0]["Granularity"], sent[0]["Metrics"]) == ("MONTHLY", ["UnblendedCost"])
    assert sent[0]["TimePeriod"] == {"Start": "2025-01-01", "End": "2025-03-01"}

    # 3 GetCostAndUsage pages + 1 ListCostAllocationTags attempt, each sent once (no retries of the 500).
    assert result.cost_explorer_requests == 4
    assert clients.request_counts["cost-explorer.GetCostAndUsage"] == 3
    assert clients.request_counts["cost-explorer.ListCostAllocationTags"] == 1

    assert (
        result.activation_status == "unknown" and "ListCostAllocationTags" in result.activation_status_reason
    )
    assert "500" in result.activation_status_reason
    assert [tag.tag_activated for tag in result.by_tag] == [None, None]
    assert any(
        "ec2:snapshot under 'EC2 - Other' together with ec2:natgateway, which were not requested" in note
        for note in result.notes
    )
    assert any(
        "under 'Amazon Relational Database Service' together with rds:cluster" in note
        for note in result.notes
    )
    assert result.estimates == [] and result.estimated is False


def test_single_filter_inferred_inactive_tag_and_service_average_estimates(
    clients: AwsClients, endpoint: str
) -> None:
    queue_results(
        endpoint, page(month("2025-01-01", "2025-02-01", group(EC2_OTHER, "Owner$", "30.00"), estimated=True))
    )
    sent = capture_requests(clients)
    volumes = [
        Resource(
            f"arn:aws:ec2:{region}:{ACCOUNT}:volume/vol-{n:017x}",
            "ec2:volume",
            region,
            ACCOUNT,
            f"vol-{n:017x}",
            tags,
        )
        for n, (region, tags) in enumerate(
            [
                ("us-east-1", {"Owner": "ana@example.com"}),
                ("eu-west-1", {"Owner": "bo@example.com"}),
                ("us-east-1", {}),
            ]
        )
    ]
    out_of_scope = Resource(f"arn:aws:rds:us-east-1:{ACCOUNT}:db:x", "rds:db", "us-east-1", ACCOUNT, "x", {})

    result = cost_attribution_gap(
        clients, POLICY, ["ec2:volume"], None, START, date(2025, 2, 1), ["Owner"], [*volumes, out_of_scope]
    )

    assert sent[0]["Filter"] == {"Dimensions": {"Key": "SERVICE", "Values": [EC2_OTHER]}}
    assert result.regions is None and result.cost_explorer_requests == 2
    (owner,) = result.by_tag
    assert (owner.unattributed_spend, owner.gap_spend, owner.gap_percent) == (30.00, 30.00, 100.0)
    assert result.attribution_gap.bound == "exact" and result.attribution_gap.upper_bound_spend == 30.00
    assert any(
        "2 in-scope resource(s) carry Owner: it is probably not an active cost allocation tag" in note
        for note in result.notes
    )
    assert result.estimated is True and any("estimated" in note for note in result.notes)
    # 30.00 spread over the 3 in-scope volumes of EC2 - Other; the database is not in scope.
    assert [(e.arn, e.cost, e.method) for e in result.estimates] == [
        (volume.arn, 10.00, "service_average_estimate") for volume in sorted(volumes, key=lambda v: v.arn)
    ]
    assert result.estimates[0].basis == (
        "service spend 30.00 USD / 3 resources of types mapped to EC2 - Other in scope"
    )


def test_each_tag_is_asked_about_the_services_of_the_types_it_applies_to(
    clients: AwsClients, endpoint: str
) -> None:
    compute, storage = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
    queue_results(
        endpoint,
        page(
            month(
                "2025-01-01",
                "2025-02-01",
                group(compute, "Application$pay", "50.00"),
                group(compute, "Application$", "25.00"),
            )
        ),
        page(
            month(
                "2025-01-01",
                "2025-02-01",
                group(compute, "Owner$ana@example.com", "75.00"),
                group(storage, "Owner$", "20.00"),
            )
        ),
    )
    sent = capture_requests(clients)

    result = cost_attribution_gap(
        clients,
        POLICY,
        ["ec2:instance", "s3:bucket"],
        ["us-east-1"],
        START,
        date(2025, 2, 1),
        ["Application", "Owner"],
    )

    assert [request["Filter"]["And"][0]["Dimensions"]["Values"] for request in sent] == [
        [compute],
        [compute, storage],  # Application is required on instances only
    ]
    assert [(s.service, s.spend) for s in result.services] == [(compute, 75.00), (storage, 20.00)]
    application, owner = result.by_tag
    assert (application.total_spend, application.gap_spend, application.gap_percent) == (75.00, 25.00, 33.33)
    assert (owner.total_spend, owner.gap_spend, owner.gap_percent) == (95.00, 20.00, 21.05)
    assert (result.attribution_gap.tag_key, result.attribution_gap.upper_bound_spend) == (
        "Application",
        45.00,
    )

    only_application = cost_attribution_gap(
        clients,
        POLICY,
        ["ec2:instance", "s3:bucket"],
        ["us-east-1"],
        START,
        date(2025, 2, 1),
        ["Application"],
    )

    assert [s.service for s in only_application.services] == [compute]
    assert only_application.total_spend == 75.00 and only_application.attribution_gap.bound == "exact"
    assert (
        f"No requested tag is required on s3:bucket: {storage!r} was not queried." in only_application.notes
    )


def test_bad_dates_regions_and_tag_keys_are_rejected_before_any_request(clients: AwsClients) -> None:
    today = datetime.now(UTC).date()

    def ask(
        start: date = START,
        end: date = END,
        tag_keys: list[str] | None = None,
        types=("rds:db",),
        regions=("us-east-1",),
    ) -> None:
        cost_attribution_gap(clients, POLICY, list(types), list(regions), start, end, tag_keys)

    with pytest.raises(InvalidInputError, match="must be before end"):
        ask(start=END, end=START)
    with pytest.raises(InvalidInputError, match="longer than 12 months"):
        ask(start=date(2024, 1, 1), end=date(2025, 1, 2))
    with pytest.raises(InvalidInputError, match="in the future"):
        ask(start=today, end=today + timedelta(days=2))
    with pytest.raises(InvalidInputError, match=r"unknown tag key\(s\) 'costcenter', 'Team'"):
        ask(tag_keys=["costcenter", "Team", "Owner"])
    with pytest.raises(InvalidInputError, match="'Application' are not required on any of rds:db"):
        ask(tag_keys=["Application"])
    with pytest.raises(InvalidInputError, match="not AWS region names: 'mars-1'"):
        ask(regions=["mars-1"])
    with pytest.raises(InvalidInputError, match="unknown resource type"):
        ask(types=["ec2:banana"])
    ask(start=date(2024, 1, 1), end=date(2025, 1, 1))  # exactly 12 months is allowed
    # Only the allowed question reached Cost Explorer: one request per tag required on rds:db.
    assert clients.request_counts["cost-explorer.GetCostAndUsage"] == 3


def test_access_denied_names_the_missing_permission(clients: AwsClients, endpoint: str) -> None:
    denied = {"__type": "AccessDeniedException", "Message": "not authorized to perform ce:GetCostAndUsage"}
    answer_with(clients, "GetCostAndUsage", 400, denied)

    with pytest.raises(CostExplorerError, match="IAM policy must allow ce:GetCostAndUsage"):
        cost_attribution_gap(clients, POLICY, TYPES, ["us-east-1"], START, END, ["Owner"])


def test_activation_check_denied_still_gives_figures(clients: AwsClients, endpoint: str) -> None:
    queue_results(endpoint, ENVIRONMENT_PAGE)
    answer_with(clients, "ListCostAllocationTags", 400, {"__type": "AccessDeniedException", "Message": "no"})

    denied = cost_attribution_gap(clients, POLICY, TYPES, ["us-east-1"], START, END, ["Environment"])

    assert denied.activation_status == "unknown"
    assert "must allow ce:ListCostAllocationTags" in denied.activation_status_reason
    assert denied.by_tag[0].gap_spend == 220.00


def test_inactive_tag_is_flagged_and_left_out_of_the_headline(clients: AwsClients, endpoint: str) -> None:
    queue_results(endpoint, ENVIRONMENT_PAGE, COST_CENTER_PAGE_1, COST_CENTER_PAGE_2)
    answer_with(
        clients,
        "ListCostAllocationTags",
        200,
        {
            "CostAllocationTags": [
                {"TagKey": "CostCenter", "Type": "UserDefined", "Status": "Active"},
            ]
        },
    )  # Environment is not listed: never activated

    checked = cost_attribution_gap(
        clients, POLICY, TYPES, ["us-east-1"], START, END, ["Environment", "CostCenter"]
    )

    assert checked.activation_status == "checked" and checked.activation_status_reason is None
    assert [(tag.tag_key, tag.tag_activated) for tag in checked.by_tag] == [
        ("Environment", False),
        ("CostCenter", True),
    ]
    # Environment's gap is larger, but Cost Explorer cannot group by it: the headline uses CostCenter.
    assert (checked.attribution_gap.tag_key, checked.attribution_gap.gap_spend) == ("CostCenter", 64.80)
    assert any(note.startswith("Environment is not an active cost allocation tag") for note in checked.notes)


def test_resource_level_costs_unavailable_falls_back_to_estimates(clients: AwsClients) -> None:
    today = datetime.now(UTC).date()
    arns = [f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders", f"arn:aws:rds:us-east-1:{ACCOUNT}:db:ledger"]

    started = time.monotonic()
    with pytest.raises(ResourceCostsUnavailableError, match="GetCostAndUsageWithResources answered HTTP 500"):
        resource_level_costs(clients, arns, today - timedelta(days=7), today)
    assert time.monotonic() - started < 5  # not retried with backoff
    assert clients.request_counts["cost-explorer.GetCostAndUsageWithResources"] == 1
    with pytest.raises(ResourceCostsUnavailableError, match="only for the last 14 days"):
        resource_level_costs(clients, arns, today - timedelta(days=30), today)

    databases = [Resource(arn, "rds:db", "us-east-1", ACCOUNT, arn.rsplit(":", 1)[1], {}) for arn in arns]
    fallback = estimate_resource_costs({RDS: Decimal("100.01"), EC2_OTHER: Decimal(5)}, databases)
    assert [(e.arn, e.cost, e.method) for e in fallback.values()] == [
        (arns[1], 50.01, "service_average_estimate"),  # 100.01 / 2 = 50.005, rounded half up
        (arns[0], 50.01, "service_average_estimate"),
    ]


def test_against_the_demo_cost_model(clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    demo_cost = pytest.importorskip("services.demo.cost_explorer")
    demo_estate = pytest.importorskip("services.demo.estate")
    estate = demo_estate.build_estate(7)
    policy = demo_estate.load_demo_policy()
    # install_cost_model patches moto's classes for good: record them so they are restored after.
    monkeypatch.setattr(CostExplorerBackend, "get_cost_and_usage", CostExplorerBackend.get_cost_and_usage)
    monkeypatch.setattr(CostExplorerBackend, "list_cost_allocation_tags", None, raising=False)
    monkeypatch.setattr(CostExplorerResponse, "list_cost_allocation_tags", None, raising=False)
    model = demo_cost.install_cost_model(estate, page_size=7)
    types = ["ec2:instance", "ec2:volume", "rds:db", "lambda:function", "s3:bucket"]
    regions = list(estate.regions[:2])

    result = cost_attribution_gap(clients, policy, types, regions, START, date(2025, 2, 1))

    assert [tag.tag_key for tag in result.by_tag] == ["CostCenter", "Owner", "Environment", "Application"]

    # Cost Explorer reports whole services: EC2 - Other and RDS spend include snapshots, NAT gateways and
    # clusters, which were not requested. Each tag is asked about the services of the types it applies to.
    def billed_types(applies_to: list[str]) -> list[str]:
        services = {REGISTRY[type_id].cost_explorer_service for type_id in applies_to}
        return [row.id for row in REGISTRY.values() if row.cost_explorer_service in services]

    assert set(billed_types(types)) - set(types) == {"ec2:snapshot", "ec2:natgateway", "rds:cluster"}
    expected_services = estate.expected_cost(START, date(2025, 2, 1), billed_types(types), regions)
    assert {s.service: s.spend for s in result.services} == {
        service: float(amount) for service, amount in expected_services.items()
    }
    for gap in result.by_tag:
        rule = next(tag for tag in policy.required_tags if tag.name == gap.tag_key)
        scope = billed_types([type_id for type_id in types if rule.applies(type_id)])
        spend = estate.expected_cost(START, date(2025, 2, 1), scope, regions, tag_key=gap.tag_key)
        rejected = [
            value
            for value in spend
            if value
            and (
                value not in (rule.allowed_values or [value])
                or not re.fullmatch(rule.validation_regex or ".*", value)
            )
        ]
        invalid = sum((spend[value] for value in rejected), Decimal(0))
        assert (gap.unattributed_spend, gap.invalid_value_spend) == (float(spend.get("", 0)), float(invalid))
        assert gap.total_spend == float(sum(spend.values()))
    activated = {tag.tag_key: tag.tag_activated for tag in result.by_tag}
    assert activated == {"CostCenter": True, "Owner": True, "Environment": True, "Application": False}
    assert result.attribution_gap.tag_key != "Application"
    served = model.request_counts()
    assert served["ListCostAllocationTags"] == 1 and served["GetCostAndUsage"] > 4  # pages of 7 groups
    assert result.cost_explorer_requests == served["GetCostAndUsage"] + served["ListCostAllocationTags"]

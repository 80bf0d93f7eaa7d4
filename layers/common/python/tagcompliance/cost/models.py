"""Cost attribution's vocabulary: constants, errors and the result models."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from tagcompliance.errors import TagComplianceError

COST_EXPLORER_REGION = "us-east-1"  # Cost Explorer is served from one endpoint, in us-east-1
COST_METRIC = "UnblendedCost"
RESOURCE_LEVEL_DAYS = 14  # GetCostAndUsageWithResources only holds the last 14 days
TAG_GROUP_METHOD = "cost_explorer_tag_group"
DEFAULT_CURRENCY = "USD"

CostMethod = Literal["cost_explorer_tag_group"]
EstimateMethod = Literal["service_average_estimate", "resource_level"]


class CostExplorerError(TagComplianceError):
    """Cost Explorer refused or failed a request; the message says why and what to grant or change."""


class ResourceCostsUnavailableError(CostExplorerError):
    """Resource-level costs cannot be had: fall back to ``estimate_resource_costs``."""


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


class AccountGap(BaseModel):
    """One member account's spend and its gap for the headline tag (Cost Explorer's LINKED_ACCOUNT)."""

    total_spend: float
    gap_spend: float = Field(description="Spend without a valid value of attribution_gap.tag_key.")
    gap_percent: float | None


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
    accounts: list[str] = Field(default_factory=list, description="Accounts whose spend is counted.")
    by_account: dict[str, AccountGap] = Field(default_factory=dict, description="Largest gap first.")

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


One module per part; this package re-exports their public names.
"""

from .amounts import today
from .explorer import denied_or_failed
from .gap import cost_attribution_gap
from .models import (
    COST_EXPLORER_REGION,
    COST_METRIC,
    DEFAULT_CURRENCY,
    RESOURCE_LEVEL_DAYS,
    TAG_GROUP_METHOD,
    AttributionGapHeadline,
    CostAttributionGap,
    CostExplorerError,
    CostMethod,
    EstimateMethod,
    InvalidValueSpend,
    Period,
    ResourceCostEstimate,
    ResourceCostsUnavailableError,
    ServiceGap,
    ServiceSpend,
    TagGap,
)
from .resource_costs import estimate_resource_costs, resource_level_costs

__all__ = [
    "COST_EXPLORER_REGION",
    "COST_METRIC",
    "DEFAULT_CURRENCY",
    "RESOURCE_LEVEL_DAYS",
    "TAG_GROUP_METHOD",
    "AttributionGapHeadline",
    "CostAttributionGap",
    "CostExplorerError",
    "CostMethod",
    "EstimateMethod",
    "InvalidValueSpend",
    "Period",
    "ResourceCostEstimate",
    "ResourceCostsUnavailableError",
    "ServiceGap",
    "ServiceSpend",
    "TagGap",
    "cost_attribution_gap",
    "denied_or_failed",
    "estimate_resource_costs",
    "resource_level_costs",
    "today",
]

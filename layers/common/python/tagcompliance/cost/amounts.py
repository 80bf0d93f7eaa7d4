"""Money and days as Cost Explorer counts them: cents, percentages, spend splits, one tag's spend,
today's UTC date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

_CENT = Decimal("0.01")
ZERO = Decimal(0)


def money(amount: Decimal) -> float:
    return float(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def percent(part: Decimal, whole: Decimal) -> float | None:
    return float((part * 100 / whole).quantize(_CENT, rounding=ROUND_HALF_UP)) if whole else None


@dataclass(slots=True)
class Split:
    attributed: Decimal = ZERO
    unattributed: Decimal = ZERO
    invalid: Decimal = ZERO

    @property
    def gap(self) -> Decimal:
        return self.unattributed + self.invalid

    @property
    def total(self) -> Decimal:
        return self.attributed + self.gap


@dataclass(slots=True)
class TagStream:
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


def today() -> date:
    return datetime.now(UTC).date()  # Cost Explorer days are UTC days

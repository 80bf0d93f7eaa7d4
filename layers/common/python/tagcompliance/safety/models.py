"""What the safety layer answers instead of a tool's result: a clarification, an intent commit or a
dry run. Every estimate it carries is labelled as one, with its method."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "warning"]


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "<1s"
    if seconds < 120:
        return f"{round(seconds)}s"
    return f"{round(seconds / 60)}min"


def format_usd(amount: float) -> str:
    return f"${amount:.3f}" if amount < 1 else f"${amount:.2f}"


class EstimatedScope(BaseModel):
    """Estimated size and cost of an operation (never a measurement)."""

    model_config = ConfigDict(frozen=True)

    resources: int | None = Field(description="Estimated resources in scope; None when unknown.")
    api_calls: int = Field(description="Estimated AWS requests.")
    cost_explorer_requests: int = 0
    estimated_cost_usd: float = Field(description="Estimated Cost Explorer spend in USD ($0.01 per request).")
    estimated_cost: str
    seconds: float
    estimated_time: str
    complete: bool = Field(description="False when part of the scope has no stored inventory (unknown).")
    basis: str
    method: str
    by_region: dict[str, int] = Field(default_factory=dict)
    by_type: dict[str, int] = Field(default_factory=dict)


class ScopeOption(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: list[str] | str
    estimated_resources: int | None
    estimated_api_calls: int
    estimated_time: str
    estimated_cost: str | None = None
    requires_approval: bool = False
    note: str | None = None


class Ambiguity(BaseModel):
    model_config = ConfigDict(frozen=True)

    parameter: str
    question: str
    options: list[ScopeOption]


class RegretWarning(BaseModel):
    """A predicted regret: a common mistake this request may be making."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    parameter: str
    severity: Severity
    message: str
    learned: bool = Field(
        default=False,
        description="Raised earlier than by default because this organization's users "
        "repeatedly corrected this parameter after the warning.",
    )


class SampleSuggestion(BaseModel):
    """Progressive disclosure: a smaller scope under the thresholds to run first, and how to expand."""

    model_config = ConfigDict(frozen=True)

    parameters: dict[str, Any]
    estimated_resources: int
    how_to_expand: str


class IntentCommit(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation: str
    parameters: dict[str, Any]
    estimated_scope: EstimatedScope
    writes: str | None = Field(default=None, description="What the operation changes, when it writes.")
    assumptions: list[str] = Field(default_factory=list)
    potential_regrets: list[str] = Field(default_factory=list)
    warnings: list[RegretWarning] = Field(default_factory=list)
    details: dict[str, Any] | None = Field(
        default=None,
        description="What exactly the operation will do, when it says more than its parameters (a tag "
        "remediation: every resource's tags before -> after); the confirmation token binds it.",
    )


class SafetyResponse(BaseModel):
    """Returned instead of the tool's result when the request needs clarifying or confirming, or for a
    dry run. Nothing was scanned or changed."""

    safety: Literal["clarification_needed", "intent_commit", "dry_run"]
    clarification_needed: bool = False
    ambiguities: list[Ambiguity] = Field(default_factory=list)
    intent_commit: IntentCommit | None = None
    approval_required: bool = False
    approval_reasons: list[str] = Field(default_factory=list)
    confirmation_token: str | None = Field(
        default=None,
        description="Single-use; call the same tool again with exactly the committed parameters plus "
        "confirmation_token to execute. Bound to the caller; expires at token_expires_at.",
    )
    token_expires_at: datetime | None = None
    sample: SampleSuggestion | None = None
    proceed: str
    belief_id: str
    executed: bool = Field(default=False, description="Always false: nothing was scanned or changed.")

"""Safety thresholds and rule settings per organization: settings defaults, overridden per org."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tagcompliance.errors import InvalidInputError
from tagcompliance.settings import Settings

RULE_IDS = ("region_coverage", "excluded_types", "overwrite_existing")


class RuleSettings(BaseModel):
    """A regret rule's trigger levels: the default one, and the earlier one learned from corrections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_share: float = Field(ge=0, le=1)
    learned_share: float = Field(ge=0, le=1)


DEFAULT_RULES: dict[str, RuleSettings] = {
    # Chosen regions hold at most this share of the types' known resources (0 = none at all).
    "region_coverage": RuleSettings(default_share=0.0, learned_share=0.5),
    # Excluded types hold at least this share of the known resources in the chosen regions.
    "excluded_types": RuleSettings(default_share=0.5, learned_share=0.2),
    # Share of targeted resources whose existing value would be overwritten (any, by default).
    "overwrite_existing": RuleSettings(default_share=0.0, learned_share=0.0),
}


class SafetyPolicy(BaseModel):
    """Thresholds past which an operation needs explicit approval, and the regret rules' settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organization: str
    enabled: bool = True
    max_resources: int = Field(default=500, ge=0)
    max_api_calls: int = Field(default=2000, ge=0)
    max_cost_explorer_requests: int = Field(default=10, ge=0)
    all_regions_require_approval: bool = True
    require_explicit_scope: bool = True
    token_ttl_seconds: int = Field(default=600, ge=10, le=86_400)
    regret_learn_after: int = Field(default=2, ge=1, le=100)
    disabled_rules: list[str] = Field(default_factory=list)
    rules: dict[str, RuleSettings] = Field(default_factory=lambda: dict(DEFAULT_RULES))

    @classmethod
    def for_organization(cls, settings: Settings, organization: str | None = None) -> SafetyPolicy:
        org = organization or settings.safety_organization
        values: dict[str, Any] = {
            "organization": org,
            "enabled": settings.safety_enabled,
            "max_resources": settings.safety_max_resources,
            "max_api_calls": settings.safety_max_api_calls,
            "max_cost_explorer_requests": settings.safety_max_cost_explorer_requests,
            "all_regions_require_approval": settings.safety_all_regions_require_approval,
            "require_explicit_scope": settings.safety_require_explicit_scope,
            "token_ttl_seconds": settings.safety_token_ttl_seconds,
            "regret_learn_after": settings.safety_regret_learn_after,
        }
        overrides = dict(settings.safety_organizations.get(org) or {})
        rules = dict(DEFAULT_RULES)
        for rule_id, rule_values in dict(overrides.pop("rules", None) or {}).items():
            if rule_id not in DEFAULT_RULES:
                raise InvalidInputError(f"SAFETY_ORGANIZATIONS[{org!r}]: unknown regret rule {rule_id!r}")
            rules[rule_id] = RuleSettings(**{**DEFAULT_RULES[rule_id].model_dump(), **rule_values})
        unknown_disabled = set(overrides.get("disabled_rules") or []) - set(RULE_IDS)
        if unknown_disabled:
            raise InvalidInputError(
                f"SAFETY_ORGANIZATIONS[{org!r}]: unknown regret rule(s) {sorted(unknown_disabled)}; "
                f"rules: {', '.join(RULE_IDS)}"
            )
        try:
            return cls(**{**values, **overrides, "rules": rules})
        except ValidationError as error:
            raise InvalidInputError(f"SAFETY_ORGANIZATIONS[{org!r}] is not valid: {error}") from None

    def rule_enabled(self, rule_id: str) -> bool:
        return rule_id not in self.disabled_rules

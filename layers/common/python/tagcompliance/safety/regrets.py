"""Regret prediction: rules that warn before common mistakes, and learn from corrections.

* ``region_coverage`` (parameter ``regions``): the chosen regions hold none of the requested types
  while other regions hold some (by default); once learned, also when they hold less than the
  learned share (default half) of them.
* ``excluded_types`` (parameter ``resource_types``): the types left out hold most (default half or
  more; learned: a fifth) of the resources in the chosen regions. Measured by resource count from
  the stored inventory: the store holds no per-type spend without a Cost Explorer call.
* ``overwrite_existing`` (parameter ``tag_values``): a remediation would overwrite values
  resources already carry.

Learning: a warning shown to a caller is resolved on that caller's next call of the same tool:
``corrected`` if the warned parameter changed, ``kept`` otherwise. When an organization's users
have corrected a rule's parameter ``regret_learn_after`` times, the rule uses its learned (earlier)
trigger for that organization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python

from tagcompliance.store.base import RegretEventRecord, SafetyStore

from .models import RegretWarning
from .policy import SafetyPolicy
from .tokens import Caller


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def region_coverage(
    policy: SafetyPolicy,
    learned: bool,
    regions: Sequence[str],
    counts_by_region: Mapping[str, int],
) -> RegretWarning | None:
    """``counts_by_region``: the requested types' known resources per region, all stored regions."""
    rule = policy.rules["region_coverage"]
    total = sum(counts_by_region.values())
    chosen = sum(counts_by_region.get(region, 0) for region in regions)
    others = {region: count for region, count in counts_by_region.items() if region not in regions and count}
    if not others:
        return None
    share = _share(chosen, total)
    where = ", ".join(f"{region} ({count})" for region, count in sorted(others.items(), key=lambda i: -i[1]))
    if chosen == 0:
        return RegretWarning(
            rule_id="region_coverage",
            parameter="regions",
            severity="warning",
            message=f"The stored inventory has none of these resource types in {', '.join(regions)}, "
            f"but other regions hold some: {where}. Check the region before scanning.",
            learned=False,
        )
    threshold = rule.learned_share if learned else rule.default_share
    if share < threshold:
        return RegretWarning(
            rule_id="region_coverage",
            parameter="regions",
            severity="warning",
            message=f"{', '.join(regions)} hold{'s' if len(regions) == 1 else ''} only {chosen} of the "
            f"{total} known resources of these types ({share:.0%}); other regions hold more: {where}.",
            learned=learned,
        )
    return None


def excluded_types(
    policy: SafetyPolicy,
    learned: bool,
    resource_types: Sequence[str],
    counts_by_type: Mapping[str, int],
) -> RegretWarning | None:
    """``counts_by_type``: known resources per type (every type) in the chosen regions."""
    rule = policy.rules["excluded_types"]
    total = sum(counts_by_type.values())
    excluded = {t: c for t, c in counts_by_type.items() if t not in resource_types and c}
    share = _share(sum(excluded.values()), total)
    threshold = rule.learned_share if learned else rule.default_share
    if not excluded or share < threshold:
        return None
    biggest = sorted(excluded.items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{type_id} ({count})" for type_id, count in biggest[:4])
    more = f" and {len(biggest) - 4} more types" if len(biggest) > 4 else ""
    return RegretWarning(
        rule_id="excluded_types",
        parameter="resource_types",
        severity="warning" if learned else "info",
        message=f"This will only check {', '.join(resource_types)}. {named}{more} will not be included: "
        f"{share:.0%} of the known resources in these regions (by resource count).",
        learned=learned,
    )


def overwrite_existing(
    policy: SafetyPolicy, tag_values: Mapping[str, str], current_tags: Mapping[str, Mapping[str, str]]
) -> RegretWarning | None:
    """``current_tags``: the stored tags of the resources the remediation targets, by ARN."""
    overwritten = {
        arn: sorted(key for key, value in tag_values.items() if tags.get(key) not in (None, "", value))
        for arn, tags in current_tags.items()
    }
    overwritten = {arn: keys for arn, keys in overwritten.items() if keys}
    rule = policy.rules["overwrite_existing"]
    if not overwritten or _share(len(overwritten), len(current_tags)) < rule.default_share:
        return None
    sample = "; ".join(f"{arn}: {', '.join(keys)}" for arn, keys in sorted(overwritten.items())[:3])
    return RegretWarning(
        rule_id="overwrite_existing",
        parameter="tag_values",
        severity="warning",
        message=f"Applying these tag values would overwrite existing values on {len(overwritten)} of "
        f"{len(current_tags)} resources (e.g. {sample}).",
    )


class RegretLearner:
    """Records warnings shown and what the caller did next; says which rules are learned."""

    def __init__(self, store: SafetyStore) -> None:
        self.store = store

    def learned_rules(self, policy: SafetyPolicy) -> set[str]:
        counts = self.store.regret_correction_counts(policy.organization)
        return {rule for rule, count in counts.items() if count >= policy.regret_learn_after}

    def resolve_open(
        self, organization: str, caller: Caller, tool_name: str, parameters: Mapping[str, Any]
    ) -> list[RegretEventRecord]:
        """Resolve this caller's open warnings for the tool against the new call's parameters."""
        now = datetime.now(UTC)
        resolved = []
        for event in self.store.open_regret_events(organization, caller.user_id, tool_name):
            current = to_jsonable_python(parameters.get(event.parameter))
            status = "kept" if current == event.value else "corrected"
            if self.store.resolve_regret_event(event.id or 0, status, now):
                resolved.append(event)
        return resolved

    def record_shown(
        self,
        organization: str,
        caller: Caller,
        tool_name: str,
        warnings: Sequence[RegretWarning],
        parameters: Mapping[str, Any],
    ) -> None:
        now = datetime.now(UTC)
        for warning in warnings:
            self.store.record_regret_event(
                RegretEventRecord(
                    created_at=now,
                    organization=organization,
                    user_id=caller.user_id,
                    tool_name=tool_name,
                    rule_id=warning.rule_id,
                    parameter=warning.parameter,
                    value=to_jsonable_python(parameters.get(warning.parameter)),
                )
            )

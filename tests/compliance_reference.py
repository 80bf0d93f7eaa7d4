"""The plain compliance loop ``tagcompliance.compliance.evaluate`` must always equal.

Every rule on every resource, one ``Violation`` at a time: the tests compare the fast path with it
over random policies and tag maps. Test code, so it does not ship in the Lambda layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tagcompliance.compliance import CompiledPolicy, Resource, Violation


@dataclass(slots=True)
class ReferenceEvaluation:
    violations: list[Violation]
    scanned: int
    compliant: int
    without_requirements: int
    noncompliant_arns: set[str]


def evaluate_reference(resources: Iterable[Resource], compiled: CompiledPolicy) -> ReferenceEvaluation:
    """The plain loop: every rule on every resource, one Violation at a time."""
    violations: list[Violation] = []
    scanned = compliant = without_requirements = 0
    noncompliant: set[str] = set()
    for resource in resources:
        rules = compiled.rules.get(resource.resource_type, ())
        if not rules and not compiled.prohibited:
            without_requirements += 1
            continue
        scanned += 1
        tags = resource.tags
        found: list[Violation] = []
        for rule in rules:
            value = tags.get(rule.name)
            if value is None:
                actual = None
                for key in tags:
                    if key.lower() == rule.lower:
                        actual = key
                if actual is not None and tags[actual].strip():
                    found.append(
                        Violation(
                            resource.arn,
                            resource.resource_type,
                            resource.region,
                            "wrong_key_case",
                            rule.name,
                            tags[actual],
                            "error",
                            actual,
                        )
                    )
                else:
                    found.append(
                        Violation(
                            resource.arn,
                            resource.resource_type,
                            resource.region,
                            "missing_tag",
                            rule.name,
                            None,
                            "error",
                        )
                    )
            elif value.strip() == "":
                found.append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "missing_tag",
                        rule.name,
                        value,
                        "error",
                    )
                )
            elif rule.allowed is not None and not (
                value in rule.allowed or (rule.allowed_match is not None and rule.allowed_match(value))
            ):
                found.append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "invalid_value",
                        rule.name,
                        value,
                        "error",
                    )
                )
            elif rule.matches is not None and rule.matches(value) is None:
                found.append(
                    Violation(
                        resource.arn,
                        resource.resource_type,
                        resource.region,
                        "invalid_format",
                        rule.name,
                        value,
                        "error",
                    )
                )
        for key in sorted(set(compiled.prohibited) & set(tags)):
            found.append(
                Violation(
                    resource.arn,
                    resource.resource_type,
                    resource.region,
                    "prohibited_tag",
                    key,
                    tags[key],
                    "warning",
                )
            )
        violations.extend(found)
        if found:
            noncompliant.add(resource.arn)
        else:
            compliant += 1
    return ReferenceEvaluation(violations, scanned, compliant, without_requirements, noncompliant)

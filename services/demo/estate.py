"""The demo AWS estate: a pure, deterministic definition of every resource the demo account holds.

Nothing here talks to AWS. ``build_estate(seed)`` always returns the same estate for the same seed,
and every resource carries what a correct compliance check must report for it
(``expected_violations``), derived from the defects the generator injected and the tagging policy's
``applies_to`` -- never from the product's engine -- so tests can hold the product to it. Costs are
defined here too, so Cost Explorer answers (served by ``services.demo.cost_explorer``) and their
expected values come from the same definition.

The estate is organised as workloads: an application deployed in one environment and region. A
workload's resources share a name prefix (``payments-api-prod-01``), the same intended tags, often a
VPC and sometimes a CloudFormation stack tag, which gives sibling-based tag suggestions something
to find.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal, NamedTuple

from tagcompliance.policy import TaggingPolicy, parse_policy
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS

POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "tagging_policy.json"
REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1")
STACK_TAG = "aws:cloudformation:stack-name"
# Application is deliberately not activated: grouping spend by it in Cost Explorer finds nothing.
ACTIVATED_COST_ALLOCATION_TAGS: frozenset[str] = frozenset({"CostCenter", "Environment", "Owner"})

DefectKind = Literal[
    "missing", "empty_value", "invalid_value", "invalid_format", "wrong_case", "never_tagged"
]
ViolationType = Literal["missing_tag", "wrong_key_case", "invalid_value", "invalid_format"]
DEFECT_KINDS: tuple[DefectKind, ...] = (
    "missing",
    "empty_value",
    "invalid_value",
    "invalid_format",
    "wrong_case",
    "never_tagged",
)


class Defect(NamedTuple):
    """What the generator did to a resource's intended tags; ``tag_key`` is None for never_tagged."""

    kind: DefectKind
    tag_key: str | None


class ExpectedViolation(NamedTuple):
    violation_type: ViolationType
    tag_key: str


# The violation each defect must produce, when the tag applies to the resource's type. An empty
# value counts as missing; a key in the wrong case is its own violation.
_VIOLATION_OF: dict[DefectKind, ViolationType] = {
    "missing": "missing_tag",
    "empty_value": "missing_tag",
    "invalid_value": "invalid_value",
    "invalid_format": "invalid_format",
    "wrong_case": "wrong_key_case",
}


@dataclass(frozen=True)
class EstateResource:
    """One resource of the estate, with the answer a correct compliance check gives for it.

    ``tags`` is exactly what the resource carries in AWS; None means it was created without any
    tag ("never tagged"). ``intended_tags`` is what it would carry without the injected defects:
    the right answer for a tag suggestion. For EC2 types and EFS the name is the ``Name`` tag, so
    a never-tagged one has no name in AWS. ``vpc`` names the estate VPC (per region) the resource
    was created in; ``parent`` is the key of the resource it lives in (ECS service -> cluster).
    """

    key: str
    resource_type: str
    region: str
    name: str
    tags: dict[str, str] | None
    intended_tags: dict[str, str]
    defects: list[Defect]
    expected_violations: list[ExpectedViolation]
    daily_cost_usd: Decimal
    application: str
    environment: str
    parent: str | None = None
    vpc: str | None = None

    @property
    def compliant(self) -> bool:
        return not self.expected_violations

    @property
    def cost_explorer_service(self) -> str:
        return REGISTRY[self.resource_type].cost_explorer_service


@dataclass(frozen=True)
class ExpectedSummary:
    """What a compliance check over a slice of the estate must report."""

    total: int
    compliant: int
    violations_by_type: dict[str, int]
    noncompliant_keys: frozenset[str]

    @property
    def noncompliant(self) -> int:
        return len(self.noncompliant_keys)

    @property
    def compliance_score(self) -> float | None:
        return round(self.compliant / self.total, 4) if self.total else None


@dataclass(frozen=True)
class Estate:
    seed: int
    resources: tuple[EstateResource, ...]
    activated_cost_allocation_tags: frozenset[str] = ACTIVATED_COST_ALLOCATION_TAGS
    regions: tuple[str, ...] = REGIONS
    _by_key: dict[str, EstateResource] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {resource.key: resource for resource in self.resources})

    def get(self, key: str) -> EstateResource:
        return self._by_key[key]

    def by_type(self) -> dict[str, list[EstateResource]]:
        grouped: dict[str, list[EstateResource]] = defaultdict(list)
        for resource in self.resources:
            grouped[resource.resource_type].append(resource)
        return dict(grouped)

    def by_region(self) -> dict[str, list[EstateResource]]:
        grouped: dict[str, list[EstateResource]] = defaultdict(list)
        for resource in self.resources:
            grouped[resource.region].append(resource)
        return dict(grouped)

    def select(
        self, resource_types: Iterable[str] | None = None, regions: Iterable[str] | None = None
    ) -> list[EstateResource]:
        """Resources of the given types in the given regions (None means all)."""
        types = set(resource_types) if resource_types is not None else None
        wanted_regions = set(regions) if regions is not None else None
        return [
            resource
            for resource in self.resources
            if (types is None or resource.resource_type in types)
            and (wanted_regions is None or resource.region in wanted_regions)
        ]

    def expected_summary(
        self, resource_types: Iterable[str] | None = None, regions: Iterable[str] | None = None
    ) -> ExpectedSummary:
        selected = self.select(resource_types, regions)
        violations = Counter(
            violation.violation_type for resource in selected for violation in resource.expected_violations
        )
        return ExpectedSummary(
            total=len(selected),
            compliant=sum(resource.compliant for resource in selected),
            violations_by_type=dict(violations),
            noncompliant_keys=frozenset(resource.key for resource in selected if not resource.compliant),
        )

    # --- cost ------------------------------------------------------------------------------

    def cost_tag_value(self, resource: EstateResource, tag_key: str) -> str:
        """The value Cost Explorer attributes the resource's spend to for ``tag_key``.

        Keys match case-sensitively; "" (the empty group) means the resource lacks that exact key,
        has an empty value, or the key is not an activated cost allocation tag.
        """
        if tag_key not in self.activated_cost_allocation_tags:
            return ""
        return (resource.tags or {}).get(tag_key, "")

    def expected_cost(
        self,
        start: date,
        end: date,
        resource_types: Iterable[str] | None = None,
        regions: Iterable[str] | None = None,
        *,
        tag_key: str | None = None,
    ) -> dict[str, Decimal]:
        """Spend from ``start`` (inclusive) to ``end`` (exclusive) grouped as Cost Explorer groups it:
        per service, or per value of ``tag_key`` ("" is the empty group)."""
        days = _days(start, end)
        spend: dict[str, Decimal] = defaultdict(Decimal)
        for resource in self.select(resource_types, regions):
            group = (
                resource.cost_explorer_service if tag_key is None else self.cost_tag_value(resource, tag_key)
            )
            spend[group] += resource.daily_cost_usd * days
        return dict(spend)


def _days(start: date, end: date) -> int:
    if end <= start:
        raise ValueError(f"period end {end} must be after its start {start}")
    return (end - start).days


# --- the expected answer -------------------------------------------------------------------


def load_demo_policy(path: Path = POLICY_PATH) -> TaggingPolicy:
    return parse_policy(json.loads(path.read_text(encoding="utf-8")), str(path))


def expected_violations_for(
    resource_type: str, defects: Iterable[Defect], policy: TaggingPolicy
) -> list[ExpectedViolation]:
    """The violations the defects must produce: only for required tags that apply to the type.

    Ordered as the policy lists its required tags, one violation per tag at most.
    """
    by_tag: dict[str, ViolationType] = {}
    applicable = [tag.name for tag in policy.required_for(resource_type)]
    for defect in defects:
        if defect.kind == "never_tagged":
            by_tag.update(dict.fromkeys(applicable, "missing_tag"))
        elif defect.tag_key in applicable:
            by_tag[defect.tag_key] = _VIOLATION_OF[defect.kind]
    return [ExpectedViolation(by_tag[name], name) for name in applicable if name in by_tag]


# --- the workloads -------------------------------------------------------------------------


@dataclass(frozen=True)
class _App:
    name: str
    cost_center: str
    owner: str


@dataclass(frozen=True)
class _Workload:
    app: _App
    environment: str
    region: str
    stack: bool  # deployed by CloudFormation: its resources carry the stack-name tag

    @property
    def env_short(self) -> str:
        return _ENV_SHORT[self.environment]

    @property
    def vpc(self) -> str:
        if self.app.name == "analytics":
            return "analytics"
        return "shared-prod" if self.environment == "production" else "shared-nonprod"

    @property
    def stack_name(self) -> str:
        return f"{self.app.name}-{self.environment}-{_REGION_CODE[self.region]}"


_ENV_SHORT = {"production": "prod", "staging": "stg", "development": "dev", "test": "test"}
_REGION_CODE = {"us-east-1": "use1", "us-west-2": "usw2", "eu-west-1": "euw1"}
_APPS = {
    app.name: app
    for app in (
        _App("payments", "CC-1001", "payments-team@example.com"),
        _App("checkout", "CC-1001", "checkout.team@example.com"),
        _App("catalog", "CC-1002", "catalog-owners@example.com"),
        _App("search", "CC-1002", "search.platform@example.com"),
        _App("analytics", "CC-2001", "data-eng@example.com"),
        _App("ledger", "CC-2001", "finance-eng@example.com"),
        _App("identity", "CC-3001", "identity-team@example.com"),
        _App("notify", "CC-3001", "messaging@example.com"),
    )
}
# (application, environment, region, deployed by CloudFormation)
_WORKLOADS: tuple[_Workload, ...] = tuple(
    _Workload(_APPS[app], environment, region, stack)
    for app, environment, region, stack in (
        ("payments", "production", "us-east-1", True),
        ("payments", "production", "eu-west-1", True),
        ("payments", "staging", "us-east-1", True),
        ("payments", "development", "us-east-1", False),
        ("checkout", "production", "us-east-1", False),
        ("checkout", "production", "us-west-2", False),
        ("checkout", "test", "us-west-2", True),
        ("catalog", "production", "us-west-2", True),
        ("catalog", "development", "us-west-2", False),
        ("search", "production", "eu-west-1", False),
        ("search", "staging", "eu-west-1", True),
        ("analytics", "production", "us-east-1", True),
        ("analytics", "development", "us-east-1", False),
        ("ledger", "production", "eu-west-1", True),
        ("ledger", "test", "eu-west-1", False),
        ("identity", "production", "us-east-1", False),
        ("identity", "staging", "us-west-2", True),
        ("notify", "production", "us-east-1", True),
        ("notify", "test", "eu-west-1", False),
        ("notify", "development", "us-west-2", False),
    )
)


@dataclass(frozen=True)
class _TypePlan:
    count: int
    components: tuple[str, ...]  # the middle word of names: payments-<component>-prod-01
    daily_cents: tuple[int, int]  # production daily cost range; other environments cost less
    in_vpc: bool = False
    name_tag: bool = False  # the type's name is its Name tag (EC2, EFS)


_PLANS: dict[str, _TypePlan] = {
    "ec2:instance": _TypePlan(52, ("api", "worker", "web"), (240, 4800), in_vpc=True, name_tag=True),
    "ec2:volume": _TypePlan(40, ("data", "logs"), (10, 520), name_tag=True),
    "ec2:snapshot": _TypePlan(10, ("backup",), (5, 180), name_tag=True),
    "ec2:natgateway": _TypePlan(6, ("nat",), (108, 420), in_vpc=True, name_tag=True),
    "rds:db": _TypePlan(9, ("db",), (600, 6400), in_vpc=True),
    "rds:cluster": _TypePlan(6, ("aurora",), (1200, 8800)),
    "s3:bucket": _TypePlan(36, ("assets", "logs", "exports"), (5, 2400)),
    "lambda:function": _TypePlan(40, ("handler", "etl", "webhook"), (1, 360)),
    "ecs:cluster": _TypePlan(6, ("cluster",), (10, 100)),
    "ecs:service": _TypePlan(12, ("svc",), (150, 2200)),
    "eks:cluster": _TypePlan(4, ("eks",), (240, 240), in_vpc=True),
    "dynamodb:table": _TypePlan(30, ("state", "events", "sessions"), (50, 1600)),
    "elasticache:cluster": _TypePlan(6, ("cache",), (40, 1600)),
    "elasticfilesystem:file-system": _TypePlan(6, ("share",), (30, 900), name_tag=True),
    "opensearch:domain": _TypePlan(4, ("search",), (300, 5200)),
    "sns:topic": _TypePlan(28, ("alerts", "events"), (1, 60)),
    "sqs:queue": _TypePlan(34, ("jobs", "dlq"), (1, 110)),
    "elasticloadbalancing:loadbalancer": _TypePlan(6, ("alb",), (60, 300), in_vpc=True),
    "kinesis:stream": _TypePlan(6, ("stream",), (36, 720)),
    "secretsmanager:secret": _TypePlan(28, ("db-credentials", "api-key"), (1, 5)),
}
if set(_PLANS) != set(RESOURCE_TYPE_IDS):
    raise RuntimeError("services.demo.estate needs a plan for every registry type")

# Values the generator injects: each one breaks the policy the way its defect kind says.
_INVALID_VALUES = {
    "Environment": ("prod", "Production", "dev", "qa", "stage"),
    "CostCenter": ("CC-9999", "cc-1001", "1001", "CC-10O1", "finance"),
}
_INVALID_OWNERS = ("John Smith", "jsmith", "Jane.Doe@Example.com", "ops@example.org", "payments team")
_WRONG_CASE = {
    "CostCenter": ("costcenter", "Costcenter", "COSTCENTER"),
    "Owner": ("owner", "OWNER"),
    "Environment": ("environment", "ENVIRONMENT"),
    "Application": ("application",),
}
_COMPLIANT_SHARE = 0.45
_NEVER_TAGGED_SHARE = 0.08
_SECOND_DEFECT_SHARE = 0.25
# Compliant resources of types Application does not apply to that carry "application" anyway:
# a key in the wrong case that must NOT be reported, because the rule does not apply.
_DECOYS = 8
_DEFECT_CYCLE: tuple[DefectKind, ...] = (
    "missing",
    "empty_value",
    "invalid_value",
    "invalid_format",
    "wrong_case",
)


def _intended_tags(
    plan: _TypePlan,
    workload: _Workload,
    name: str,
    policy: TaggingPolicy,
    resource_type: str,
    with_project: bool,
) -> dict[str, str]:
    values = {
        "CostCenter": workload.app.cost_center,
        "Owner": workload.app.owner,
        "Environment": workload.environment,
        "Application": workload.app.name,
    }
    tags = {tag.name: values[tag.name] for tag in policy.required_for(resource_type)}
    if plan.name_tag:
        tags["Name"] = name
    if with_project:
        tags["Project"] = f"{workload.app.name}-platform"
    # S3 refuses user-set "aws:" keys (as AWS does), so buckets never carry the stack tag.
    if workload.stack and resource_type != "s3:bucket":
        tags[STACK_TAG] = workload.stack_name
    return tags


def _defect_keys(kind: DefectKind, applicable: list[str]) -> list[str]:
    """Required tags a defect of ``kind`` can sensibly hit on a resource."""
    if kind == "invalid_value":
        return [key for key in applicable if key in _INVALID_VALUES]
    if kind == "invalid_format":
        return [key for key in applicable if key == "Owner"]
    return applicable


def _inject(tags: dict[str, str], defect: Defect, rng: random.Random) -> None:
    key = defect.tag_key
    if key is None:
        raise ValueError(f"a {defect.kind} defect names no tag")
    if defect.kind == "missing":
        del tags[key]
    elif defect.kind == "empty_value":
        tags[key] = ""
    elif defect.kind == "invalid_value":
        tags[key] = rng.choice(_INVALID_VALUES[key])
    elif defect.kind == "invalid_format":
        tags[key] = rng.choice(_INVALID_OWNERS)
    elif defect.kind == "wrong_case":
        value = tags.pop(key)
        tags[rng.choice(_WRONG_CASE[key])] = value


def _pick_defects(applicable: list[str], first: DefectKind, rng: random.Random) -> list[Defect]:
    defects = [Defect(first, rng.choice(_defect_keys(first, applicable)))]
    if rng.random() < _SECOND_DEFECT_SHARE:
        kind = rng.choice([kind for kind in _DEFECT_CYCLE if kind != first])
        keys = [key for key in _defect_keys(kind, applicable) if key != defects[0].tag_key]
        if keys:
            defects.append(Defect(kind, rng.choice(keys)))
    return defects


@dataclass
class _Slot:
    """A resource before its tags are decided."""

    resource_type: str
    workload: _Workload
    name: str
    parent: str | None = None


def _slots(rng: random.Random) -> list[_Slot]:
    slots: list[_Slot] = []
    counters: Counter[tuple[str, str, str]] = Counter()

    def name_for(resource_type: str, workload: _Workload, component: str) -> str:
        prefix = f"{workload.app.name}-{component}-{workload.env_short}"
        if resource_type == "s3:bucket":  # bucket names are global: the region code keeps them unique
            prefix = f"{prefix}-{_REGION_CODE[workload.region]}"
        counters[(resource_type, workload.region, prefix)] += 1
        return f"{prefix}-{counters[(resource_type, workload.region, prefix)]:02d}"

    ecs_clusters: list[_Slot] = []
    for resource_type in RESOURCE_TYPE_IDS:  # registry order puts ECS clusters before services
        plan = _PLANS[resource_type]
        workloads = list(_WORKLOADS)
        rng.shuffle(workloads)
        for index in range(plan.count):
            if resource_type == "ecs:service":  # services live in the estate's clusters, round-robin
                cluster = ecs_clusters[index % len(ecs_clusters)]
                workload, parent = cluster.workload, _key(cluster)
            else:
                workload, parent = workloads[index % len(workloads)], None
            # One component word per workload and type, so bulk types get same-prefix siblings.
            component = plan.components[_WORKLOADS.index(workload) % len(plan.components)]
            slot = _Slot(resource_type, workload, name_for(resource_type, workload, component), parent)
            slots.append(slot)
            if resource_type == "ecs:cluster":
                ecs_clusters.append(slot)
    return slots


def _key(slot: _Slot) -> str:
    return f"{slot.resource_type}/{slot.workload.region}/{slot.name}"


def _daily_cost(plan: _TypePlan, workload: _Workload, rng: random.Random) -> Decimal:
    low, high = plan.daily_cents
    cents = rng.randint(low, high)
    if workload.environment != "production":
        cents = max(1, cents * 3 // 10)
    return Decimal(cents).scaleb(-2)


def build_estate(seed: int = 7, policy: TaggingPolicy | None = None) -> Estate:
    """The demo estate for ``seed``: same seed, same estate (names, tags, defects and costs)."""
    policy = policy or load_demo_policy()
    rng = random.Random(seed)
    slots = _slots(rng)

    never_tagged = round(len(slots) * _NEVER_TAGGED_SHARE)
    compliant = round(len(slots) * _COMPLIANT_SHARE)
    defective = len(slots) - never_tagged - compliant
    profiles: list[DefectKind | None] = [
        *(["never_tagged"] * never_tagged),
        *([None] * compliant),
        *(_DEFECT_CYCLE[index % len(_DEFECT_CYCLE)] for index in range(defective)),
    ]
    rng.shuffle(profiles)
    decoys_left = _DECOYS

    resources: list[EstateResource] = []
    for slot, profile in zip(slots, profiles, strict=True):
        plan = _PLANS[slot.resource_type]
        applicable = [tag.name for tag in policy.required_for(slot.resource_type)]
        intended = _intended_tags(
            plan, slot.workload, slot.name, policy, slot.resource_type, with_project=rng.random() < 0.3
        )
        tags: dict[str, str] | None = dict(intended)
        defects: list[Defect] = []
        if profile == "never_tagged":
            tags, defects = None, [Defect("never_tagged", None)]
        elif profile is not None:
            defects = _pick_defects(applicable, profile, rng)
        elif decoys_left and "Application" not in applicable:
            decoys_left -= 1
            tags["Application"] = slot.workload.app.name
            defects = [Defect("wrong_case", "Application")]
        for defect in defects:
            if tags is not None:
                _inject(tags, defect, rng)
        resources.append(
            EstateResource(
                key=_key(slot),
                resource_type=slot.resource_type,
                region=slot.workload.region,
                name=slot.name,
                tags=tags,
                intended_tags=intended,
                defects=defects,
                expected_violations=expected_violations_for(slot.resource_type, defects, policy),
                daily_cost_usd=_daily_cost(plan, slot.workload, rng),
                application=slot.workload.app.name,
                environment=slot.workload.environment,
                parent=slot.parent,
                vpc=slot.workload.vpc if plan.in_vpc else None,
            )
        )
    return Estate(seed=seed, resources=tuple(resources))

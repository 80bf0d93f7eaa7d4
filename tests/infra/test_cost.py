"""``make cost``: the README's table is what the priced templates give, and the targets hold
(dev <= $150, prod <= $400 a month at minimum capacity, prod keeping Multi-AZ database and cache)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stacks.config import ENVIRONMENT_NAMES
from stacks.cost import LineItem, cost_table, price, total

from .conftest import STACK_KINDS, Synthesized

README = Path(__file__).resolve().parents[2] / "README.md"
PRICED_KINDS = [kind for kind in STACK_KINDS if kind != "registry"]  # shared by the environments


def _priced(synthesized: dict[str, Synthesized]) -> dict[str, list[LineItem]]:
    return {
        env: price(synthesized[env].template(kind).to_json() for kind in PRICED_KINDS)
        for env in ENVIRONMENT_NAMES
    }


def test_the_readme_shows_what_make_cost_prints(synthesized: dict[str, Synthesized]) -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- make cost: start -->\n(.*?)\n<!-- make cost: end -->", text, re.S)
    assert match, "README.md has no make cost table"
    assert match[1] == cost_table(_priced(synthesized)), "README's cost table is stale: paste `make cost`"


def test_the_targets_hold_with_prods_multi_az_database_and_cache(synthesized: dict[str, Synthesized]) -> None:
    priced = _priced(synthesized)
    assert total(priced["dev"]) <= 150
    assert total(priced["prod"]) <= 400
    prod = {item.item: item for item in priced["prod"]}
    assert "Multi-AZ" in prod["RDS PostgreSQL instance"].detail
    assert prod["ElastiCache Redis nodes"].detail.startswith("2 x")
    (group,) = synthesized["prod"].resources("data", "AWS::ElastiCache::ReplicationGroup").values()
    assert group["Properties"]["MultiAZEnabled"] is True


def test_every_item_is_priced_from_the_template(synthesized: dict[str, Synthesized]) -> None:
    """The numbers follow the templates: two NAT gateways more is two NAT gateways' price more."""
    dev = synthesized["dev"]
    templates = [dev.template(kind).to_json() for kind in PRICED_KINDS]
    base = {item.item: item.monthly for item in price(templates)}
    network = templates[PRICED_KINDS.index("network")]
    nat = next(r for r in network["Resources"].values() if r["Type"] == "AWS::EC2::NatGateway")
    network["Resources"] = {**network["Resources"], "ExtraNat1": nat, "ExtraNat2": nat}
    more = {item.item: item.monthly for item in price(templates)}
    assert more["NAT gateways"] == pytest.approx(3 * base["NAT gateways"])
    assert {k: v for k, v in more.items() if k != "NAT gateways"} == {
        k: v for k, v in base.items() if k != "NAT gateways"
    }


def test_an_unpriced_instance_class_is_a_clear_error(synthesized: dict[str, Synthesized]) -> None:
    templates = [synthesized["dev"].template(kind).to_json() for kind in PRICED_KINDS]
    data = templates[PRICED_KINDS.index("data")]
    for resource in data["Resources"].values():
        if resource["Type"] == "AWS::RDS::DBInstance":
            resource["Properties"]["DBInstanceClass"] = "db.x9.huge"
    with pytest.raises(SystemExit, match=r"no price for RDS instance class 'x9\.huge'"):
        price(templates)

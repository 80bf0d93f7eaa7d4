"""The connection budget per environment, recomputed from the synthesized templates: every
PostgreSQL connection the deployment can open fits the database's max_connections with margin."""

from __future__ import annotations

import math

import pytest
from aws_cdk import App

from stacks.budget import (
    BLUE_GREEN_PEAK_FACTOR,
    MARGIN,
    SUPERUSER_RESERVED_CONNECTIONS,
    connection_budget,
    max_connections,
)
from stacks.config import cdk_json_context, load_config
from stacks.constructs.pipeline import discover_handlers

from .conftest import Synthesized
from .test_variants import _gateway_environment


def test_the_deployed_connections_fit_the_database(synth: Synthesized) -> None:
    """From the templates alone: task ceiling and pool, functions' reserved concurrency and pool."""
    (scalable,) = synth.resources("gateway", "AWS::ApplicationAutoScaling::ScalableTarget").values()
    gateway_pool = int(_gateway_environment(synth)["DATABASE_POOL_SIZE"])
    gateway = BLUE_GREEN_PEAK_FACTOR * scalable["Properties"]["MaxCapacity"] * gateway_pool
    functions = synth.resources("pipeline", "AWS::Lambda::Function").values()
    lambdas = 0
    for function in functions:
        props = function["Properties"]
        assert "ReservedConcurrentExecutions" in props, props["Handler"]  # unbounded otherwise
        pool = int(props["Environment"]["Variables"]["DATABASE_POOL_SIZE"])
        lambdas += props["ReservedConcurrentExecutions"] * pool
    (database,) = synth.resources("data", "AWS::RDS::DBInstance").values()
    instance_class = database["Properties"]["DBInstanceClass"].removeprefix("db.")
    allowed = math.floor((max_connections(instance_class) - SUPERUSER_RESERVED_CONNECTIONS) * (1 - MARGIN))
    proxies = synth.resources("data", "AWS::RDS::DBProxyTargetGroup").values()
    for target_group in proxies:  # through the proxy the database sees at most its share
        percent = target_group["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"]
        assert percent * max_connections(instance_class) / 100 >= lambdas  # room for every function
        lambdas = math.floor(percent * max_connections(instance_class) / 100)
    assert gateway + lambdas <= allowed, (synth.env, gateway, lambdas, allowed)
    assert synth.deployment.budget.total == gateway + lambdas
    assert synth.deployment.budget.limit == allowed


def test_t4g_micro_allows_112_connections_by_rds_formula() -> None:
    assert max_connections("t4g.micro") == 112  # 1 GiB / 9531392 bytes
    assert max_connections("r7g.xlarge") == 3604
    with pytest.raises(SystemExit, match=r"db_instance_type 'x9\.huge' has no known memory size"):
        max_connections("x9.huge")


def test_a_configuration_over_budget_stops_the_synth_with_the_numbers() -> None:
    """The issue's original shape: a pool of 10 in up to 10 tasks on a db.t4g.micro."""
    context = cdk_json_context()
    environments = context["environments"]
    prod = {**environments["prod"], "gateway_db_pool_size": 10}
    app = App(context={**context, "env": "prod", "environments": {**environments, "prod": prod}})
    config = load_config(app)
    keys = [spec.key for spec in discover_handlers()]
    with pytest.raises(SystemExit) as stopped:
        connection_budget(config, keys)
    message = str(stopped.value)
    assert "prod: PostgreSQL connections could exceed the database's" in message
    assert "gateway 20 tasks at peak x pool 10 = 200" in message
    assert "of 81 allowed (db.t4g.micro max_connections 112" in message

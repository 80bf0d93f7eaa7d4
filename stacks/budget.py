"""The connection budget: every PostgreSQL connection the deployment can open fits the database.

Who connects, at the most:

* the gateway: ``DATABASE_POOL_SIZE`` per task x the task count at its peak. The peak is twice
  ``gateway_max_capacity``: a blue/green deployment starts the new revision at full size beside the
  old one, and auto-scaling may have the old one at its maximum.
* the Lambdas: their reserved concurrency (so it is bounded) x ``LAMBDA_POOL_SIZE``. Through RDS
  Proxy, the proxy opens at most ``MaxConnectionsPercent`` of ``max_connections``; that percentage
  is derived from the same demand, so the database sees the same bound either way.

The database allows ``max_connections`` (RDS PostgreSQL's default: ``LEAST(DBInstanceClassMemory /
9531392, 5000)``) less the superuser's reserved connections. ``DBInstanceClassMemory`` is the
class's memory less what the OS and RDS processes take, so the nominal memory used here overstates
it a little; the margin covers that and leaves room for an operator's ``psql`` and migrations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacks.config import AppConfig

# Memory (GiB) of the DB instance classes this app may use (cdk.json db_instance_type, no "db.").
DB_INSTANCE_MEMORY_GIB: dict[str, float] = {
    "t4g.micro": 1, "t4g.small": 2, "t4g.medium": 4, "t4g.large": 8, "t4g.xlarge": 16,
    "t3.micro": 1, "t3.small": 2, "t3.medium": 4, "t3.large": 8,
    "m7g.large": 8, "m7g.xlarge": 16, "m6g.large": 8, "m6g.xlarge": 16,
    "r7g.large": 16, "r7g.xlarge": 32, "r6g.large": 16, "r6g.xlarge": 32,
}  # fmt: skip
BYTES_PER_CONNECTION = 9_531_392  # RDS PostgreSQL's max_connections formula
MAX_CONNECTIONS_CAP = 5000
SUPERUSER_RESERVED_CONNECTIONS = 3  # PostgreSQL's superuser_reserved_connections default
MARGIN = 0.25
# A Lambda instance handles one event at a time and each store call holds one connection.
LAMBDA_POOL_SIZE = 1
BLUE_GREEN_PEAK_FACTOR = 2
SCAN_FUNCTION_KEY = "scan-batch"  # the Distributed Map's function: its own concurrency (the fan-out)


def max_connections(instance_type: str) -> int:
    """RDS PostgreSQL's default ``max_connections`` of an instance class (``t4g.micro`` -> 112)."""
    if instance_type not in DB_INSTANCE_MEMORY_GIB:
        raise SystemExit(
            f"db_instance_type {instance_type!r} has no known memory size for the connection budget: add it "
            f"to stacks/budget.py DB_INSTANCE_MEMORY_GIB (known: {', '.join(DB_INSTANCE_MEMORY_GIB)})"
        )
    memory = DB_INSTANCE_MEMORY_GIB[instance_type] * 1024**3
    return min(int(memory // BYTES_PER_CONNECTION), MAX_CONNECTIONS_CAP)


def reserved_concurrency(config: AppConfig, function_key: str) -> int:
    env = config.env
    return env.lambda_scan_concurrency if function_key == SCAN_FUNCTION_KEY else env.lambda_step_concurrency


@dataclass(frozen=True)
class ConnectionBudget:
    instance_type: str
    max_connections: int
    gateway_peak_tasks: int
    gateway_pool_size: int
    lambda_concurrency: int  # the functions' reserved concurrency, summed
    via_proxy: bool

    @property
    def gateway(self) -> int:
        return self.gateway_peak_tasks * self.gateway_pool_size

    @property
    def lambda_demand(self) -> int:
        return self.lambda_concurrency * LAMBDA_POOL_SIZE

    @property
    def proxy_max_connections_percent(self) -> int:
        """RDS Proxy's ``MaxConnectionsPercent``: room for every Lambda connection, no more."""
        return min(100, math.ceil(100 * self.lambda_demand / self.max_connections))

    @property
    def lambdas(self) -> int:
        """What the Lambdas can hold open on the database (through the proxy: its ceiling)."""
        if self.via_proxy:
            return math.floor(self.proxy_max_connections_percent * self.max_connections / 100)
        return self.lambda_demand

    @property
    def total(self) -> int:
        return self.gateway + self.lambdas

    @property
    def limit(self) -> int:
        """Connections the deployment may use: ``max_connections`` less the reserved, less the margin."""
        return math.floor((self.max_connections - SUPERUSER_RESERVED_CONNECTIONS) * (1 - MARGIN))

    def describe(self) -> str:
        path = "through RDS Proxy" if self.via_proxy else "direct"
        return (
            f"gateway {self.gateway_peak_tasks} tasks at peak x pool {self.gateway_pool_size} = "
            f"{self.gateway}; "
            f"Lambdas {self.lambda_concurrency} reserved concurrency x {LAMBDA_POOL_SIZE} ({path}) = "
            f"{self.lambdas}; total {self.total} of {self.limit} allowed (db.{self.instance_type} "
            f"max_connections {self.max_connections} - {SUPERUSER_RESERVED_CONNECTIONS} reserved, "
            f"{MARGIN:.0%} margin)"
        )


def connection_budget(config: AppConfig, function_keys: list[str]) -> ConnectionBudget:
    """The environment's budget; a deployment that could exceed it stops the synth."""
    env = config.env
    budget = ConnectionBudget(
        instance_type=env.db_instance_type,
        max_connections=max_connections(env.db_instance_type),
        gateway_peak_tasks=BLUE_GREEN_PEAK_FACTOR * env.gateway_max_capacity,
        gateway_pool_size=env.gateway_db_pool_size,
        lambda_concurrency=sum(reserved_concurrency(config, key) for key in function_keys),
        via_proxy=env.rds_proxy,
    )
    if budget.total > budget.limit:
        raise SystemExit(
            f"{config.env_name}: PostgreSQL connections could exceed the database's: {budget.describe()}. "
            "Lower gateway_db_pool_size, gateway_max_capacity or the Lambda concurrency, or pick a larger "
            "db_instance_type in cdk.json"
        )
    return budget

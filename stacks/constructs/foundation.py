"""``Foundation``: what every capability construct after the network and the secrets is built on,
handed to each as one value instead of the same four arguments apiece."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.budget import ConnectionBudget
from stacks.config import AppConfig

from .network import Network
from .secrets import Secrets


@dataclass(frozen=True)
class Foundation:
    """The environment's configuration and connection budget, its VPC and its secrets."""

    config: AppConfig
    budget: ConnectionBudget
    network: Network
    secrets: Secrets

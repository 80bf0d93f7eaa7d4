"""Fixtures for end-to-end tests: the gateway against the seeded moto estate, via the official client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server

from .helpers import gateway_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def aws_env(demo_aws: DemoAws) -> Iterator[DemoAws]:
    """Credentials and endpoint in the environment, as a user's shell would have them."""
    patch = pytest.MonkeyPatch()
    for name, value in demo_aws.environment.items():
        patch.setenv(name, value)
    for name in ("DATABASE_URL", "REDIS_URL", "POLICY_PATH", "SCAN_REGIONS", "DATA_DIR"):
        patch.delenv(name, raising=False)
    yield demo_aws
    patch.undo()


@pytest.fixture(scope="module")
def runtime(aws_env: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    built = build_runtime(gateway_settings(aws_env, tmp_path_factory.mktemp("gateway")), "memory")
    yield built
    built.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with Client(build_server(runtime)) as connected:
        yield connected

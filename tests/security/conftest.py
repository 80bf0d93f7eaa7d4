"""The security regression suite (issue 13): each attack tried against the gateway's OAuth
authorization server, as a test that failed on the code before the fix.

The gateway and the test IdP run as real HTTP servers on 127.0.0.1 (``tests/auth/conftest.py``);
the browser tests drive Debian's Chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from services.demo.aws import DemoAws
from tests.auth.conftest import (  # noqa: F401 - fixtures shared with tests/auth
    AuthStack,
    any_stack,
    anyio_backend,
    pg_stack,
    running_stack,
    stack,
)


def register(gateway: AuthStack, redirect_uris: list[str], **metadata: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway.issuer}/register",
        json={
            "client_name": "security-tests",
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "tag:read admin",
            **metadata,
        },
        timeout=30,
    )


@pytest.fixture(scope="module")
def limited_stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """A gateway allowing 5 requests a minute per endpoint and address, counted in Redis."""
    with running_stack(
        demo_aws,
        tmp_path_factory.mktemp("limited-gateway"),
        settings_overrides={"AUTH_RATE_LIMIT_PER_MINUTE": 5, "REDIS_URL": "redis://127.0.0.1:6379/0"},
    ) as running:
        assert running.runtime.cache.backend == "redis"
        yield running


@pytest.fixture(scope="module")
def limited_memory_stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """The same limit, counted in the gateway's memory (no REDIS_URL)."""
    with running_stack(
        demo_aws,
        tmp_path_factory.mktemp("limited-memory"),
        settings_overrides={"AUTH_RATE_LIMIT_PER_MINUTE": 5},
    ) as running:
        assert running.runtime.cache.backend == "memory"
        yield running

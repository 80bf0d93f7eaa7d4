"""Issue 13, attack 5 (``/health``): the unauthenticated ``/health`` showed absolute paths, the AWS
endpoint, the IdP issuer and the database user, host and name. In public it now answers liveness
only; the details go to a loopback client that no proxy forwarded, or to an ``admin`` token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest

from services.demo.aws import DemoAws
from tests.auth.conftest import AuthStack, running_stack
from tests.conftest import fresh_postgres_database

from .conftest import user_token

pytestmark = pytest.mark.anyio

DATABASE_PASSWORD = "pg-Pa55word-never-shown"
PROXIED = [
    {"X-Forwarded-For": "203.0.113.7"},
    {"Forwarded": "for=203.0.113.7;proto=https"},
    {"X-Real-IP": "203.0.113.7"},
]


@pytest.fixture(scope="module")
def pg_password_stack(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    """The gateway on PostgreSQL whose URL carries a password (the server trusts loopback, so any
    password connects: the point is where it shows up)."""
    with fresh_postgres_database() as url:
        with_password = url.replace("postgres@", f"postgres:{DATABASE_PASSWORD}@", 1)
        assert with_password != url
        with running_stack(demo_aws, tmp_path_factory.mktemp("health-pg"), with_password) as running:
            yield running


def health_url(stack: AuthStack) -> str:
    return stack.mcp_url.removesuffix("/mcp") + "/health"


@pytest.mark.parametrize("proxied", PROXIED)
async def test_public_health_is_liveness_only(pg_password_stack: AuthStack, proxied: dict[str, str]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(health_url(pg_password_stack), headers=proxied)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_reader_token_does_not_unlock_details(pg_password_stack: AuthStack) -> None:
    reader = user_token(pg_password_stack, "reader@example.com")
    async with httpx.AsyncClient() as http:
        for token in (reader, "not-a-token"):
            response = await http.get(
                health_url(pg_password_stack),
                headers={**PROXIED[0], "Authorization": f"Bearer {token}"},
            )
            assert response.json() == {"status": "ok"}


async def test_details_for_an_admin_token_and_for_loopback_never_hold_the_password(
    pg_password_stack: AuthStack,
) -> None:
    admin = user_token(pg_password_stack, "root@example.com", "tag:read admin")
    async with httpx.AsyncClient() as http:
        from_admin = await http.get(
            health_url(pg_password_stack), headers={**PROXIED[0], "Authorization": f"Bearer {admin}"}
        )
        from_loopback = await http.get(health_url(pg_password_stack))
    for response in (from_admin, from_loopback):
        details = response.json()
        assert details["status"] == "ok" and details["store"]["backend"] == "postgresql", details
        assert DATABASE_PASSWORD not in response.text
        assert "aws_endpoint" in details and "auth" in details

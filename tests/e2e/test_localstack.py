"""The LocalStack path: ``USE_LOCALSTACK`` resolves the endpoint through localstack-client.

LocalStack itself needs docker (and, since 2026, an auth token), so the demo estate's moto server on
loopback stands in for it: it speaks the same AWS wire protocol on one edge port, which is all the
product relies on. The gateway runs as a real process given only ``USE_LOCALSTACK`` and
``LOCALSTACK_HOST`` (no ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mcp import Client, StdioServerParameters
from pydantic import ValidationError

from services.demo.aws import DemoAws
from tagcompliance.settings import Settings

from .helpers import REPO_ROOT, call
from .test_transports import gateway_environment

pytestmark = pytest.mark.anyio

SCOPE = {"resource_types": ["sqs:queue"], "regions": ["eu-west-1"]}


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment names no endpoint (other tests of the session may have set one)."""
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_HOST", "USE_LOCALSTACK", "USE_SSL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_endpoint")
def test_localstack_endpoint_is_resolved_by_localstack_client() -> None:
    assert Settings().aws_endpoint_url is None
    assert Settings(USE_LOCALSTACK="true").aws_endpoint_url == "http://localhost:4566"
    assert Settings(USE_LOCALSTACK="true", LOCALSTACK_HOST="127.0.0.1").aws_endpoint_url == (
        "http://127.0.0.1:4566"
    )
    assert Settings(USE_LOCALSTACK="true", LOCALSTACK_HOST="ls.internal:4510").aws_endpoint_url == (
        "http://ls.internal:4510"
    )
    # LOCALSTACK_HOST alone changes nothing: LocalStack is used only when asked for
    assert Settings(LOCALSTACK_HOST="127.0.0.1:4510").aws_endpoint_url is None


@pytest.mark.usefixtures("no_endpoint")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"LOCALSTACK_HOST": "localhost:edge"}, "LOCALSTACK_HOST='localhost:edge' is not HOST[:PORT]"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "both name the AWS endpoint: set one of them"),
    ],
)
def test_contradictory_or_malformed_localstack_settings_are_refused(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings(USE_LOCALSTACK="true", **overrides)


async def test_the_gateway_reaches_aws_through_the_localstack_endpoint(
    demo_aws: DemoAws, tmp_path: Path
) -> None:
    environment = gateway_environment(demo_aws, tmp_path)
    environment.pop("AWS_ENDPOINT_URL")
    environment.update({"USE_LOCALSTACK": "true", "LOCALSTACK_HOST": urlparse(demo_aws.endpoint_url).netloc})
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tag_compliance_mcp", "--transport", "stdio"],
        env=environment,
        cwd=str(REPO_ROOT),
    )
    async with Client(parameters) as client:
        result = await call(client, "check_tag_compliance", **SCOPE)
    expected = demo_aws.estate.expected_summary(**SCOPE)
    assert expected.total > 0
    assert (result["total_resources"], result["compliant_resources"]) == (expected.total, expected.compliant)

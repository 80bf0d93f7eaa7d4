"""Issue 16: the gateway as three real processes behind a real round-robin load balancer (HAProxy on
loopback, every request balanced on its own, no stickiness), sharing PostgreSQL, Redis (a server of
its own, so nothing an earlier run cached answers), the audit ledger (DynamoDB) and the signing key
(Secrets Manager) on moto, as ECS tasks behind the ALB do.

The official mcp client logs in with OAuth (the gateway is the authorization server, login at the
test IdP) and runs the spec's flow: clarification, intent commit, confirm with the token, a job
started and polled, the job's answer paged with a cursor. Each step's request is located in the
processes' access logs, and the test requires the steps that depend on an earlier one (the
confirmation, each poll, the cached answer, the next page) to have been served by a process other
than the one that served that earlier step: otherwise it would prove nothing about sharing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx2 as httpx
import pytest
from joserfc.jwk import RSAKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.balancer import GatewayCluster, balanced_gateways, private_redis
from services.demo.aws import DemoAws
from services.demo.testidp import TestOidcProvider
from tagcompliance.audits import snapshot_id_for
from tests.auth.conftest import ALICE, ServerThread, free_port, oauth_client_for
from tests.conftest import fresh_postgres_database
from tests.pipeline.ledger_tables import ledger_table
from tests.security.inflight import PING, calls_held_in_flight, headers

from .test_transports import gateway_environment

pytestmark = pytest.mark.anyio
T = TypeVar("T")
PROCESSES = 3
TYPES = ["sqs:queue", "sns:topic"]
REGIONS = ["us-east-1", "us-west-2"]
PAGE_SIZE = 2
CALLS_IN_FLIGHT_PER_USER = 3


def connect(url: str, auth: httpx.Auth) -> Client:
    """The official client with generous HTTP timeouts (httpx's default is 5 s): three gateways, the
    balancer, PostgreSQL, Redis and moto share two busy cores here."""
    return Client(streamable_http_client(url, http_client=httpx.AsyncClient(auth=auth, timeout=120)))


@dataclass
class Balanced:
    cluster: GatewayCluster
    idp: TestOidcProvider


@pytest.fixture(scope="module")
def balanced(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    workdir = tmp_path_factory.mktemp("balanced")
    region = demo_aws.regions[0]
    lb_port, idp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{lb_port}"
    idp = TestOidcProvider(
        issuer=f"http://127.0.0.1:{idp_port}", redirect_uris=[f"{base}/oauth/callback"], user=ALICE
    )
    environment = pytest.MonkeyPatch()  # credentials for boto3 here (the ledger table, the secret)
    for name, value in demo_aws.environment.items():
        environment.setenv(name, value)
    suffix = secrets.token_hex(4)
    secretsmanager = demo_aws.client("secretsmanager", region)
    # The deployed way: every task signs with the one key in Secrets Manager.
    key_arn = secretsmanager.create_secret(
        Name=f"tag-compliance-lb/signing-key-{suffix}",
        SecretString=RSAKey.generate_key(2048, private=True).as_pem(private=True).decode(),
    )["ARN"]
    try:
        with (
            fresh_postgres_database() as database_url,
            private_redis(workdir) as redis_url,
            ledger_table(f"tagc-lb-ledger-{suffix}", region, demo_aws.endpoint_url) as ledger,
            ServerThread(idp.app(), idp_port),
        ):
            gateway_env = {
                name: value
                for name, value in gateway_environment(demo_aws, workdir).items()
                if not name.startswith(("AUTH_", "MCP_"))
            }
            gateway_env.update(
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                AUDIT_LEDGER_TABLE=ledger.table_name,
                AUDIT_LEDGER_REGION=region,
                # Every check is "too long for one call": the confirmed check becomes an audit job.
                AUDIT_ASYNC_THRESHOLD_SECONDS="0.000001",
                LOCAL_SCHEDULER_INTERVAL_SECONDS="0",
                AUTH_IDP_ISSUER_URL=idp.issuer,
                AUTH_IDP_CLIENT_ID=idp.client_id,
                AUTH_IDP_CLIENT_SECRET=idp.client_secret,
                AUTH_PUBLIC_URL=base,
                AUTH_SIGNING_KEY_SECRET_ARN=key_arn,
                MCP_MAX_CALLS_IN_FLIGHT_PER_USER=str(CALLS_IN_FLIGHT_PER_USER),
            )
            with balanced_gateways(PROCESSES, gateway_env, workdir, balancer_port=lb_port) as cluster:
                yield Balanced(cluster, idp)
    finally:
        secretsmanager.delete_secret(SecretId=key_arn, ForceDeleteWithoutRecovery=True)
        environment.undo()


async def served_by(cluster: GatewayCluster, call: Awaitable[T]) -> tuple[T, int]:
    """Await one MCP request made through the balancer; return its result and the process that
    answered it (the one whose access log gained the line)."""
    before = cluster.served()
    result = await call
    deadline = time.monotonic() + 5
    while True:  # uvicorn writes the access line as the answer starts; allow for the file write
        after = cluster.served()
        grown = [index for index, (old, new) in enumerate(zip(before, after, strict=True)) if new > old]
        if sum(after) - sum(before) >= 1 or time.monotonic() > deadline:
            break
        await anyio.sleep(0.05)
    assert sum(after) - sum(before) == 1 and len(grown) == 1, (before, after)
    return result, grown[0]


async def tool(
    cluster: GatewayCluster, client: Client, name: str, **arguments: Any
) -> tuple[dict[str, Any], int]:
    result, process = await served_by(cluster, client.call_tool(name, arguments))
    assert not result.is_error, f"{name} failed on gateway {process}: {result.content}"
    assert result.structured_content is not None
    return result.structured_content, process


async def test_the_spec_flow_across_three_processes_with_oauth(balanced: Balanced, demo_aws: DemoAws) -> None:
    cluster = balanced.cluster
    oauth_lines = ['"POST /register', '"GET /authorize', '"GET /oauth/callback', '"POST /token']
    login = oauth_client_for(cluster.url, "tag:read")
    scope = {"resource_types": TYPES, "regions": REGIONS, "page_size": PAGE_SIZE}
    async with connect(cluster.url, login.provider) as client:
        # The client lists the tools once (it validates results against their output schemas): done
        # here, so that each step below is exactly one request.
        await client.list_tools()
        # "Check my compliance": which types and regions?
        clarification, clarified_on = await tool(cluster, client, "check_tag_compliance")
        assert clarification["safety"] == "clarification_needed", clarification
        # The answer, following the clarification: an intent commit (the clarification was remembered
        # in the store, whichever process serves this call).
        commit, committed_on = await tool(cluster, client, "check_tag_compliance", **scope)
        assert commit["safety"] == "intent_commit", commit
        token = commit["confirmation_token"]
        # Confirmed with the token another process issued: the scan is too long for one call, a job.
        started, confirmed_on = await tool(
            cluster, client, "check_tag_compliance", **scope, confirmation_token=token
        )
        assert confirmed_on != committed_on
        job = started["job"]
        assert job is not None and job["status"] == "running", started
        run_id = job["run_id"]
        # Polled on whichever process: the job runs in the one that started it and reports its
        # progress to the shared ledger.
        polled_on: list[int] = []
        with anyio.fail_after(90):
            while True:
                status, process = await tool(cluster, client, "get_audit_status", run_id=run_id)
                polled_on.append(process)
                assert status["status"] in ("running", "succeeded"), status
                if status["status"] == "succeeded":
                    break
                await anyio.sleep(0.2)
        assert any(process != confirmed_on for process in polled_on), polled_on
        assert status["shards_done"] == len(TYPES) * len(REGIONS) and status["shards_failed"] == 0
        # The same scope again, on another process: answered from the job's snapshot in the call (the
        # job was found in Redis, not started again), one page at a time.
        first, first_on = await tool(cluster, client, "check_tag_compliance", **scope)
        assert first.get("job") is None and first.get("safety") is None, first
        assert first["snapshot_id"] == snapshot_id_for(run_id)
        expected = demo_aws.estate.expected_summary(TYPES, REGIONS)
        assert first["total_resources"] == expected.total
        assert first["violation_count"] == sum(expected.violations_by_type.values()) > PAGE_SIZE
        assert len(first["violations"]) == PAGE_SIZE and first["next_cursor"]
        second, second_on = await tool(
            cluster, client, "check_tag_compliance", **scope, cursor=first["next_cursor"]
        )
        assert second_on != first_on
        assert second["snapshot_id"] == first["snapshot_id"] and len(second["violations"]) == PAGE_SIZE
        assert not {v["resource_arn"] + v["tag_key"] for v in first["violations"]} & {
            v["resource_arn"] + v["tag_key"] for v in second["violations"]
        }
        # A used token stays used on every process.
        replay = await client.call_tool("check_tag_compliance", {**scope, "confirmation_token": token})
        assert replay.is_error and "already" in " ".join(getattr(b, "text", "") for b in replay.content)

    flow = [clarified_on, committed_on, confirmed_on, *polled_on, first_on, second_on]
    assert set(flow) == set(range(PROCESSES)), flow  # every process served part of the flow
    # The OAuth login itself (register, authorize, the IdP's callback, token) was spread as well.
    oauth_served = [sum(cluster.served(line)) for line in oauth_lines]
    assert oauth_served == [1, 1, 1, 1], oauth_served
    oauth_processes = {
        index for line in oauth_lines for index, count in enumerate(cluster.served(line)) if count
    }
    assert len(oauth_processes) > 1, oauth_processes


async def test_the_per_user_cap_on_calls_in_flight_is_counted_across_processes(balanced: Balanced) -> None:
    """Three calls held in flight land on three processes (one each); the fourth, on a process that
    holds only one of them, is refused: only a count shared through Redis can refuse it."""
    cluster = balanced.cluster
    login = oauth_client_for(cluster.url, "tag:read")
    async with connect(cluster.url, login.provider) as client:
        await client.list_tools()  # logs in
    assert login.storage.tokens is not None
    token = login.storage.tokens.access_token
    async with httpx.AsyncClient(timeout=120) as http:
        before = cluster.served()
        async with calls_held_in_flight(http, cluster.url, token, CALLS_IN_FLIGHT_PER_USER) as held:
            refused = await http.post(cluster.url, json=PING, headers=headers(token))
            assert refused.status_code == 429, refused.text
        assert held == [200] * CALLS_IN_FLIGHT_PER_USER
        await anyio.sleep(0.3)
        spread = [after - old for old, after in zip(before, cluster.served(), strict=True)]
        # 4 requests round robin over 3 processes: one each, and the refused one on top of one.
        assert sorted(spread) == [1, 1, 2], spread
        again = await http.post(cluster.url, json=PING, headers=headers(token))
        assert again.status_code == 200, again.text  # released everywhere

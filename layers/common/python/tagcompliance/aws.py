"""The one place that builds boto3 clients: region, endpoint, timeouts and retries, call counting,
and the checks every request passes before it is sent (the call's budget, the region's circuit)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.session import get_session

from .resilience import CircuitBreakers, current_budget
from .settings import Settings

# Chosen, not botocore's defaults (60 s read timeout; the adaptive mode used before, 8 attempts,
# took 59 s per shard against a dead endpoint, while MCP clients give up after about 60 s):
# - connect_timeout 3 s: a TCP connect to a regional AWS endpoint takes well under 100 ms; 3 s
#   still rides out two lost SYNs (retransmitted after 1 s and 2 s).
# - read_timeout 10 s: the longest waits between bytes of the APIs a scan calls (a GetResources
#   page of 100, a DescribeInstances page of 1,000) are a few seconds; it is per socket read, not
#   per call, so a large page that keeps arriving is never cut.
# - standard retries, 5 attempts: throttling (what a large estate actually meets) is retried with
#   jittered exponential backoff (at most 1 + 2 + 4 + 8 = 15 s over the 4 retries), and botocore's
#   retry quota (500 tokens per client; a retry costs 5, a timeout 10, a success earns them back)
#   stops a retry storm once most requests fail. Adaptive mode's client-side rate limiter was
#   dropped: it sleeps before sends, which the call's deadline cannot interrupt.
# Against a dead endpoint one request could still take 5 x 10 s: the region's circuit breaker
# (AWS_BREAKER_FAILURES consecutive failures) and the call's deadline end that much sooner.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=64,
)
# What counts against a region's circuit: the endpoint could not be reached or did not answer.
CONNECTION_FAILURES = (BotoConnectionError, HTTPClientError)


def describe_aws_error(error: Exception) -> str:
    """A one-line, secret-free description of an AWS failure for results and logs."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = details.get("Message") or ""
        operation = getattr(error, "operation_name", "")
        return f"{operation}: {code} {message}".strip()
    if isinstance(error, BotoCoreError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def aws_request_id(error: BaseException) -> str | None:
    """The request id AWS answered a failed call with (what AWS support asks for), if any."""
    if isinstance(error, ClientError):
        value = error.response.get("ResponseMetadata", {}).get("RequestId")
        return str(value) if value else None
    return None


class _FixedProvider(CredentialProvider):
    """Hands a session the (refreshable) credentials of an assumed role."""

    METHOD = "sts-assume-role"
    CANONICAL_NAME = "tag-compliance-assumed-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class AssumeRoleError(Exception):
    """A role in another account could not be assumed (the account cannot be audited)."""

    def __init__(self, message: str, account_id: str, code: str | None = None) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.code = code


def error_code(error: Exception) -> str | None:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


class AwsClients:
    """Thread-safe cache of boto3 clients per (service, region), counting the requests they send.

    boto3 sessions are not thread-safe, so clients are created under a lock; clients themselves
    may be shared between threads.
    """

    def __init__(
        self,
        settings: Settings,
        session: boto3.session.Session | None = None,
        *,
        account_id: str | None = None,
        parent: AwsClients | None = None,
    ) -> None:
        self._settings = settings
        self._session = session or boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._account_id: str | None = account_id
        self._partition: str | None = parent.partition if parent is not None and account_id else None
        self._parent = parent
        self._assumed: dict[tuple[str, str], AwsClients] = {}
        self.request_counts: Counter[str] = Counter()
        # One set of circuits per process: assumed accounts reach the same regional endpoints.
        self.breakers: CircuitBreakers = (
            parent.breakers
            if parent is not None
            else CircuitBreakers(settings.aws_breaker_failures, settings.aws_breaker_cooldown_seconds)
        )

    @property
    def endpoint_url(self) -> str | None:
        return self._settings.aws_endpoint_url

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self._settings.aws_region
        key = (service, region)
        with self._lock:
            existing = self._clients.get(key)
            if existing is not None:
                return existing
            created = self._session.client(
                service, region_name=region, endpoint_url=self._settings.aws_endpoint_url, config=RETRY_CONFIG
            )
            circuit = f"{self._settings.aws_endpoint_url or 'aws'}|{region}"
            created.meta.events.register("before-send", lambda **kw: self._before_send(circuit, **kw))
            created.meta.events.register("needs-retry", lambda **kw: self._after_attempt(circuit, **kw))
            self._clients[key] = created
            return created

    def _before_send(self, circuit: str, **kwargs: Any) -> None:
        # Raised here, an error ends the call without a retry: a stopped call (deadline, cancelled,
        # shutdown) sends nothing more, and an open circuit fails the request at once.
        budget = current_budget()
        if budget is not None:
            budget.check()
        self.breakers.before_request(circuit)
        self._count_request(**kwargs)

    def _after_attempt(
        self, circuit: str, response: Any = None, caught_exception: BaseException | None = None, **_: Any
    ) -> None:
        """Every HTTP attempt's outcome (botocore's ``needs-retry`` event; answers nothing, so the
        retry handler decides): an unreachable endpoint counts against the region's circuit, any
        answer (an error answer included: the endpoint is alive) closes it."""
        if isinstance(caught_exception, CONNECTION_FAILURES):
            self.breakers.record_failure(circuit)
        elif response is not None:
            self.breakers.record_success(circuit)

    def _count_request(self, request: Any, **kwargs: Any) -> None:
        # One count per HTTP request sent, retries included: what AWS bills and throttles.
        event_name = kwargs.get("event_name", "")
        with self._lock:
            self.request_counts[event_name.removeprefix("before-send.")] += 1
        if self._parent is not None:  # an assumed account's requests count for the caller too
            self._parent._count_request(request, **kwargs)

    def for_account(
        self, account_id: str, role_name: str, session_name: str = "tag-compliance-audit"
    ) -> AwsClients:
        """Clients acting in ``account_id``: these clients when it is their own account, else
        clients with credentials from ``sts:AssumeRole`` of ``role_name`` there (cached per account
        and role; refreshed by botocore before they expire). ``session_name`` is what the member
        account's CloudTrail shows (audits read, remediations write).

        Raises ``AssumeRoleError`` when the role cannot be assumed.
        """
        if account_id == self.account_id:
            return self
        key = (account_id, role_name)
        with self._lock:
            existing = self._assumed.get(key)
        if existing is not None:
            return existing
        role_arn = f"arn:{self.partition}:iam::{account_id}:role/{role_name}"
        sts = self.client("sts")

        def refresh() -> dict[str, str]:
            try:
                credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
            except (ClientError, BotoCoreError) as error:
                raise AssumeRoleError(
                    f"cannot assume {role_arn}: {describe_aws_error(error)}", account_id, error_code(error)
                ) from None
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        refreshable = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        core = get_session()
        core.get_component("credential_provider").insert_before("env", _FixedProvider(refreshable))
        assumed = AwsClients(
            self._settings, boto3.session.Session(botocore_session=core), account_id=account_id, parent=self
        )
        with self._lock:
            return self._assumed.setdefault(key, assumed)

    def total_requests(self) -> int:
        with self._lock:
            return sum(self.request_counts.values())

    def _identify(self) -> None:
        identity = self.client("sts").get_caller_identity()
        arn = identity["Arn"]
        with self._lock:
            self._account_id = identity["Account"]
            self._partition = arn.split(":", 2)[1]

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._identify()
        assert self._account_id is not None
        return self._account_id

    @property
    def partition(self) -> str:
        if self._partition is None:
            self._identify()
        assert self._partition is not None
        return self._partition

    def enabled_regions(self) -> list[str]:
        """Regions enabled for the account (what ``regions=["all"]`` means)."""
        response = self.client("ec2").describe_regions(
            Filters=[{"Name": "opt-in-status", "Values": ["opt-in-not-required", "opted-in"]}]
        )
        return sorted(region["RegionName"] for region in response["Regions"])

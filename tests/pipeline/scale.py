"""Organization scale on moto: a synthetic estate of many accounts through the real ASL's Distributed Map.

Shared by ``tests/pipeline/test_scale.py`` (in ``make test``) and the ``pipeline`` benchmark
(``bench/pipeline.py``). Everything that runs is the product's: the ASL file, the plan / scan-batch
/ aggregate handlers (through ``lambda_seam``), the plan in S3, AssumeRole into each account. The
ledger is the caller's: at this size the in-memory one (``MemoryLedger``, the same contract),
because moto's DynamoDB re-sorts a whole partition on every query page and write (a query of one
10,000-row run takes about two minutes here, real DynamoDB pages it in five requests); the
DynamoDB ledger's batch reads and writes are tested in ``test_state_machine`` / ``test_distributed``.
What is synthetic is only the estate: ``accounts`` fresh 12-digit ids (moto lets any id be
assumed). ``reachable`` of them are really scanned (the first holds a few secrets); AssumeRole
into the others is refused, as in an organization whose audit role is not deployed everywhere
yet, so their shards fail fast and are recorded failed. On moto a real scan costs about a second
of CPU per account-region (moto builds each service's backend for a new account-region, boto3
builds a client per service), which is why a ``make test`` run scans a few account-regions for
real and fails the rest fast: the orchestration (plan in S3, Distributed Map, ledger, aggregate)
carries every one of the 10,000 shards either way.

moto enforces neither the 25,000-event history limit nor the 256 KB payload limit, so they are
measured here: the parent's history through ``GetExecutionHistory``, each child execution's by
giving it its own moto ``EventManager`` while it runs, and the largest input, output or
parameters string of any event of either.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
    DistributedItemProcessorWorker,
)
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

from services.scanners import handlers
from tagcompliance.audits import AuditScope, StepFunctionsRunner
from tagcompliance.audits.ledger import Ledger
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.resources import REGISTRY
from tagcompliance.settings import Settings
from tagcompliance.store import Store

from .faults import AllowAssumeRoleOnly

# Region list for synthetic estates (the plan bucket and ledger live in ap-southeast-2: not here).
REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ca-central-1",
    "sa-east-1",
    "ap-northeast-3",
    "eu-south-1",
    "us-gov-west-1",
)
# Every registry type but EC2's (moto builds a default VPC and loads its AMIs for every new EC2
# account-region, seconds each): 16 shards per account-region, one child execution each.
TYPES = tuple(type_id for type_id in REGISTRY if not type_id.startswith("ec2:"))
ROLE = "TagComplianceAuditRole"
PAYLOAD_FIELDS = ("input", "output", "parameters")


@dataclass
class ChildHistories:
    """Every child execution's history events, as moto's interpreter recorded them."""

    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def child_histories() -> Iterator[ChildHistories]:
    """Give each Distributed Map child execution its own event history and keep it."""
    original = DistributedItemProcessorWorker._eval_job
    recorded = ChildHistories()

    def eval_job(self: DistributedItemProcessorWorker, env: Any, job: Any) -> None:
        manager = EventManager()
        env.event_manager = manager
        try:
            original(self, env, job)
        finally:
            with recorded.lock:
                recorded.histories.append(list(manager.get_event_history()))

    DistributedItemProcessorWorker._eval_job = eval_job  # type: ignore[method-assign]
    try:
        yield recorded
    finally:
        DistributedItemProcessorWorker._eval_job = original  # type: ignore[method-assign]


def largest_payload(events: list[dict[str, Any]]) -> int:
    """The largest input / output / parameters (bytes, UTF-8) of any event's details."""
    largest = 0
    for event in events:
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for name in PAYLOAD_FIELDS:
                value = details.get(name)
                if isinstance(value, str):
                    largest = max(largest, len(value.encode()))
    return largest


def full_history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = client.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


@dataclass
class ScaleRun:
    run_id: str
    shards: int
    batches: int
    seconds: float
    execution_status: str
    ledger_ok: int
    ledger_failed: int
    ledger_other: int
    outcome_failed_shards: int
    outcome_resources: int
    expected_failed: int
    expected_resources: int
    parent_history_events: int
    child_executions: int
    largest_child_history_events: int
    largest_payload_bytes: int
    execution_output_bytes: int

    @property
    def largest_history_events(self) -> int:
        return max(self.parent_history_events, self.largest_child_history_events)

    @property
    def shards_per_second(self) -> float:
        return self.shards / self.seconds if self.seconds else 0.0


def estate_accounts(count: int) -> list[str]:
    """``count`` fresh account ids (moto creates an account on first use)."""
    return sorted({"5" + "".join(str(secrets.randbelow(10)) for _ in range(11)) for _ in range(count)})


def seed_secrets(endpoint_url: str, account: str, region: str, count: int = 3) -> int:
    """A few secrets in an account (through AssumeRole, as an operator would): resources for the
    aggregate to evaluate. Returns how many."""
    sts = boto3.client("sts", region_name=region, endpoint_url=endpoint_url)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seed")[
        "Credentials"
    ]
    client = boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    for index in range(count):
        client.create_secret(
            Name=f"scale-{account}-{index}",
            SecretString="x",
            Tags=[{"Key": "Environment", "Value": "production"}],
        )
    return count


def run_at_scale(
    *,
    endpoint_url: str,
    settings: Settings,
    store: Store,
    ledger: Ledger,
    sfn_client: Any,
    state_machine_arn: str,
    accounts: int,
    regions: int,
    reachable: int,
    types: tuple[str, ...] = TYPES,
    timeout: float = 600.0,
    run_id: str | None = None,
) -> ScaleRun:
    """Plan ``accounts x regions x types`` shards and run them through the state machine: the
    first ``reachable`` accounts are scanned (the first holds a few secrets), AssumeRole into the
    others is refused (their shards fail)."""
    account_ids = estate_accounts(accounts)
    region_names = list(REGIONS[:regions])
    if len(region_names) < regions:
        raise ValueError(f"at most {len(REGIONS)} regions")
    allowed = account_ids[:reachable]
    resources = seed_secrets(endpoint_url, allowed[0], region_names[0]) if allowed else 0
    session = boto3.session.Session()
    session.events.register("before-call.sts.AssumeRole", AllowAssumeRoleOnly(frozenset(allowed)))
    run_settings = settings.model_copy(update={"audit_role_name": ROLE})
    handlers.runtime.set(
        handlers.ScannerRuntime(
            settings=run_settings,
            clients=AwsClients(run_settings, session),
            store=store,
            ledger=ledger,
            policy_loader=lambda: load_policy(settings.policy_path).policy,
        )
    )
    runner = StepFunctionsRunner(sfn_client, state_machine_arn, store, ledger, poll_seconds=0.5)
    scope = AuditScope(
        account_id=handlers.runtime().clients.account_id,
        accounts=account_ids,
        regions=region_names,
        resource_types=list(types),
    )
    run_id = run_id or f"scale-{secrets.token_hex(4)}"
    with child_histories() as children:
        started = time.monotonic()
        runner.start(scope, run_id=run_id)
        runner.wait(run_id, timeout=timeout)
        seconds = time.monotonic() - started
    execution = runner.describe(run_id)
    parent = full_history(sfn_client, execution["executionArn"])
    output = execution.get("output") or "{}"
    outcome = json.loads(output) if execution["status"] == "SUCCEEDED" else {}
    progress = ledger.progress(run_id)
    statuses = [row.status for row in progress]
    shards = len(account_ids) * len(region_names) * len(types)
    return ScaleRun(
        run_id=run_id,
        shards=shards,
        batches=len(children.histories),
        seconds=round(seconds, 1),
        execution_status=execution["status"],
        ledger_ok=statuses.count("ok"),
        ledger_failed=statuses.count("failed"),
        ledger_other=len(statuses) - statuses.count("ok") - statuses.count("failed"),
        outcome_failed_shards=int(outcome.get("failed_shards", -1)),
        outcome_resources=int(outcome.get("total_resources", -1)),
        expected_failed=(len(account_ids) - len(allowed)) * len(region_names) * len(types),
        expected_resources=resources,
        parent_history_events=len(parent),
        child_executions=len(children.histories),
        largest_child_history_events=max((len(history) for history in children.histories), default=0),
        largest_payload_bytes=max(
            [largest_payload(parent), *(largest_payload(history) for history in children.histories)]
        ),
        execution_output_bytes=len(output.encode()),
    )

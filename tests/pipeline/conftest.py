"""Fixtures for the audit pipeline tests: settings, a store, a DynamoDB ledger and the state machine.

Everything runs against the shared ``demo_aws`` moto server. The ledger table lives in a region
the estate does not use, so scans of ``dynamodb:table`` never see it. Step Functions execution is
switched on for this package only and switched off again afterwards.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from services.demo.aws import DemoAws
from services.scanners import handlers
from tagcompliance.audits import DynamoLedger
from tagcompliance.aws import AwsClients
from tagcompliance.policy import load_policy
from tagcompliance.settings import Settings
from tagcompliance.store import SnapshotRecord, Store, open_store

from .ledger_tables import ledger_table
from .machine import StateMachine, create_plan_bucket, deployed_audit_machine

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "policies" / "tagging_policy.json"
LEDGER_REGION = "ap-southeast-2"  # not an estate region


@pytest.fixture(scope="package")
def pipeline_env(demo_aws: DemoAws) -> Iterator[DemoAws]:
    patch = pytest.MonkeyPatch()
    for name, value in demo_aws.environment.items():
        patch.setenv(name, value)
    for name in ("DATABASE_URL", "REDIS_URL", "POLICY_PATH", "SCAN_REGIONS", "DATA_DIR", "STATE_MACHINE_ARN"):
        patch.delenv(name, raising=False)
    yield demo_aws
    patch.undo()


@pytest.fixture(scope="package")
def plan_bucket(pipeline_env: DemoAws) -> str:
    """The pipeline's plan bucket, in the ledger's region: ``s3:bucket`` scans of the estate's
    regions never list it."""
    return create_plan_bucket(pipeline_env, LEDGER_REGION)


@pytest.fixture(scope="package")
def settings(pipeline_env: DemoAws, plan_bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        AWS_ENDPOINT_URL=pipeline_env.endpoint_url,
        AWS_REGION=pipeline_env.regions[0],
        SCAN_REGIONS=",".join(pipeline_env.regions),
        POLICY_PATH=str(POLICY_PATH),
        DATA_DIR=str(tmp_path_factory.mktemp("pipeline")),
        AUDIT_PLAN_BUCKET=plan_bucket,
    )


@pytest.fixture(scope="package")
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


@pytest.fixture
def ledger(settings: Settings) -> Iterator[DynamoLedger]:
    """A fresh ledger table per test, dropped afterwards (the moto server is shared)."""
    with ledger_table(
        f"tagc-ledger-{secrets.token_hex(4)}", LEDGER_REGION, settings.aws_endpoint_url
    ) as table:
        yield table


def policy_loader(settings: Settings) -> Any:
    return lambda: load_policy(settings.policy_path).policy


def scanner_runtime(
    settings: Settings, store: Store, ledger: DynamoLedger, session: boto3.session.Session | None = None
) -> handlers.ScannerRuntime:
    return handlers.ScannerRuntime(
        settings=settings,
        clients=AwsClients(settings, session),
        store=store,
        ledger=ledger,
        policy_loader=policy_loader(settings),
    )


@pytest.fixture(scope="package")
def state_machine(pipeline_env: DemoAws, plan_bucket: str) -> Iterator[StateMachine]:
    """The real ASL deployed to moto, its Lambda tasks routed to the real handlers."""
    with deployed_audit_machine(pipeline_env, plan_bucket) as machine:
        yield machine


def comparable(snapshot: SnapshotRecord) -> dict[str, Any]:
    """A snapshot's content without what differs between two scans of the same estate."""
    content = dataclasses.asdict(snapshot)
    for key in ("snapshot_id", "created_at"):
        content.pop(key)
    return content

"""The Lambda bundle rehearsed as deployed: one audit through the synthesized state machine, every
Task a cold start of its function in an isolated interpreter.

The dependency layer is built from ``requirements.txt`` with the Makefile's ``lambda-deps`` pip flags
(for this interpreter's version), the dev environment is synthesized with it, and the staged function
asset and layers are all a function can import: a runtime module missing from the bundle fails here.
The AWS the functions call is the demo estate's moto server; the database is a new PostgreSQL one.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.demo.aws import DemoAws
from tagcompliance.audits import AuditScope, DynamoLedger, StepFunctionsRunner
from tagcompliance.resources import resolve_resource_types
from tagcompliance.settings import Settings
from tagcompliance.store import Store, open_store
from tests.conftest import fresh_postgres_database
from tests.infra.conftest import Synthesized, command_line_programs, synthesize
from tests.pipeline.lambda_seam import routed_lambda, set_moto_config
from tests.pipeline.ledger_tables import ledger_table
from tests.pipeline.machine import create_plan_bucket

from .artifacts import lambda_dependency_layer
from .functions import BOOTSTRAP, DeployedFunction, LambdaEnvironment, Outcome, deployed_functions

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

AUDIT_TYPES = ["sns:topic", "kinesis:stream"]
AUDIT_REGIONS = ["us-east-1", "us-west-2"]
STANDARD_LIBRARY = sysconfig.get_paths()["stdlib"]  # lib-dynload included
# Third-party packages of this interpreter and of its base installation (below the standard library).
INTERPRETER_PACKAGES = {sysconfig.get_paths()["purelib"], f"{STANDARD_LIBRARY}/site-packages"}


class XRayDaemon:
    """A UDP listener standing in for the X-Ray daemon: what the functions' tracers send."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.datagrams: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.socket.getsockname()
        return f"{host}:{port}"

    def _receive(self) -> None:
        while not self.stopped.is_set():
            try:
                self.datagrams.append(self.socket.recv(65536).decode("utf-8", "replace"))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.socket.close()


@dataclass
class Rehearsal:
    synth: Synthesized
    functions: dict[str, DeployedFunction]
    lambda_environment: LambdaEnvironment
    demo: DemoAws
    region: str
    store: Store
    ledger: DynamoLedger
    xray: XRayDaemon

    def function(self, handler: str) -> DeployedFunction:
        (match,) = [function for function in self.functions.values() if function.handler.endswith(handler)]
        return match


@pytest.fixture(scope="module")
def rehearsal(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    layer = lambda_dependency_layer()
    synth = synthesize("dev", tmp_path_factory.mktemp("rehearsal-cdk"), lambda_deps_dir=str(layer))
    region = synth.deployment.config.region
    environment = pytest.MonkeyPatch()  # boto3 in this process (ledger, runner) talks to the estate
    for name, value in demo_aws.environment.items():
        environment.setenv(name, value)
    secretsmanager = demo_aws.client("secretsmanager", region)
    scheduler = demo_aws.client("scheduler", region)
    suffix = secrets.token_hex(4)
    secret_arn = secretsmanager.create_secret(
        Name=f"tag-compliance-rehearsal/database-{suffix}",
        SecretString=json.dumps({"username": "mcp_admin", "password": f"rehearsal-{suffix}"}),
    )["ARN"]
    ledger_cleanup = ExitStack()  # the ledger table, dropped at the end
    ledger = ledger_cleanup.enter_context(
        ledger_table(f"tagc-rehearsal-ledger-{suffix}", region, demo_aws.endpoint_url)
    )
    xray = XRayDaemon()
    group: str | None = None
    try:
        with fresh_postgres_database() as database_url:
            # Stand-ins for the Data stack's resources the functions' Environment imports.
            stand_ins = {
                "DATABASE_URL": database_url,
                "DATABASE_PASSWORD_SECRET_ARN": secret_arn,
                "AUDIT_LEDGER_TABLE": ledger.table_name,
                # The Pipeline stack's own bucket (a region the audit does not scan).
                "AUDIT_PLAN_BUCKET": create_plan_bucket(demo_aws, "ap-southeast-2"),
            }
            functions = deployed_functions(
                synth.template("pipeline").to_json(),
                synth.outdir,
                account=demo_aws.account_id,
                region=region,
                stand_ins=stand_ins,
            )
            group = next(iter(functions.values())).variables["SCHEDULER_GROUP"]
            scheduler.create_schedule_group(Name=group)
            store = open_store(Settings(DATABASE_URL=database_url))
            try:
                yield Rehearsal(
                    synth=synth,
                    functions=functions,
                    lambda_environment=LambdaEnvironment(
                        scratch=tmp_path_factory.mktemp("lambda"),
                        account=demo_aws.account_id,
                        region=region,
                        aws_variables={
                            name: value
                            for name, value in demo_aws.environment.items()
                            if name != "AWS_DEFAULT_REGION"
                        },
                        xray_daemon=xray.address,
                    ),
                    demo=demo_aws,
                    region=region,
                    store=store,
                    ledger=ledger,
                    xray=xray,
                )
            finally:
                store.close()
    finally:
        xray.close()
        if group is not None:
            scheduler.delete_schedule_group(Name=group)
        ledger_cleanup.close()
        secretsmanager.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
        environment.undo()


def foreign_modules(outcome: Outcome, function: DeployedFunction, opt: Path) -> dict[str, str]:
    """Modules the function imported from anywhere but its code, its layers and the standard library
    (the runtime stand-in itself aside, as the real runtime's own modules)."""
    allowed = (str(function.code), str(opt), STANDARD_LIBRARY)
    return {
        name: origin
        for name, origin in outcome.modules.items()
        if origin != str(BOOTSTRAP)
        and (
            not any(origin.startswith(prefix + "/") for prefix in allowed)
            or any(origin.startswith(prefix + "/") for prefix in INTERPRETER_PACKAGES)
        )
    }


def assert_ran_cleanly(rehearsal: Rehearsal, function: DeployedFunction, outcome: Outcome) -> None:
    assert outcome.error_type is None, (
        f"{function.logical_id} ({function.handler}): {outcome.error_type}: {outcome.error_message}\n"
        f"{outcome.logs[-3000:]}"
    )
    opt = rehearsal.lambda_environment.opt_for(function)
    assert not foreign_modules(outcome, function, opt)
    assert function.module in outcome.modules  # imported from the staged asset, not the repository
    assert outcome.modules[function.module].startswith(str(function.code))


def test_every_handler_module_cold_starts_from_the_bundle(rehearsal: Rehearsal) -> None:
    """One function per handler module initialises (imports its handler) from the bundle alone."""
    by_module: dict[str, DeployedFunction] = {}
    for function in rehearsal.functions.values():
        by_module.setdefault(function.module, function)
    assert set(by_module) == {"services.scanners.handlers", "services.scheduler.handlers"}
    for function in by_module.values():
        outcome = rehearsal.lambda_environment.run(function, None, init_only=True)
        assert_ran_cleanly(rehearsal, function, outcome)
        # the domain core comes from the common layer, the third-party packages from the dependencies layer
        opt = str(rehearsal.lambda_environment.opt_for(function))
        for module in ("tagcompliance", "pydantic", "boto3", "aws_lambda_powertools"):
            assert outcome.modules[module].startswith(opt + "/python/"), (module, outcome.modules[module])
    # the common layer is the domain core alone: no program (the store migration command stays out)
    (common,) = [layer for layer in function.layers if (layer / "python" / "tagcompliance").is_dir()]
    assert not command_line_programs(common / "python")


def test_a_bundle_missing_a_runtime_module_fails_its_cold_start(rehearsal: Rehearsal, tmp_path: Path) -> None:
    """The harness itself lends nothing: the same function with aws_xray_sdk taken out of its
    dependencies layer fails to initialise the way Lambda reports it."""
    function = rehearsal.function("plan_handler")
    (dependencies,) = [layer for layer in function.layers if (layer / "python" / "boto3").is_dir()]
    stripped = tmp_path / "dependencies" / "python"
    stripped.mkdir(parents=True)
    for entry in (dependencies / "python").iterdir():
        if not entry.name.startswith("aws_xray_sdk"):
            (stripped / entry.name).symlink_to(entry)
    layers = [stripped.parent if layer == dependencies else layer for layer in function.layers]
    outcome = rehearsal.lambda_environment.run(
        dataclasses.replace(function, layers=layers, invocations=[]), None, init_only=True
    )
    assert outcome.error_type == "Runtime.ImportModuleError"
    assert outcome.error_message == (
        "Unable to import module 'services.scanners.handlers': No module named 'aws_xray_sdk'"
    )


def test_one_audit_through_the_synthesized_state_machine(rehearsal: Rehearsal) -> None:
    template = rehearsal.synth.template("pipeline").to_json()
    ((machine,),) = [
        [resource["Properties"]]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    definition = (rehearsal.synth.outdir / f"asset.{machine['DefinitionS3Location']['Key']}").read_text(
        encoding="utf-8"
    )
    routes = {}
    plan_bucket = rehearsal.function("plan_handler").variables["AUDIT_PLAN_BUCKET"]
    for placeholder, value in machine["DefinitionSubstitutions"].items():
        if "Ref" in value:  # the plan bucket, the functions' AUDIT_PLAN_BUCKET stand-in
            definition = definition.replace(f"${{{placeholder}}}", plan_bucket)
            continue
        function = rehearsal.functions[value["Fn::GetAtt"][0]]
        arn = f"arn:aws:lambda:{rehearsal.region}:{rehearsal.demo.account_id}:function:{function.logical_id}"
        definition = definition.replace(f"${{{placeholder}}}", arn)
        routes[function.logical_id] = rehearsal.lambda_environment.handler_for(function)
    assert "${" not in definition

    client = rehearsal.demo.client("stepfunctions", rehearsal.region)
    set_moto_config(rehearsal.demo.endpoint_url, {"stepfunctions": {"execute_state_machine": True}})
    try:
        with routed_lambda(routes) as invocations:
            arn = client.create_state_machine(
                name=f"{machine['StateMachineName']}-{secrets.token_hex(4)}",
                definition=definition,
                roleArn=f"arn:aws:iam::{rehearsal.demo.account_id}:role/rehearsal-states",
            )["stateMachineArn"]
            try:
                runner = StepFunctionsRunner(client, arn, rehearsal.store, rehearsal.ledger, poll_seconds=1)
                scope = AuditScope(
                    account_id=rehearsal.demo.account_id,
                    regions=AUDIT_REGIONS,
                    resource_types=resolve_resource_types(AUDIT_TYPES),
                )
                run_id = runner.start(scope, run_id=f"rehearsal-{secrets.token_hex(4)}")
                status = runner.wait(run_id, timeout=600)
            finally:
                client.delete_state_machine(stateMachineArn=arn)
    finally:
        set_moto_config(rehearsal.demo.endpoint_url, {"stepfunctions": {"execute_state_machine": False}})

    failures = [
        f"{function.logical_id}: {outcome.error_type}: {outcome.error_message}"
        for function in rehearsal.functions.values()
        for outcome in function.invocations
        if outcome.error_type is not None
    ]
    assert status.status == "succeeded", (status.error, failures)
    assert not failures
    expected = rehearsal.demo.estate.expected_summary(resource_types=AUDIT_TYPES, regions=AUDIT_REGIONS)
    assert status.shards_total == status.shards_done == len(AUDIT_TYPES) * len(AUDIT_REGIONS)
    assert status.outcome is not None and status.outcome.created
    assert status.outcome.total_resources == expected.total
    snapshot = rehearsal.store.get_snapshot(status.outcome.snapshot_id)
    assert snapshot is not None and snapshot.compliant_resources == expected.compliant

    # Every Task was a cold start of its own function in its own interpreter, logging as that function.
    invoked = {name for name, _ in invocations.calls}
    assert {"plan_handler", "scan_batch_handler", "aggregate_handler"} <= {
        rehearsal.functions[name].handler.rpartition(".")[2] for name in invoked
    }
    for name in invoked:
        function = rehearsal.functions[name]
        assert len(function.invocations) == len(invocations.named(name))
        for outcome in function.invocations:
            assert_ran_cleanly(rehearsal, function, outcome)
            assert '"cold_start":true' in outcome.logs and f'"function_name":"{name}"' in outcome.logs
            # The log schema (issue 19): every line of the run carries its ids and the environment.
            lines = [
                json.loads(line) for line in outcome.logs.splitlines() if line.startswith('{"timestamp"')
            ]
            assert lines, outcome.logs[-2000:]
            for line in lines:
                assert line["run_id"] == run_id and line["correlation_id"] == run_id, line
                assert line["environment"] == function.variables["ENVIRONMENT_NAME"], line
    # Inside Lambda the core's own loggers write through the same handler (routed at cold start).
    plan = rehearsal.function("plan_handler")
    assert any('"logger":"tagcompliance.audits"' in outcome.logs for outcome in plan.invocations)
    aggregate = rehearsal.function("aggregate_handler")
    assert any('"ComplianceScore"' in outcome.logs for outcome in aggregate.invocations)  # EMF metric
    # The tracers reached the (stand-in) X-Ray daemon with each handler's subsegment.
    traced = "\n".join(rehearsal.xray.datagrams)
    for name in invoked:
        assert f"## {rehearsal.functions[name].handler.rpartition('.')[2]}" in traced, name


def test_the_scheduler_sync_runs_from_the_bundle(rehearsal: Rehearsal) -> None:
    """The hourly sync, invoked as its schedule does (input ``{}``), reconciles the schedule group
    without an error; every schedule it reports exists in EventBridge Scheduler."""
    function = rehearsal.function("sync_handler")
    outcome = rehearsal.lambda_environment.run(function, {})
    assert_ran_cleanly(rehearsal, function, outcome)
    report: dict[str, Any] = outcome.result
    assert report["errors"] == [], report
    group = function.variables["SCHEDULER_GROUP"]
    schedules = rehearsal.demo.client("scheduler", rehearsal.region).list_schedules(GroupName=group)
    listed = {schedule["Arn"] for schedule in schedules["Schedules"]}
    assert report["daily_snapshot"] is None or report["daily_snapshot"] in listed, (report, listed)
    assert '"cold_start":true' in outcome.logs and "schedules synced" in outcome.logs

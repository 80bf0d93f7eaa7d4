"""Pipeline: layers, one Lambda per handler (derived), the state machine with its substitutions,
the schedule group, the daily snapshot schedule and the scheduler role."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from services.scanners.definition import ASL_PATH, FUNCTION_SUBSTITUTIONS, placeholders
from stacks.constructs import pipeline as pipeline_module
from stacks.constructs.pipeline import HANDLER_MODULES, RUNTIME, discover_handlers
from tagcompliance.schedules import DAILY_SNAPSHOT_NAME, EventBridgeScheduler

from .conftest import Synthesized, command_line_programs


def _expected_handlers() -> dict[str, str]:
    """key -> "module.attribute" for every HANDLERS entry, computed here independently."""
    expected: dict[str, str] = {}
    for module_name in HANDLER_MODULES:
        module = importlib.import_module(module_name)
        for key, function in module.HANDLERS.items():
            expected[key] = f"{module_name}.{function.__name__}"
    return expected


def _functions(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return synth.resources("pipeline", "AWS::Lambda::Function")


def test_one_function_per_handler_with_the_real_handler_path(synth: Synthesized) -> None:
    expected = _expected_handlers()
    assert set(FUNCTION_SUBSTITUTIONS.values()) <= set(expected)
    handlers = sorted(function["Properties"]["Handler"] for function in _functions(synth).values())
    assert handlers == sorted(expected.values())
    for handler in handlers:  # each handler string resolves to the function in the HANDLERS table
        module_name, attribute = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module_name), attribute))


def test_functions_are_traced_in_the_vpc_with_the_layers_and_no_secret_in_env(synth: Synthesized) -> None:
    layers = synth.resources("pipeline", "AWS::Lambda::LayerVersion")
    assert len(layers) == 2
    for function in _functions(synth).values():
        props = function["Properties"]
        assert props["Runtime"] == RUNTIME.name
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 2
        assert props["VpcConfig"]["SubnetIds"]
        env = props["Environment"]["Variables"]
        assert "AWS_LAMBDA_EXEC_WRAPPER" not in env  # settings read the secret themselves
        assert "PGPASSWORD" not in env and "DATABASE_PASSWORD_SECRET_ARN" in env
        assert "sslmode=require" in json.dumps(env["DATABASE_URL"])
        assert env["DAILY_SNAPSHOT_TIME"] == synth.deployment.config.env.daily_snapshot_time


def test_state_machine_substitutes_every_placeholder_with_its_function(synth: Synthesized) -> None:
    machines = synth.resources("pipeline", "AWS::StepFunctions::StateMachine")
    assert len(machines) == 1
    props = next(iter(machines.values()))["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders()
    logical_by_handler = {
        function["Properties"]["Handler"]: logical_id for logical_id, function in _functions(synth).items()
    }
    expected = _expected_handlers()
    for placeholder, key in FUNCTION_SUBSTITUTIONS.items():
        assert substitutions[placeholder] == {"Fn::GetAtt": [logical_by_handler[expected[key]], "Arn"]}
    # The definition is statemachines/compliance_audit.asl.json itself (an S3 asset), placeholders intact.
    key = props["DefinitionS3Location"]["Key"]
    staged = synth.outdir / f"asset.{key}"
    assert json.loads(staged.read_text(encoding="utf-8")) == json.loads(ASL_PATH.read_text(encoding="utf-8"))


def test_the_sync_function_is_the_one_owner_of_the_daily_snapshot_schedule(synth: Synthesized) -> None:
    """CloudFormation defines only the hourly sync schedule; the sync function writes the daily
    snapshot into the environment's group at the configured time (what its environment says)."""
    config = synth.deployment.config
    template = synth.template("pipeline")
    template.has_resource_properties("AWS::Scheduler::ScheduleGroup", {"Name": config.scheduler_group_name})
    schedules = [s["Properties"] for s in synth.resources("pipeline", "AWS::Scheduler::Schedule").values()]
    assert [s["Name"] for s in schedules] == ["sync-schedules"]
    ((sync_id, sync_function),) = [
        (logical_id, f)
        for logical_id, f in _functions(synth).items()
        if f["Properties"]["Handler"].endswith(".sync_handler")
    ]
    env = sync_function["Properties"]["Environment"]["Variables"]
    assert schedules[0]["Target"]["Arn"] == {"Fn::GetAtt": [sync_id, "Arn"]}

    class _Recorder:
        calls: list[dict[str, Any]] = []

        def get_schedule_group(self, **kwargs: Any) -> dict[str, Any]:
            return {}

        def update_schedule(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            return {"ScheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/g/n"}

    class _Clients:
        def client(self, service: str, region: str | None = None) -> _Recorder:
            assert service == "scheduler"
            return recorder

    recorder = _Recorder()
    backend = EventBridgeScheduler(_Clients(), env["SCHEDULER_GROUP"], "sm-arn", "role-arn")  # type: ignore[arg-type]
    backend.put_daily_snapshot(env["DAILY_SNAPSHOT_TIME"])
    (written,) = recorder.calls
    assert written["Name"] == DAILY_SNAPSHOT_NAME
    assert written["GroupName"] == config.scheduler_group_name
    hour, minute = config.env.daily_snapshot_time.split(":")
    assert written["ScheduleExpression"] == f"cron({int(minute)} {int(hour)} * * ? *)"
    assert json.loads(written["Target"]["Input"])["trigger"] == "daily"


def test_scheduler_role_may_start_the_state_machine_only(synth: Synthesized) -> None:
    policies = synth.resources("pipeline", "AWS::IAM::Policy")
    (scheduler_policy,) = [
        p for logical_id, p in policies.items() if logical_id.startswith("PipelineSchedulerRole")
    ]
    statements = scheduler_policy["Properties"]["PolicyDocument"]["Statement"]
    actions = sorted(json.dumps(s["Action"]) for s in statements)
    assert '"states:StartExecution"' in actions
    assert all("Resource" in s and s["Resource"] != "*" for s in statements)
    roles = synth.resources("pipeline", "AWS::IAM::Role")
    trusts = [json.dumps(role["Properties"]["AssumeRolePolicyDocument"]) for role in roles.values()]
    assert any("scheduler.amazonaws.com" in trust and "aws:SourceAccount" in trust for trust in trusts)


def test_unknown_placeholder_stops_the_synth(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from .conftest import synthesize

    monkeypatch.setattr(pipeline_module, "placeholders", lambda: {*placeholders(), "MysteryTableArn"})
    with pytest.raises(SystemExit, match="MysteryTableArn"):
        synthesize("dev", tmp_path)


def test_discover_handlers_skips_missing_modules_and_rejects_bad_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        return event

    good = types.ModuleType("fake_handlers_good")
    good.run_handler = handler  # type: ignore[attr-defined]
    good.HANDLERS = {"run": handler}  # type: ignore[attr-defined]
    bad = types.ModuleType("fake_handlers_bad")
    bad.HANDLERS = {"run": lambda event, context: event}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_handlers_good", good)
    monkeypatch.setitem(sys.modules, "fake_handlers_bad", bad)
    specs = discover_handlers(("fake_handlers_good", "not_a_module_yet.handlers"))
    assert [(s.key, s.handler, s.construct_id) for s in specs] == [
        ("run", "fake_handlers_good.run_handler", "RunFunction")
    ]
    with pytest.raises(SystemExit, match="not a module-level function"):
        discover_handlers(("fake_handlers_bad",))
    with pytest.raises(SystemExit, match="defined by"):
        discover_handlers(("fake_handlers_good", "fake_handlers_good"))


def test_audit_steps_cannot_schedule_and_scheduler_handlers_cannot_scan(synth: Synthesized) -> None:
    roles = synth.resources("pipeline", "AWS::IAM::Role")
    policies = synth.resources("pipeline", "AWS::IAM::Policy")

    def actions_of(role_prefix: str) -> set[str]:
        found: set[str] = set()
        for logical_id, policy in policies.items():
            if logical_id.startswith(role_prefix):
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    action = statement["Action"]
                    found.update([action] if isinstance(action, str) else action)
        return found

    audit = actions_of("PipelineFunctionRole")
    scheduling = actions_of("PipelineSchedulerFunctionRole")
    assert "tag:GetResources" in audit and "cloudtrail:LookupEvents" in audit
    assert not {a for a in audit if a.startswith(("scheduler:", "states:", "iam:"))}
    assert {"scheduler:*", "iam:PassRole"} <= scheduling
    assert "tag:GetResources" not in scheduling and "states:StartExecution" not in scheduling
    assert not {a for a in scheduling if a.startswith(("dynamodb:", "ses:"))}
    role_of = {
        function["Properties"]["Handler"]: function["Properties"]["Role"]["Fn::GetAtt"][0]
        for function in _functions(synth).values()
    }
    for handler, role in role_of.items():
        expected = (
            "PipelineSchedulerFunctionRole"
            if handler.startswith("services.scheduler.")
            else "PipelineFunctionRole"
        )
        assert role.startswith(expected) and role in roles, (handler, role)


def test_make_lambda_deps_builds_wheels_for_the_lambda_runtime() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    version = RUNTIME.name.removeprefix("python")
    assert f"--python-version {version}" in makefile
    assert "--platform manylinux2014_x86_64" in makefile  # the functions' architecture is x86_64


def test_staged_function_code_holds_every_module_the_handlers_import(synth: Synthesized) -> None:
    """Import every handler module from the staged function asset plus the staged layer, as Lambda
    would (/var/task, /opt/python), so a module left out of FUNCTION_CODE_EXCLUDE fails here."""
    import subprocess
    import sysconfig

    assets = [path for path in synth.outdir.glob("asset.*") if path.is_dir()]
    # The function code: the handler packages without the rest of the repository (the gateway image's
    # build context holds services/ too, beside layers/).
    (function_code,) = [
        path
        for path in assets
        if (path / "services" / "scanners" / "handlers.py").is_file() and not (path / "layers").exists()
    ]
    (layer,) = [path for path in assets if (path / "python" / "tagcompliance" / "__init__.py").is_file()]
    assert not command_line_programs(layer / "python"), "the layer holds the domain core, no program"
    script = (
        "import importlib, sys\n"
        # -S: site-packages without its .pth files, so the project's editable install cannot
        # supply what the staged asset lacks.
        f"sys.path[:0] = [{str(function_code)!r}, {str(layer / 'python')!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        f"for name in {list(HANDLER_MODULES)!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(function_code)!r}), module.__file__\n"
        "import services, tagcompliance\n"
        f"assert services.__file__.startswith({str(function_code)!r}), services.__file__\n"
        f"assert tagcompliance.__file__.startswith({str(layer)!r}), tagcompliance.__file__\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _statements(synth: Synthesized, role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for logical_id, policy in synth.resources("pipeline", "AWS::IAM::Policy").items()
        if logical_id.startswith(role_prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in statements if "Sid" in statement}


def test_the_scan_is_a_distributed_map_over_the_plan_in_the_pipeline_bucket(synth: Synthesized) -> None:
    definition = json.loads(ASL_PATH.read_text(encoding="utf-8"))
    scan = definition["States"]["ScanShards"]
    assert scan["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert scan["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert scan["ItemReader"]["Parameters"]["Bucket"] == "${PlanBucketName}"
    assert scan["ResultWriter"]["Parameters"]["Bucket"] == "${PlanBucketName}"
    assert "MaxConcurrencyPath" in scan and "ToleratedFailurePercentagePath" in scan
    assert "ItemsPath" not in scan  # the plan never travels through the execution's state
    (bucket_id,) = synth.resources("pipeline", "AWS::S3::Bucket")
    props = next(iter(synth.resources("pipeline", "AWS::StepFunctions::StateMachine").values()))["Properties"]
    assert props["DefinitionSubstitutions"]["PlanBucketName"] == {"Ref": bucket_id}
    bucket = synth.resources("pipeline", "AWS::S3::Bucket")[bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] > 0
    (bucket_policy,) = synth.resources("pipeline", "AWS::S3::BucketPolicy").values()
    assert "aws:SecureTransport" in json.dumps(bucket_policy)
    for function in _functions(synth).values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["AUDIT_PLAN_BUCKET"] == {"Ref": bucket_id}
        assert env["AUDIT_MAX_CONCURRENCY"] == str(synth.deployment.config.env.lambda_scan_concurrency)
    timeouts = {
        function["Properties"]["Handler"].rsplit(".", 1)[1]: function["Properties"]["Timeout"]
        for function in _functions(synth).values()
    }
    assert timeouts["scan_batch_handler"] == 900 and timeouts["plan_handler"] == 300


def test_the_state_machine_may_run_its_child_executions_and_read_its_plans_only(synth: Synthesized) -> None:
    pipeline = synth.deployment.pipeline
    statements = _by_sid(_statements(synth, "PipelineComplianceAuditRole"))
    start = statements["StartChildExecutions"]
    assert start["Action"] == "states:StartExecution"
    assert pipeline.state_machine_name in json.dumps(start["Resource"])
    assert ":execution:" not in json.dumps(start["Resource"])
    follow = statements["FollowChildExecutions"]
    assert sorted(follow["Action"]) == ["states:DescribeExecution", "states:StopExecution"]
    assert f":execution:{pipeline.state_machine_name}/*" in json.dumps(follow["Resource"])
    read = statements["ReadPlans"]
    assert read["Action"] == "s3:GetObject" and "/plans/*" in json.dumps(read["Resource"])
    write = statements["WriteMapResults"]
    assert "s3:PutObject" in write["Action"] and "/results/*" in json.dumps(write["Resource"])
    assert not any(s.get("Action") == "s3:ListBucket" for s in statements.values())


def test_the_plan_step_may_write_plans_and_nothing_else_of_the_bucket(synth: Synthesized) -> None:
    (bucket_id,) = synth.resources("pipeline", "AWS::S3::Bucket")
    s3_statements = [
        statement
        for statement in _statements(synth, "PipelineFunctionRole")
        if bucket_id in json.dumps(statement.get("Resource"))
    ]
    assert [(s["Action"], "/plans/*" in json.dumps(s["Resource"])) for s in s3_statements] == [
        ("s3:PutObject", True)
    ]

"""The synthesized pipeline's Lambda functions, run here the way Lambda runs them.

Everything comes from the synthesized template and its staged assets: each function's handler,
code asset, layers (merged into one ``/opt`` in the template's order, as Lambda extracts them) and
``Environment``. A function runs in a new ``python -I -S`` interpreter on ``lambda_bootstrap.py``
(the runtime stand-in), through an exec wrapper when the template names one in
``AWS_LAMBDA_EXEC_WRAPPER``, as Lambda does (the stacks set none today); its environment is the template's plus the variables Lambda sets itself. Only values that
name deployed infrastructure (``Fn::ImportValue`` and the like) need a stand-in from the caller; a
variable whose value cannot be resolved either way stops the rehearsal with its name.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
# Paths of the Lambda execution environment, mapped onto the rehearsal's directories.
TASK_ROOT, OPT, TMP = "/var/task", "/opt", "/tmp"


class FunctionError(Exception):
    """A function's error as the Lambda runtime reports it (``errorType`` becomes the class name)."""


@dataclass(frozen=True)
class Outcome:
    result: Any
    error_type: str | None
    error_message: str | None
    modules: dict[str, str]
    logs: str


@dataclass
class DeployedFunction:
    logical_id: str
    handler: str
    code: Path
    layers: list[Path]
    memory_mb: int
    timeout_seconds: int
    variables: dict[str, str]
    invocations: list[Outcome] = field(default_factory=list)  # cold starts without an invocation excluded

    @property
    def module(self) -> str:
        return self.handler.rpartition(".")[0]


def staged_asset(outdir: Path, content: dict[str, Any]) -> Path:
    """The cloud assembly directory of a ``Code``/``Content`` property (``S3Key`` is ``<hash>.zip``)."""
    path = outdir / f"asset.{content['S3Key'].removesuffix('.zip')}"
    if not path.is_dir():
        raise AssertionError(f"asset {content['S3Key']} is not staged in {outdir}")
    return path


def resolve(value: Any, *, account: str, region: str, resources: dict[str, Any]) -> str:
    """A CloudFormation value of this stack as a string: pseudo parameters, ``Fn::Join`` and the
    ARNs of the stack's IAM roles and Lambda functions."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" and argument in ("AWS::Partition", "AWS::AccountId", "AWS::Region"):
            return {"AWS::Partition": "aws", "AWS::AccountId": account, "AWS::Region": region}[argument]
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(
                resolve(part, account=account, region=region, resources=resources) for part in parts
            )
        if name == "Fn::GetAtt" and argument[1] == "Arn":
            kind = resources.get(argument[0], {}).get("Type")
            if kind == "AWS::IAM::Role":
                return f"arn:aws:iam::{account}:role/{argument[0]}"
            if kind == "AWS::Lambda::Function":
                return f"arn:aws:lambda:{region}:{account}:function:{argument[0]}"
    raise ValueError(f"no stand-in for {json.dumps(value)}")


def deployed_functions(
    template: dict[str, Any], outdir: Path, *, account: str, region: str, stand_ins: dict[str, str]
) -> dict[str, DeployedFunction]:
    """Every ``AWS::Lambda::Function`` of the template by logical id; ``stand_ins`` gives the values of
    environment variables that name deployed infrastructure (by variable name)."""
    resources = template["Resources"]
    functions = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        variables = {}
        for name, value in properties.get("Environment", {}).get("Variables", {}).items():
            if name in stand_ins:
                variables[name] = stand_ins[name]
                continue
            try:
                variables[name] = resolve(value, account=account, region=region, resources=resources)
            except ValueError as error:
                raise AssertionError(
                    f"{logical_id}: environment variable {name} names deployed infrastructure ({error}); "
                    "give the rehearsal a stand-in for it"
                ) from None
        layers = [
            staged_asset(outdir, resources[layer["Ref"]]["Properties"]["Content"])
            for layer in properties.get("Layers", [])
        ]
        functions[logical_id] = DeployedFunction(
            logical_id=logical_id,
            handler=properties["Handler"],
            code=staged_asset(outdir, properties["Code"]),
            layers=layers,
            memory_mb=int(properties.get("MemorySize", 128)),
            timeout_seconds=int(properties.get("Timeout", 3)),
            variables=variables,
        )
    return functions


def merge_layers(layers: list[Path], opt: Path) -> None:
    """Lay the layers out in ``opt`` in order, a later layer's file replacing an earlier one's (as
    Lambda extracts them into /opt). Files are symlinked: Python keeps the link's path as ``__file__``."""
    for layer in layers:
        for directory, _, files in os.walk(layer, followlinks=True):
            relative = Path(directory).relative_to(layer)
            (opt / relative).mkdir(parents=True, exist_ok=True)
            for name in files:
                target = opt / relative / name
                target.unlink(missing_ok=True)
                target.symlink_to(Path(directory) / name)


@dataclass
class LambdaEnvironment:
    """Where the rehearsal's functions run: their ``/opt`` and ``/tmp``, the AWS they call, and
    what Lambda itself would give them (credentials, region, X-Ray daemon)."""

    scratch: Path
    account: str
    region: str
    aws_variables: dict[str, str]
    xray_daemon: str
    opts: dict[tuple[Path, ...], Path] = field(default_factory=dict)

    def opt_for(self, function: DeployedFunction) -> Path:
        key = tuple(function.layers)
        if key not in self.opts:
            opt = self.scratch / f"opt-{len(self.opts)}"
            merge_layers(function.layers, opt)
            self.opts[key] = opt
        return self.opts[key]

    def local_path(self, value: str, function: DeployedFunction) -> str:
        for prefix, local in (
            (TASK_ROOT, function.code),
            (OPT, self.opt_for(function)),
            (TMP, self.scratch / "tmp"),
        ):
            if value == prefix or value.startswith(prefix + "/"):
                return str(local) + value[len(prefix) :]
        return value

    def environment(self, function: DeployedFunction, request_id: str) -> dict[str, str]:
        name = function.logical_id
        trace_id = f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
        lambda_sets = {
            "LAMBDA_TASK_ROOT": str(function.code),
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "_HANDLER": function.handler,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"rehearsal/[$LATEST]{request_id}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_XRAY_DAEMON_ADDRESS": self.xray_daemon,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "_X_AMZN_TRACE_ID": f"Root={trace_id};Parent={secrets.token_hex(8)};Sampled=1",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            **self.aws_variables,
        }
        (self.scratch / "tmp").mkdir(exist_ok=True)
        configured = {key: self.local_path(value, function) for key, value in function.variables.items()}
        return {
            **configured,
            **lambda_sets,
            # read by lambda_bootstrap.py for the context object
            "REHEARSAL_FUNCTION_ARN": f"arn:aws:lambda:{self.region}:{self.account}:function:{name}",
            "REHEARSAL_REQUEST_ID": request_id,
            "REHEARSAL_TIMEOUT_SECONDS": str(function.timeout_seconds),
        }

    def run(self, function: DeployedFunction, event: Any, *, init_only: bool = False) -> Outcome:
        """One cold start (and invocation) of the function in a new isolated interpreter."""
        request_id = secrets.token_hex(8)
        environment = self.environment(function, request_id)
        opt = self.opt_for(function)
        runtime = [sys.executable, "-I", "-S", str(BOOTSTRAP), str(opt)]
        with tempfile.TemporaryDirectory(dir=self.scratch) as work:
            outcome_path = Path(work) / "outcome.json"
            command = [*runtime, str(outcome_path), "init" if init_only else "invoke"]
            wrapper = environment.get("AWS_LAMBDA_EXEC_WRAPPER")  # already mapped onto the local /opt
            if wrapper:  # Lambda starts the runtime through the wrapper: <wrapper> <runtime command...>
                command = [sys.executable, "-I", "-S", wrapper, *command]
            completed = subprocess.run(
                command,
                input=json.dumps(event),
                env=environment,
                cwd=function.code,
                capture_output=True,
                text=True,
                timeout=function.timeout_seconds,
            )
            logs = completed.stdout + completed.stderr
            if not outcome_path.is_file():
                outcome = Outcome(None, "Runtime.ExitError", f"exit {completed.returncode}", {}, logs)
            else:
                raw = json.loads(outcome_path.read_text(encoding="utf-8"))
                outcome = Outcome(
                    raw.get("result"), raw.get("errorType"), raw.get("errorMessage"), raw["modules"], logs
                )
        if not init_only:
            function.invocations.append(outcome)
        return outcome

    def handler_for(self, function: DeployedFunction) -> Any:
        """A handler for ``tests.pipeline.lambda_seam.routed_lambda``: the function runs out of process
        and its error reaches the state machine under the runtime's ``errorType``."""

        def invoke(event: dict[str, Any], context: Any) -> Any:
            outcome = self.run(function, event)
            if outcome.error_type is not None:
                raise type(outcome.error_type, (FunctionError,), {})(outcome.error_message)
            return outcome.result

        return invoke

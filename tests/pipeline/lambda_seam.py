"""The project's Lambda seam for moto: Lambda tasks of an executing state machine run real handlers.

moto runs no Lambda code without docker. In the process that runs the moto server (the test
process: ``demo_aws`` is a ThreadedMotoServer), ``invoke`` of moto's Lambda backends is replaced by
a router from function name to an in-process handler. Both the docker backend and the simple
one are patched, and moto's ``lambda.use_docker`` config is left alone on purpose: switching it
to false makes moto serve Lambda from a separate, empty backend, so the estate's 40 functions
would vanish from ``ListFunctions`` while the state machine runs. A handler's return value is the invocation's
JSON payload; an exception becomes a function error (``x-amz-function-error: Unhandled`` with
``errorType`` / ``errorMessage``) exactly as the Lambda runtime reports it, so the state
machine's Retry and Catch see the handler's exception class name.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class FakeLambdaContext:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class Invocations:
    """Every routed invocation, in order: (function name, event)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [event for called, event in self.calls if called == name]


def function_name_of(name_or_arn: str) -> str:
    value = unquote(name_or_arn)
    if ":function:" in value:
        value = value.split(":function:", 1)[1].split(":", 1)[0]
    return value


@contextmanager
def routed_lambda(routes: dict[str, Handler]) -> Iterator[Invocations]:
    """Route invocations of the named functions to handlers while the context is open."""
    originals = {LambdaBackend: LambdaBackend.invoke, LambdaSimpleBackend: LambdaSimpleBackend.invoke}
    invocations = Invocations()
    counter = iter(range(1, 10**9))

    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        name = function_name_of(function_name)
        handler = routes.get(name)
        if handler is None:
            original = originals[
                LambdaSimpleBackend if isinstance(self, LambdaSimpleBackend) else LambdaBackend
            ]
            return original(self, function_name, qualifier, body, headers, response_headers)
        event = json.loads(body) if body else {}
        with invocations.lock:
            invocations.calls.append((name, event))
            request_id = f"local-{next(counter)}"
        context = FakeLambdaContext(function_name=name, aws_request_id=request_id)
        try:
            result = handler(event, context)
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
        return json.dumps(result).encode()

    for backend in originals:
        backend.invoke = invoke  # type: ignore[method-assign]
    try:
        yield invocations
    finally:
        for backend, original in originals.items():
            backend.invoke = original  # type: ignore[method-assign]


def set_moto_config(endpoint_url: str, config: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/config",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()

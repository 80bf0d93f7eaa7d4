"""The gateway's X-Ray middleware: a segment per request continuing the caller's trace, work done in a
worker thread recorded inside it, sent to a daemon (a UDP socket on loopback, read back here)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import anyio
import pytest
from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tag_compliance_mcp.tracing import SERVICE_NAME, TracingMiddleware, configure

TRACE_ID = "1-67891233-abcdef012345678912345678"
PARENT_ID = "53995c3f42cd8ad8"


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    enabled = global_sdk_config.sdk_enabled()  # configure() turns the process-wide switch on
    yield sock
    global_sdk_config.set_sdk_enabled(enabled)
    sock.close()


def _segments(daemon: socket.socket) -> list[dict]:
    received = []
    daemon.settimeout(0.5)
    try:
        while True:
            datagram = daemon.recv(65536).decode()
            received.append(json.loads(datagram.split("\n", 1)[1]))  # header line, then the document
    except TimeoutError:
        return received


def _app(recorder: AWSXRayRecorder) -> TracingMiddleware:
    def work_in_a_thread() -> str:
        # What a tool's boto3 call does: open a subsegment under whatever the context holds.
        subsegment = recorder.begin_subsegment("scan", "aws")
        assert subsegment is not None, "the request's segment is not visible in the worker thread"
        recorder.end_subsegment()
        return subsegment.id

    async def tool(request: Request) -> JSONResponse:
        return JSONResponse({"subsegment": await anyio.to_thread.run_sync(work_in_a_thread)})

    async def fail(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=503)

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/mcp", tool, methods=["POST"]), Route("/fail", fail), Route("/health", health)]
    return TracingMiddleware(Starlette(routes=routes), recorder)


class Answer:
    def __init__(self, messages: list[dict]) -> None:
        start = next(m for m in messages if m["type"] == "http.response.start")
        self.status_code = start["status"]
        self.body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")

    def json(self) -> dict:
        return json.loads(self.body)


async def _call(app: TracingMiddleware, method: str, path: str, headers: dict[str, str]) -> Answer:
    """One HTTP request through the ASGI interface, as uvicorn makes it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"mcp.example.com")]
        + [(key.lower().encode(), value.encode()) for key, value in headers.items()],
        "client": ("203.0.113.9", 50000),
        "server": ("10.0.0.5", 8080),
    }
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return Answer(messages)


def test_a_request_continues_the_callers_trace_with_its_thread_work_inside(daemon: socket.socket) -> None:
    host, port = daemon.getsockname()
    recorder = configure(f"{host}:{port}", AWSXRayRecorder())
    app = _app(recorder)
    header = f"Root={TRACE_ID};Parent={PARENT_ID};Sampled=1"
    response = anyio.run(lambda: _call(app, "POST", "/mcp", headers={"X-Amzn-Trace-Id": header}))
    assert response.status_code == 200
    (segment,) = _segments(daemon)
    assert segment["name"] == SERVICE_NAME
    assert segment["trace_id"] == TRACE_ID and segment["parent_id"] == PARENT_ID
    assert segment["http"]["request"]["method"] == "POST"
    assert segment["http"]["request"]["url"] == "https://mcp.example.com/mcp"
    assert segment["http"]["request"]["client_ip"] == "203.0.113.9"
    assert segment["http"]["response"]["status"] == 200
    (subsegment,) = segment["subsegments"]
    assert subsegment["name"] == "scan" and subsegment["id"] == response.json()["subsegment"]


def test_server_errors_are_faults_and_health_checks_are_not_traced(daemon: socket.socket) -> None:
    host, port = daemon.getsockname()
    recorder = configure(f"{host}:{port}", AWSXRayRecorder())
    app = _app(recorder)
    sampled = {"X-Amzn-Trace-Id": f"Root={TRACE_ID};Sampled=1"}
    assert anyio.run(lambda: _call(app, "GET", "/health", headers=sampled)).status_code == 200
    assert anyio.run(lambda: _call(app, "GET", "/fail", headers=sampled)).status_code == 503
    (segment,) = _segments(daemon)  # /health sent nothing
    assert segment["http"]["response"]["status"] == 503 and segment["fault"] is True

"""X-Ray tracing of the HTTP gateway: one segment per request, its AWS calls as subsegments.

On when ``AWS_XRAY_DAEMON_ADDRESS`` is set (the ECS task runs the X-Ray daemon beside the gateway).
A request's segment lives in a ContextVar, not a thread-local: tools run in worker threads (anyio
copies the context into them), so the boto3 calls they make (``patch(["botocore"])``) record as
subsegments of that request and carry its trace header; ``StartExecution`` passes it to the audit
state machine, whose Lambdas then join the same trace.

An MCP session's requests are handled in the session's own task, which holds the context of the
request that opened the session; ``ToolTraceMiddleware`` (an MCP middleware) therefore puts each
request's own segment, which ``TracingMiddleware`` leaves in the ASGI scope, back in place.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.context import Context
from aws_xray_sdk.core.models import http
from aws_xray_sdk.core.models.entity import Entity
from aws_xray_sdk.core.models.trace_header import TraceHeader
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from aws_xray_sdk.ext.util import calculate_sampling_decision
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagcompliance.observability.metrics import GATEWAY_SERVICE

SERVICE_NAME = GATEWAY_SERVICE  # the X-Ray segment is named like the log lines' service
# The load balancer's and the container's checks, every few seconds.
UNTRACED_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
SEGMENT_SCOPE_KEY = "tagcompliance.xray_segment"
_ENTITIES: ContextVar[tuple[Entity, ...]] = ContextVar("tagcompliance_xray_entities", default=())


class RequestContext(Context):
    """X-Ray's trace-entity stack in a ContextVar (immutable tuples, so copies never share state)."""

    def __init__(self) -> None:
        # A call outside any request (start-up, the local scheduler) is simply not traced.
        super().__init__(context_missing="IGNORE_ERROR")

    def put_segment(self, segment: Entity) -> None:
        _ENTITIES.set((segment,))

    def put_subsegment(self, subsegment: Entity) -> None:
        entity = self.get_trace_entity()
        if entity is None:
            return
        entity.add_subsegment(subsegment)
        _ENTITIES.set((*_ENTITIES.get(), subsegment))

    def end_subsegment(self, end_time: float | None = None) -> bool:
        entity = self.get_trace_entity()
        if not self._is_subsegment(entity):
            return False
        entity.close(end_time)
        _ENTITIES.set(_ENTITIES.get()[:-1])
        return True

    def get_trace_entity(self) -> Any:
        entities = _ENTITIES.get()
        if not entities:
            return self.handle_context_missing()
        return entities[-1]

    def set_trace_entity(self, trace_entity: Entity) -> None:
        _ENTITIES.set((trace_entity,))

    def clear_trace_entities(self) -> None:
        _ENTITIES.set(())


def configure(daemon_address: str, recorder: AWSXRayRecorder = xray_recorder) -> AWSXRayRecorder:
    """``recorder`` sending to ``daemon_address`` (host:port, UDP), its entities in RequestContext."""
    # The SDK switch is process-wide, and Powertools' Tracer turns it off outside Lambda.
    global_sdk_config.set_sdk_enabled(True)
    recorder.configure(
        service=SERVICE_NAME,
        daemon_address=daemon_address,
        context=RequestContext(),
        context_missing="IGNORE_ERROR",
    )
    return recorder


def instrument(app: ASGIApp, daemon_address: str) -> ASGIApp:
    """The gateway's HTTP app traced: the process-wide recorder, and every boto3 call recorded."""
    recorder = configure(daemon_address)
    patch(["botocore"])
    return TracingMiddleware(app, recorder)


class TracingMiddleware:
    """ASGI middleware: a segment per HTTP request, continuing the caller's ``X-Amzn-Trace-Id``."""

    def __init__(self, app: ASGIApp, recorder: AWSXRayRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        incoming = TraceHeader.from_header_str(headers.get(http.XRAY_HEADER.lower()))
        host = headers.get("host", "")
        sampling = calculate_sampling_decision(
            trace_header=incoming,
            recorder=self.recorder,
            sampling_req={
                "host": host,
                "method": scope["method"],
                "path": scope["path"],
                "service": SERVICE_NAME,
            },
        )
        segment = self.recorder.begin_segment(
            name=SERVICE_NAME, traceid=incoming.root, parent_id=incoming.parent, sampling=sampling
        )
        segment.put_http_meta(http.METHOD, scope["method"])
        segment.put_http_meta(http.URL, f"{scope.get('scheme', 'http')}://{host}{scope['path']}")
        client = scope.get("client")
        if client:
            segment.put_http_meta(http.CLIENT_IP, client[0])
        if "user-agent" in headers:
            segment.put_http_meta(http.USER_AGENT, headers["user-agent"])

        async def send_traced(message: Message) -> None:
            if message["type"] == "http.response.start":
                segment.put_http_meta(http.STATUS, message["status"])
                if message["status"] >= 500:
                    segment.add_fault_flag()
                elif message["status"] == 429:
                    segment.add_throttle_flag()
                elif message["status"] >= 400:
                    segment.add_error_flag()
            await send(message)

        try:
            await self.app({**scope, SEGMENT_SCOPE_KEY: segment}, receive, send_traced)
        except Exception as error:
            segment.add_exception(error, stack=[])
            raise
        finally:
            self.recorder.end_segment()


class ToolTraceMiddleware:
    """MCP middleware: each request runs under the segment of the HTTP request that carried it."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        scope = getattr(ctx.request, "scope", None)  # a Starlette request over HTTP; None over stdio
        segment = scope.get(SEGMENT_SCOPE_KEY) if isinstance(scope, dict) else None
        if segment is None:
            return await call_next(ctx)
        token = _ENTITIES.set((segment,))
        try:
            return await call_next(ctx)
        finally:
            _ENTITIES.reset(token)

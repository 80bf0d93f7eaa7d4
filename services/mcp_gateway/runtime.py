"""Wiring: settings -> AWS clients, store, cache and the compliance service; plus tool-call plumbing.

Every tool's work goes through ``run_tool``: it runs in a worker thread, progress is relayed to
the client and errors become clear messages (never tracebacks). ``CallLogMiddleware`` writes every
tool call, refused ones included, to the call log, and gives each call its budget
(``tagcompliance.resilience``): the work must stop ``ANSWER_RESERVE_SECONDS`` before
``TOOL_DEADLINE_SECONDS`` (a scan then answers with the shards it finished), and the call is
answered by the deadline even if the work is still stuck in a request. A client's cancellation
(or disconnect, or the server's shutdown) cancels the budget, so the work sends no more requests.
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from tagcompliance.audits import InProcessRunner, StepFunctionsRunner, build_runner, scheduled_audit_runner
from tagcompliance.audits.jobs import LargeScanJobs
from tagcompliance.aws import AwsClients, describe_aws_error
from tagcompliance.cache import Cache, open_cache
from tagcompliance.errors import TagComplianceError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.observability import collect_notes, log_context
from tagcompliance.policy_import import OrganizationsTagPolicySource, detect_policy_at_startup
from tagcompliance.resilience import CallBudget, budget_scope, current_budget
from tagcompliance.schedules import EventBridgeScheduler, LocalSchedulerLoop
from tagcompliance.service import ComplianceService
from tagcompliance.settings import Settings
from tagcompliance.store import CallRecord, Store, open_store
from tagcompliance.store.spool import CallLogSpool, DurableCallLog

from .auth.logfilter import public_error, redact
from .callevents import emit_call_event, note_failure
from .health import health_report

logger = logging.getLogger("tagcompliance.gateway")
ResultT = TypeVar("ResultT", bound=BaseModel)
PROGRESS_INTERVAL_SECONDS = 0.5
# Of a call's deadline, the time kept for answering once the work stops (evaluating what a scan
# found, storing its snapshot, sending the answer): the work's own deadline is this much earlier.
ANSWER_RESERVE_SECONDS = 2.0


@dataclass(slots=True)
class Runtime:
    settings: Settings
    service: ComplianceService
    store: Store
    cache: Cache
    transport: str
    policy_detection: str
    scheduler_loop: LocalSchedulerLoop | None = None
    runner: InProcessRunner | StepFunctionsRunner | None = None  # audit runs (get_audit_status)
    auth_mode: str | None = None  # set by the entry point: "oauth (...)" or why there is none
    call_log: DurableCallLog | None = None  # the store's call log with the local spool behind it

    def health(self) -> dict[str, Any]:
        """The state and configuration, computed now (blocking; ``/health`` uses ``health.Readiness``)."""
        return health_report(self)

    def close(self) -> None:
        if self.scheduler_loop is not None:
            self.scheduler_loop.stop()
        if self.call_log is not None:
            self.call_log.stop()  # spooled rows stay on disk: the next start replays them
        self.store.close()


def build_runtime(settings: Settings, transport: str) -> Runtime:
    clients = AwsClients(settings)
    # Before anything reads the policy: without a policy file, import the organization's tag policy.
    detection = detect_policy_at_startup(
        OrganizationsTagPolicySource(clients),
        auto_import=settings.auto_import_aws_policy,
        policy_id=settings.aws_policy_id,
        fallback_to_default=settings.fallback_to_default_policy,
        policy_path=settings.policy_path,
    )
    logger.info("tagging policy: %s", detection.description)
    store = open_store(settings)
    cache = open_cache(settings)
    scheduler = None
    if settings.state_machine_arn and settings.scheduler_role_arn:
        scheduler = EventBridgeScheduler(
            clients, settings.scheduler_group, settings.state_machine_arn, settings.scheduler_role_arn
        )
    service = ComplianceService(settings, clients, store, cache, scheduler=scheduler)
    service.loaded_policy  # noqa: B018 - fail at start-up, not at the first call, on a broken policy file
    runtime = Runtime(
        settings=settings,
        service=service,
        store=store,
        cache=cache,
        transport=transport,
        policy_detection=detection.description,
        call_log=DurableCallLog(store, CallLogSpool(settings.data_dir)),
    )
    runtime.call_log.start()  # replays rows spooled by an earlier outage, even one before a restart
    try:  # in-process, or Step Functions when STATE_MACHINE_ARN is set; large checks become its jobs
        runtime.runner = build_runner(settings, clients, store, lambda: service.loaded_policy.policy)
        service.large_scan_jobs = LargeScanJobs(runtime.runner, settings, store, cache)
    except ValueError as error:
        logger.error("audit runs are unavailable: %s", error)
    # Without EventBridge, this process fires due schedules itself (claims keep replicas from doubling).
    if scheduler is None and settings.local_scheduler_interval_seconds and transport != "memory":
        run_audit = (
            scheduled_audit_runner(runtime.runner, settings, clients)
            if runtime.runner is not None
            else service.run_scheduled_audit
        )
        runtime.scheduler_loop = LocalSchedulerLoop(
            store, run_audit, settings.local_scheduler_interval_seconds
        )
        runtime.scheduler_loop.start()
    return runtime


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Scalars and list sizes of a result: enough to audit, small enough to store for every call."""
    summary: dict[str, Any] = {}
    for name, value in result.items():
        if name == "confirmation_token" and value is not None:
            summary[name] = "[redacted]"  # a live credential until used: only its hash is stored
        elif (
            isinstance(value, bool | int | float)
            or value is None
            or (isinstance(value, str) and len(value) <= 200)
        ):
            summary[name] = value
        elif isinstance(value, list | dict):
            summary[f"{name}_count"] = len(value)
    return summary


def _friendly_error(error: Exception) -> str:
    if isinstance(error, TagComplianceError):
        return str(error)
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure a profile, environment variables or a role"
    if isinstance(error, EndpointConnectionError):
        return f"AWS endpoint unreachable: {error}"
    if isinstance(error, ClientError | BotoCoreError):
        return f"AWS error: {describe_aws_error(error)}"
    return ""


async def run_tool(ctx: Context | None, work: Callable[[ProgressCallback], ResultT]) -> ResultT:
    """Run a tool's blocking work in a worker thread, relay its progress, and turn every failure
    into a clear message (never a traceback)."""
    try:
        return await _run_with_progress(ctx, work)
    except ToolError:
        raise
    except Exception as error:
        note_failure(error)
        message = _friendly_error(error)
        if not message:
            incident = uuid.uuid4().hex[:12]
            logger.exception("tool call failed (incident %s)", incident)
            message = f"internal error ({type(error).__name__}); incident {incident} is in the server log"
        raise ToolError(message) from None


class CallLogMiddleware:
    """Writes every ``tools/call`` to the call log (the ``call_log`` table), including calls the SDK
    refuses before the tool runs (unknown tool, arguments that fail the schema)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.local_user = f"local:{_login_name()}"

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or ctx.request_id is None:
            return await call_next(ctx)
        started = time.monotonic()
        params = dict(ctx.params or {})
        token = get_access_token()
        if token is not None:
            user_id, client_id = token.subject or f"client:{token.client_id}", token.client_id
        else:
            user_id = self.local_user if self.runtime.transport == "stdio" else "anonymous"
            client_id = None
        status, error_message, summary, structured = "error", None, {}, {}
        deadline = self.runtime.settings.tool_deadline_seconds
        # The row's identity (a replay from the spool writes it once), and the call's correlation id:
        # an audit it starts, and every log line of it, carry the same id.
        call_id = uuid.uuid4().hex
        tool_name = str(params.get("name") or "")[:100]
        fields = call_log_fields(ctx, tool_name, user_id, client_id, call_id)
        with log_context(**fields), collect_notes() as notes:
            try:
                with budget_scope(CallBudget.lasting(deadline - ANSWER_RESERVE_SECONDS)):
                    result = await call_next(ctx)
            except Exception as error:
                error_message = public_error(str(error))[:1000] or type(error).__name__
                note_failure(error)
                raise
            else:
                is_error, content, structured = _call_outcome(result)
                if is_error:  # the SDK's own errors (argument validation) repeat what was sent
                    _redact_blocks(content)
                    error_message = " ".join(_block_text(block) for block in content)[:1000]
                else:
                    status = "success"
                    summary = summarize(structured)
                return result
            finally:
                record = CallRecord(
                    timestamp=datetime.now(UTC),
                    user_id=user_id[:200],
                    tool_name=tool_name,
                    parameters=redact(params.get("arguments") or {}),
                    result_summary=summary,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    status=status,
                    error_message=error_message,
                    client_id=client_id[:200] if client_id else None,
                    ip_address=getattr(getattr(ctx.request, "client", None), "host", None),
                    user_agent=_user_agent(ctx.request),
                    call_id=call_id,
                )
                try:
                    emit_call_event(record, structured, notes, emf=self.runtime.settings.log_format == "json")
                except Exception:  # the answer and the call log row never depend on the log event
                    logger.exception("could not log the event of a %s call", record.tool_name)
                await anyio.to_thread.run_sync(self._write, record)

    def _write(self, record: CallRecord) -> None:
        try:
            if self.runtime.call_log is not None:  # the store, or the local spool while it is down
                self.runtime.call_log.record(record)
            else:
                self.runtime.store.record_call(record)
        except Exception:  # neither the store nor the disk took it: the gap is logged loudly
            logger.exception("could not write the call log entry for %s", record.tool_name)


async def _in_thread(
    budget: CallBudget, work: Callable[[ProgressCallback], ResultT], progress: ProgressCallback
) -> ResultT:
    """``work`` in a worker thread under ``budget``. Cancelled (the client's notifications/cancelled,
    a disconnect, shutdown), the call stops waiting at once and cancels the budget, so the thread
    sends no further AWS request and starts no further shard. Past the work's deadline plus the
    answer reserve, the call answers without it (it can only be stuck in a request on the wire)."""

    def call(progress: ProgressCallback) -> ResultT:
        with budget_scope(budget):
            return work(progress)

    remaining = budget.remaining()
    limit = None if remaining is None else max(remaining, 0.0) + ANSWER_RESERVE_SECONDS
    try:
        with anyio.fail_after(limit):
            return await anyio.to_thread.run_sync(call, progress, abandon_on_cancel=True)
    except TimeoutError:
        budget.cancel("deadline")
        raise ToolError(
            "no answer within the call's deadline (TOOL_DEADLINE_SECONDS): AWS did not respond in time "
            "and nothing was counted; try again later or with a smaller scope"
        ) from None
    except anyio.get_cancelled_exc_class():
        budget.cancel("cancelled")
        raise


async def _run_with_progress(ctx: Context | None, work: Callable[[ProgressCallback], ResultT]) -> ResultT:
    latest: list[tuple[int, int, str]] = []
    budget = current_budget() or CallBudget.lasting(None)

    def progress(done: int, total: int, message: str) -> None:
        latest[:] = [(done, total, message)]

    if ctx is None:
        return await _in_thread(budget, work, progress)
    outcome: list[ResultT] = []
    failure: list[BaseException] = []

    async def relay() -> None:
        # The first step is reported at once, later ones at most every PROGRESS_INTERVAL_SECONDS.
        reported: tuple[int, int, str] | None = None
        last_sent = 0.0
        while True:
            await anyio.sleep(0.05)
            now = time.monotonic()
            due = reported is None or now - last_sent >= PROGRESS_INTERVAL_SECONDS
            if latest and latest[0] != reported and due:
                reported, last_sent = latest[0], now
                await ctx.report_progress(reported[0], reported[1], reported[2])

    # The relay starts at the first progress report (from whichever thread makes it), not per call:
    # most calls (cached answers, the policy) report none, and a relay task started and cancelled
    # for each of them cost the event loop about 0.1 ms a call. It waits 0.05 s before its first
    # report either way.
    token = anyio.lowlevel.current_token()
    start_lock = threading.Lock()
    relay_started: list[bool] = []

    def progress_and_relay(done: int, total: int, message: str) -> None:
        progress(done, total, message)
        with start_lock:
            if relay_started:
                return
            relay_started.append(True)
        try:
            anyio.from_thread.run_sync(group.start_soon, relay, token=token)
        except Exception:  # the event loop is gone (shutting down): progress must never fail the work
            logger.debug("progress relay not started", exc_info=True)

    async with anyio.create_task_group() as group:
        try:
            outcome.append(await _in_thread(budget, work, progress_and_relay))
        except Exception as error:  # re-raised below as itself, not wrapped in an ExceptionGroup
            failure.append(error)
        finally:
            group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]


def _call_outcome(result: Any) -> tuple[bool, list[Any], dict[str, Any]]:
    """(is error, content blocks, structured content) of a ``tools/call`` result. A ``CallToolResult``
    is read by attribute: dumping it would copy the whole answer (a page of violations, twice: as
    structured content and as its JSON text) on every call just to look at three fields."""
    if isinstance(result, BaseModel) and "is_error" in type(result).model_fields:
        return (
            bool(getattr(result, "is_error", False)),
            list(getattr(result, "content", None) or []),
            getattr(result, "structured_content", None) or {},
        )
    data = result.model_dump() if isinstance(result, BaseModel) else dict(result or {})
    return (
        bool(data.get("is_error") or data.get("isError")),
        list(data.get("content") or []),
        data.get("structured_content") or data.get("structuredContent") or {},
    )


def call_log_fields(
    ctx: ServerRequestContext[Any, Any], tool: str, user: str, client_id: str | None, call_id: str
) -> dict[str, Any]:
    """The log context of one tool call: every line it logs carries these."""
    headers = getattr(ctx.request, "headers", None)
    return {
        "correlation_id": call_id,
        "mcp_session_id": headers.get("mcp-session-id") if headers is not None else None,
        "jsonrpc_request_id": ctx.request_id,
        "tool": tool,
        "user": user,
        "oauth_client": client_id,
    }


def _redact_blocks(content: list[Any]) -> None:
    """An error answer's text blocks through ``public_error``, in place (the answer sent is this one)."""
    for block in content:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            block["text"] = public_error(block["text"])
        elif isinstance(getattr(block, "text", None), str):
            block.text = public_error(block.text)


def _block_text(block: Any) -> str:
    """A content block's text (a dict or a model); blocks without text (images) give ""."""
    if isinstance(block, dict):
        return str(block.get("text", ""))
    return str(getattr(block, "text", ""))


def _user_agent(request: Any) -> str | None:
    headers = getattr(request, "headers", None)
    return headers.get("user-agent") if headers is not None else None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

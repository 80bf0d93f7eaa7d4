"""The log context: the correlation fields every log line of the current work carries.

Plain ``contextvars``: the gateway binds a tool call's fields (MCP session, JSON-RPC request id,
tool, user, OAuth client, correlation id), a Lambda handler binds its invocation's (run id,
correlation id, batch, schedule), the in-process audit runner binds a run's. The JSON formatter
(``observability.logs``) writes them on every record, whichever logger made it, so the core's own
loggers need no parameter to say which run they work for.

anyio's worker threads run in a copy of the caller's context, so a tool's work inherits the call's
fields; plain threads do not, which is why ``in_current_context`` exists.

``collect_notes`` / ``note`` go the other direction: what the code under one tool call learns about
it (the call was refused, a failure's AWS request id), read back by whoever reports the call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

# The fields a log line may carry, in the order the JSON formatter writes them.
CORRELATION_FIELDS = (
    "correlation_id",
    "mcp_session_id",
    "jsonrpc_request_id",
    "tool",
    "user",
    "oauth_client",
    "run_id",
    "schedule_id",
    "batch_id",
    "shard_id",
    "aws_request_id",
)

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_FIELDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("log_fields", default=_NO_FIELDS)
_NOTES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("call_notes", default=None)
P = ParamSpec("P")
T = TypeVar("T")


def log_fields() -> Mapping[str, Any]:
    """The fields bound now (a read-only view: bind with ``log_context``)."""
    return _FIELDS.get()


def correlation_id() -> str | None:
    """The correlation id of the work under way (a tool call's, an audit run's), if any."""
    value = _FIELDS.get().get("correlation_id")
    return value if isinstance(value, str) and value else None


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (``None`` values left out) on top of the current ones while the block runs."""
    bound = {name: value for name, value in fields.items() if value is not None}
    token = _FIELDS.set(MappingProxyType({**_FIELDS.get(), **bound}))
    try:
        yield
    finally:
        _FIELDS.reset(token)


def in_current_context(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` bound to a copy of the current context: for ``threading.Thread`` targets and pool
    workers, which start from an empty context."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        # A copy per call: one context cannot be entered by two threads at once.
        return context.copy().run(function, *args, **kwargs)

    return run


@contextmanager
def collect_notes() -> Iterator[dict[str, Any]]:
    """Collect ``note``s while the block runs; the dict is shared with every copy of the context (the
    call's worker threads)."""
    notes: dict[str, Any] = {}
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def note(**values: Any) -> None:
    """Tell the current call's reporter something (nothing happens outside a call)."""
    notes = _NOTES.get()
    if notes is not None:
        notes.update({name: value for name, value in values.items() if value is not None})

"""Where the gateway reaches into the mcp SDK beyond its public API (its contract test,
``tests/contract/test_mcp_tool_internals.py``, fails when an SDK upgrade changes what is relied on).

- ``request_tool``: a tool whose arguments are a core request model (``tagcompliance.requests``). The SDK
  derives a tool's input schema from its function signature, so the signature is built from the
  model's fields (``__signature__``, which ``inspect.signature`` honours).
- ``forbid_unknown_arguments``: the SDK ignores arguments a tool does not take and offers no switch;
  each registered tool's argument model (``Tool.fn_metadata.arg_model``) is tightened instead.
- ``allow_safety_responses``: a guarded tool answers its result OR a ``SafetyResponse``; its published
  and validated output (``FuncMetadata.output_model/output_schema/wrap_output``) is set to that union.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, Union, get_args, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from pydantic import TypeAdapter

from tagcompliance.requests import ToolRequest
from tagcompliance.safety.models import SafetyResponse

RequestT = TypeVar("RequestT", bound=ToolRequest)
Handler = Callable[[Context, RequestT], Awaitable[Any]]

SAFETY_NOTE = (
    " When resource types, regions or (for costs) the period are not given, the answer is "
    "clarification_needed: ask the user which option they mean rather than guessing. Large, costly or "
    "writing calls first return an intent_commit: show it to the user and, once they confirm, call again "
    "with its confirmation_token."
)


def request_tool(
    mcp: MCPServer, request_model: type[RequestT]
) -> Callable[[Handler[RequestT]], Handler[RequestT]]:
    """Register ``handler(ctx, request)`` as the tool named like it, described by its docstring, taking
    ``request_model``'s fields as its arguments and returning what it is annotated to return."""

    def register(handler: Handler[RequestT]) -> Handler[RequestT]:
        returns = get_type_hints(handler)["return"]

        async def tool(ctx: Context, **arguments: Any) -> Any:
            # The SDK validated each argument against the same fields; this builds the model once.
            return await handler(ctx, request_model.model_validate(arguments))

        parameters = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
        for name, field in request_model.model_fields.items():
            parameters.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[field.annotation, field],
                    default=inspect.Parameter.empty if field.is_required() else field.default,
                )
            )
        tool.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
        tool.__annotations__ = {"ctx": Context, "return": returns}
        tool.__name__ = tool.__qualname__ = handler.__name__
        tool.__doc__ = handler.__doc__
        mcp.tool()(tool)
        return handler

    return register


def forbid_unknown_arguments(mcp: MCPServer) -> None:
    """A misspelt argument is an error, not silently dropped: ``resource_type=`` for ``resource_types=``
    would otherwise widen a scan to its defaults without telling anyone."""
    for tool in mcp._tool_manager.list_tools():
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters["additionalProperties"] = False


def allow_safety_responses(mcp: MCPServer) -> None:
    """Publish (and validate) the output of each tool declared to return ``X | SafetyResponse`` (a
    guarded tool) as exactly that union; the SDK would otherwise wrap it as ``{"result": ...}``."""
    for tool in mcp._tool_manager.list_tools():
        returned = get_type_hints(tool.fn).get("return")
        members = [member for member in get_args(returned) if member is not type(None)]
        if SafetyResponse not in members:
            continue
        union = Union[tuple(members)]  # noqa: UP007 - built at run time
        schema = TypeAdapter(union).json_schema(mode="serialization")
        metadata = tool.fn_metadata
        metadata.output_model = union
        metadata.wrap_output = False
        metadata.output_schema = {"type": "object", **schema}
        if SAFETY_NOTE not in (tool.description or ""):
            tool.description = (tool.description or "") + SAFETY_NOTE

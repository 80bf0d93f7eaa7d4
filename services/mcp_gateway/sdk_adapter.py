"""Where the gateway reaches into the mcp SDK beyond its public API (its contract test,
``tests/contract/test_mcp_tool_internals.py``, fails when an SDK upgrade changes what is relied on).

- ``request_tool``: a tool whose arguments are a core request model (``tagcompliance.requests``). The SDK
  derives a tool's input schema from its function signature, so the signature is built from the
  model's fields (``__signature__``, which ``inspect.signature`` honours). It answers a ``CallToolResult``
  (``rendering.answer``: the text a model reads, the whole result as structured content), which the SDK
  passes through after validating the structured content against the published output model.
- ``forbid_unknown_arguments``: the SDK ignores arguments a tool does not take and offers no switch;
  each registered tool's argument model (``Tool.fn_metadata.arg_model``) is tightened instead.
- ``allow_safety_responses``: a guarded tool answers its result OR a ``SafetyResponse``; its published
  and validated output (``FuncMetadata.output_model/output_schema/wrap_output``) is set to that union.
- ``compact_schemas``: what ``tools/list`` publishes (``Tool.parameters``, ``FuncMetadata.output_schema``)
  without pydantic's titles and, in input schemas, without the ``null`` branch of optional arguments
  (leaving one out means the same). The safety answer is published once in words (the server's
  instructions) and as a loose object in each output schema: its full schema repeated in eleven tools
  was most of ``tools/list``. Validation still uses the full models (``arg_model``, ``output_model``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, Union, get_args, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from pydantic import TypeAdapter

from tagcompliance.requests import ToolRequest
from tagcompliance.safety.models import SafetyResponse

from .rendering import answer

RequestT = TypeVar("RequestT", bound=ToolRequest)
Handler = Callable[[Context, RequestT], Awaitable[Any]]

# The safety answer as each guarded tool's output schema publishes it (the instructions say the rest).
SAFETY_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Safety answer instead of the result: nothing was scanned or changed (see instructions).",
    "properties": {"safety": {"enum": ["clarification_needed", "intent_commit", "dry_run"]}},
    "required": ["safety"],
}


def request_tool(
    mcp: MCPServer, request_model: type[RequestT]
) -> Callable[[Handler[RequestT]], Handler[RequestT]]:
    """Register ``handler(ctx, request)`` as ``request_model.tool`` (the handler is named like it),
    described by its docstring, taking ``request_model``'s fields as its arguments and returning what it
    is annotated to return."""

    def register(handler: Handler[RequestT]) -> Handler[RequestT]:
        if handler.__name__ != request_model.tool:
            raise TypeError(
                f"{handler.__name__} handles {request_model.__name__}, the arguments of {request_model.tool}"
            )
        returns = get_type_hints(handler)["return"]

        async def tool(ctx: Context, **arguments: Any) -> Any:
            # The SDK validated each argument against the same fields; this builds the model once.
            request = request_model.model_validate(arguments)
            return answer(await handler(ctx, request), getattr(request, "detail", None))

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
        tool.__doc__ = " ".join((handler.__doc__ or "").split())  # one line: indents cost tokens
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
        results = [member for member in members if member is not SafetyResponse]
        result_schema = TypeAdapter(Union[tuple(results)]).json_schema(mode="serialization")  # noqa: UP007
        definitions = result_schema.pop("$defs", {})
        metadata = tool.fn_metadata
        metadata.output_model = union
        metadata.wrap_output = False
        metadata.output_schema = {
            "type": "object",
            "anyOf": [result_schema, SAFETY_OUTPUT_SCHEMA],
            **({"$defs": definitions} if definitions else {}),
        }


def compact_schemas(mcp: MCPServer) -> None:
    """Every published schema without what costs tokens and says nothing (see the module docstring)."""
    for tool in mcp._tool_manager.list_tools():
        tool.parameters = compact_schema(tool.parameters, drop_null=True)
        metadata = tool.fn_metadata
        if metadata.output_schema is not None:
            metadata.output_schema = compact_schema(metadata.output_schema, drop_null=False)


def compact_schema(schema: Any, drop_null: bool) -> Any:
    """``schema`` without ``title`` strings; without ``drop_null`` (an output schema), without
    ``default`` annotations either and with ``anyOf: [{"type": X}, {"type": "null"}]`` as
    ``{"type": [X, "null"]}``; with ``drop_null`` (an input schema), without
    ``additionalProperties: false`` (the server refuses unknown arguments by name) or the ``string``
    type of a string enum; ``anyOf: [X, null]`` becomes X, a ``null`` or ``false`` default goes (an
    input left out is null, a flag left out is off) and so do length limits of 20 or more (they guard
    the server, which enforces them with a clear error)."""
    if isinstance(schema, list):
        return [compact_schema(item, drop_null) for item in schema]
    if not isinstance(schema, dict):
        return schema
    compact = {
        key: value if key in ("default", "const", "enum") else compact_schema(value, drop_null)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
        # In an output schema a default only annotates (validation ignores it; answers carry every field).
        and not (not drop_null and key == "default")
        # Length limits guard the server (it enforces them, with a clear error), not the caller's choice.
        and not (drop_null and key in ("maxLength", "maxItems") and isinstance(value, int) and value >= 20)
        # The server refuses unknown arguments itself, naming them (forbid_unknown_arguments).
        and not (drop_null and key == "additionalProperties" and value is False)
    }
    branches = compact.get("anyOf")
    nullable = isinstance(branches, list) and {"type": "null"} in branches
    if not drop_null:
        # An output's "X or null" of a plain type as one type list: the same schema, a third the size.
        if nullable and len(branches) == 2:
            kept = next(branch for branch in branches if branch != {"type": "null"})
            if list(kept) == ["type"] and isinstance(kept["type"], str):
                compact.pop("anyOf")
                compact = {"type": [kept["type"], "null"], **compact}
        return compact
    enum = compact.get("enum")
    if compact.get("type") == "string" and isinstance(enum, list) and all(isinstance(e, str) for e in enum):
        compact.pop("type")  # an enum of strings says the type already
    if nullable:
        kept_branches = [branch for branch in branches if branch != {"type": "null"}]
        compact.pop("anyOf")
        compact = (
            {**kept_branches[0], **compact}
            if len(kept_branches) == 1
            else {"anyOf": kept_branches, **compact}
        )
    if "default" in compact and (compact["default"] is None or compact["default"] is False):
        compact.pop("default")  # an argument left out is null; a flag left out is off (instructions)
    return compact

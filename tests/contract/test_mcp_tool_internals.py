"""The mcp SDK internals ``services/mcp_gateway/sdk_adapter.py`` relies on. If an SDK upgrade changes
them, this fails before tools silently lose their schema, accept misspelt arguments or reject a
safety answer.

Relied on: the tool decorator derives a tool's arguments from ``inspect.signature`` (so a built
``__signature__`` is honoured) and finds the ``Context`` parameter from the type hints;
``MCPServer._tool_manager.list_tools()`` gives the registered ``Tool`` objects with ``fn``,
``parameters`` (the published input schema) and ``fn_metadata``; a call validates its arguments with
``fn_metadata.arg_model`` and its structured result with ``output_model`` / ``wrap_output``, read at
call time, and lists ``output_schema``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Annotated, ClassVar, Literal

import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities import func_metadata as func_metadata_module
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from pydantic import BaseModel, Field

from tag_compliance_mcp.sdk_adapter import (
    SAFETY_OUTPUT_SCHEMA,
    allow_safety_responses,
    compact_schema,
    compact_schemas,
    forbid_unknown_arguments,
    request_tool,
)
from tagcompliance.requests import ToolRequest
from tagcompliance.safety.models import SafetyResponse

pytestmark = pytest.mark.anyio


class EchoRequest(ToolRequest):
    tool: ClassVar[str] = "echo"
    words: Annotated[list[str], Field(min_length=1, max_length=3, description="What to echo.")]
    shout: Annotated[bool, Field(description="Upper case.")] = False
    mode: Annotated[Literal["plain", "ask"], Field(description="ask answers a safety response.")] = "plain"


class Echo(BaseModel):
    text: str


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    mcp = MCPServer(name="contract")

    @request_tool(mcp, EchoRequest)
    async def echo(ctx: Context, request: EchoRequest) -> Echo | SafetyResponse:
        """Echo the words."""
        if request.mode == "ask":
            return SafetyResponse(
                safety="clarification_needed", clarification_needed=True, proceed="ask", belief_id="b1"
            )
        text = " ".join(request.words)
        return Echo(text=text.upper() if request.shout else text)

    forbid_unknown_arguments(mcp)
    allow_safety_responses(mcp)
    compact_schemas(mcp)
    async with Client(mcp) as connected:
        yield connected


def test_a_handler_named_unlike_its_requests_tool_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="echo_words handles EchoRequest, the arguments of echo"):

        @request_tool(MCPServer(name="contract"), EchoRequest)
        async def echo_words(ctx: Context, request: EchoRequest) -> Echo:
            return Echo(text="")


def test_the_relied_on_attributes_exist() -> None:
    assert "inspect.signature(func, eval_str=True)" in inspect.getsource(func_metadata_module.func_metadata)
    assert {"arg_model", "output_schema", "output_model", "wrap_output"} <= set(FuncMetadata.model_fields)
    assert {"fn", "parameters", "fn_metadata", "description"} <= set(Tool.model_fields)
    assert "_tool_manager" in inspect.getsource(MCPServer.__init__)
    assert "self.arg_model.model_validate" in inspect.getsource(FuncMetadata)


async def test_the_model_fields_are_the_published_arguments(client: Client) -> None:
    (tool,) = (await client.list_tools()).tools
    assert tool.name == "echo" and tool.description == "Echo the words."
    expected = compact_schema(EchoRequest.model_json_schema(), drop_null=True)
    assert tool.input_schema["properties"] == expected["properties"]
    assert "title" not in tool.input_schema["properties"]["words"]
    assert list(tool.input_schema["properties"]) == ["words", "shout", "mode"]
    assert tool.input_schema["required"] == ["words"]
    # Not published (it costs every turn's context): the server refuses unknown arguments by name.
    assert "additionalProperties" not in tool.input_schema


async def test_a_call_builds_the_request_and_validates_each_field(client: Client) -> None:
    result = await client.call_tool("echo", {"words": ["a", "b"], "shout": True})
    assert not result.is_error and result.structured_content == {"text": "A B"}
    # No renderer for Echo and no detail argument: the text is the whole answer, as compact JSON.
    assert result.content[0].text == '{"text":"A B"}'
    too_many = await client.call_tool("echo", {"words": ["a", "b", "c", "d"]})
    assert too_many.is_error and "words" in too_many.content[0].text


async def test_an_unknown_argument_is_refused(client: Client) -> None:
    result = await client.call_tool("echo", {"words": ["a"], "wrods": ["b"]})
    assert result.is_error and "wrods" in result.content[0].text


async def test_the_output_is_the_result_or_a_safety_response(client: Client) -> None:
    (tool,) = (await client.list_tools()).tools
    result_schema, safety_schema = tool.output_schema["anyOf"]
    assert (
        result_schema["properties"] == {"text": {"type": "string"}} and safety_schema == SAFETY_OUTPUT_SCHEMA
    )
    result = await client.call_tool("echo", {"words": ["a"], "mode": "ask"})
    assert not result.is_error and result.structured_content["safety"] == "clarification_needed"

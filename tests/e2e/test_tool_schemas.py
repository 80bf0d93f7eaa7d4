"""Every tool's name, description, input and output schema as the official client lists them, against
a committed snapshot: a refactoring of the tools must not change what clients see.

After a deliberate change, rewrite the snapshot with ``UPDATE_TOOL_SCHEMAS=1`` and review its diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio
SNAPSHOT = Path(__file__).with_name("tool_schemas.json")


async def listed_tools(client: Client) -> dict[str, dict[str, Any]]:
    return {
        tool.name: {
            "description": tool.description,
            "inputSchema": tool.input_schema,
            "outputSchema": tool.output_schema,
        }
        for tool in (await client.list_tools()).tools
    }


async def test_every_tool_schema_matches_the_committed_snapshot(client: Client) -> None:
    listed = await listed_tools(client)
    if os.environ.get("UPDATE_TOOL_SCHEMAS") == "1":
        SNAPSHOT.write_text(json.dumps(listed, indent=1) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(listed) == sorted(expected), "tools added or removed"
    for name, schemas in expected.items():
        assert listed[name] == schemas, name
        # Argument order is part of what clients see (forms list the arguments in this order).
        assert list(listed[name]["inputSchema"]["properties"]) == list(schemas["inputSchema"]["properties"])

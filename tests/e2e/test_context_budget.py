"""The context budget (issue 18): what the gateway puts before an LLM, measured over stdio with the
official client on the demo estate (``bench/context.py`` measures; ``make bench`` prints the same
figures). Fails when tools/list or a default answer grows over its target, or when the short text
costs the structured content its fidelity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceLink

from bench.context import (
    ANSWER_BUDGET,
    OUTPUT_SCHEMA_BUDGET_PER_TOOL,
    TOOLS_BUDGET,
    demo_scope,
    measure_over_stdio,
)
from services.demo.aws import DemoAws

pytestmark = pytest.mark.anyio


async def test_tools_list_and_default_answers_fit_their_budgets(aws_env: DemoAws) -> None:
    sizes = await measure_over_stdio(aws_env)
    assert sizes["listed"] <= TOOLS_BUDGET, sizes["listed"]
    assert sizes["output_schemas"] <= OUTPUT_SCHEMA_BUDGET_PER_TOOL * sizes["tools"], sizes["output_schemas"]
    over = {tool: size for tool, size in sizes["answers"].items() if size > ANSWER_BUDGET}
    assert not over, f"default answers over {ANSWER_BUDGET} characters: {over}"
    # The short text is not bought with the structured content: it still holds whole pages.
    scope = demo_scope(aws_env)
    expected = aws_env.estate.expected_summary(**scope)
    check = sizes["structured"]["check_tag_compliance"]
    assert check["total_resources"] == expected.total and check["compliant_resources"] == expected.compliant
    assert len(check["violations"]) == min(50, check["violation_count"]) and check["violation_patterns"]
    untagged = sizes["structured"]["find_untagged_resources"]
    assert len(untagged["resources"]) == min(50, untagged["total_untagged"]) and untagged["missing_patterns"]


async def test_detail_full_gives_the_whole_answer_as_text(client: Client, aws_env: DemoAws) -> None:
    scope = demo_scope(aws_env)
    summary = await client.call_tool("check_tag_compliance", scope)
    full = await client.call_tool("check_tag_compliance", {**scope, "detail": "full"})
    assert json.loads(full.content[0].text) == full.structured_content
    # The same answer either way (the second is served from the first's snapshot).
    assert {**full.structured_content, "cached": None} == {**summary.structured_content, "cached": None}
    text = summary.content[0].text
    assert text.startswith("Compliance score ") and "Failed shards: none" in text
    # Ten examples of the page's fifty, and the way to the rest.
    assert text.count("\n- arn:aws:") == 10 and "cursor=" in text and 'detail="full"' in text


async def test_an_export_file_is_a_readable_resource_link(client: Client, aws_env: DemoAws) -> None:
    scope = demo_scope(aws_env)
    result = await client.call_tool("export_violations_csv", {"filters": scope, "to_file": True})
    structured = result.structured_content
    if structured.get("safety") == "intent_commit":
        token = structured["confirmation_token"]
        result = await client.call_tool(
            "export_violations_csv", {"filters": scope, "to_file": True, "confirmation_token": token}
        )
    [link] = [block for block in result.content if isinstance(block, ResourceLink)]
    assert str(link.uri).startswith("tagcompliance://files/exports/") and link.mime_type == "text/csv"
    read = await client.read_resource(str(link.uri))
    written = Path(result.structured_content["file_path"]).read_text(encoding="utf-8")
    assert (
        read.contents[0].text == written and written.count("\n") == result.structured_content["row_count"] + 1
    )
    with pytest.raises(MCPError):  # only the files the tools wrote, by plain name
        await client.read_resource("tagcompliance://files/exports/.secret")

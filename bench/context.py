"""Context economy: what an LLM client puts before the model, measured over stdio with the official
client (the gateway as a real process) on the demo estate.

- ``tools/list``: every tool's description and input schema (characters of ``json.dumps``), sent on
  every turn. Target: at most 16,000 for all tools (the remediation tools included).
- Output schemas: compact (the safety answer's definitions are not repeated in every tool): at most
  3,000 characters a tool on average (48,000 when there were 16 tools).
- The default text answer of the tools whose answers grow with the estate, on five types x three
  regions (the demo estate's five largest types): at most 6,000 characters each.

``make bench`` prints the figures (``run``); ``tests/e2e/test_context_budget.py`` fails over them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections import Counter
from typing import Any

from mcp import Client, StdioServerParameters

from .common import REPO_ROOT, figure, gateway_environment

TOOLS_BUDGET = 16_000
OUTPUT_SCHEMA_BUDGET_PER_TOOL = 3_000
ANSWER_BUDGET = 6_000
# The measurement before this work (same estate, same scope), for the README and the notes.
BEFORE = {
    "tools/list descriptions + input schemas": 33_911,
    "tools/list output schemas": 118_827,
    "check_tag_compliance": 22_713,
    "find_untagged_resources": 18_986,
}


def demo_scope(demo: Any) -> dict[str, Any]:
    """Five types x three regions: the estate's five largest types (ties by name), every demo region."""
    counts = Counter(resource.resource_type for resource in demo.estate.resources)
    largest = sorted(counts, key=lambda type_id: (-counts[type_id], type_id))[:5]
    return {"resource_types": largest, "regions": list(demo.regions)}


def gateway_parameters(demo: Any, data_dir: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "tag_compliance_mcp", "--transport", "stdio", "--log-level", "WARNING"],
        env=gateway_environment(demo, data_dir),
        cwd=str(REPO_ROOT),
    )


def answer_text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def call_through(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    """One call, confirmed when it answers an intent commit (as a user who agreed would)."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {answer_text(result)[:500]}")
    structured = result.structured_content or {}
    if structured.get("safety") == "intent_commit":
        token = structured["confirmation_token"]
        result = await client.call_tool(tool, {**arguments, "confirmation_token": token})
        if result.is_error:
            raise RuntimeError(f"{tool} failed after confirmation: {answer_text(result)[:500]}")
    if (result.structured_content or {}).get("safety"):
        raise RuntimeError(f"{tool} answered {result.structured_content['safety']} for an explicit scope")
    return result


async def measure(client: Client, demo: Any) -> dict[str, Any]:
    """Sizes in characters: ``listed`` (tools/list), ``tools``, ``output_schemas``, and ``answers``
    (tool -> its default text); ``structured`` (tool -> its structured content), to check fidelity."""
    tools = (await client.list_tools()).tools
    scope = demo_scope(demo)
    in_scope = [
        demo.arns[resource.key]
        for resource in demo.estate.select(scope["resource_types"], scope["regions"])
        if resource.key in demo.arns
    ]
    noncompliant = next(
        demo.arns[resource.key]
        for resource in demo.estate.select(scope["resource_types"], scope["regions"])
        if not resource.compliant and resource.key in demo.arns
    )
    calls = {
        "check_tag_compliance": scope,
        "find_untagged_resources": scope,
        "validate_resource_tags": {"resource_arns": in_scope[:100]},
        "suggest_tags": {"resource_arn": noncompliant},
        "detect_tag_drift": scope,
        "generate_compliance_report": scope,
        "export_violations_csv": {"filters": scope},
    }
    answers: dict[str, int] = {}
    structured: dict[str, Any] = {}
    for tool, arguments in calls.items():
        result = await call_through(client, tool, arguments)
        answers[tool] = len(answer_text(result))
        structured[tool] = result.structured_content
    return {
        "listed": sum(len(tool.description or "") + len(json.dumps(tool.input_schema)) for tool in tools),
        "output_schemas": sum(len(json.dumps(tool.output_schema)) for tool in tools if tool.output_schema),
        "tools": len(tools),
        "answers": answers,
        "structured": structured,
    }


async def measure_over_stdio(demo: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-context-") as data_dir:
        async with Client(gateway_parameters(demo, data_dir)) as client:
            return await measure(client, demo)


def run(demo: Any) -> dict[str, Any]:
    sizes = asyncio.run(measure_over_stdio(demo))
    listed = sizes["listed"]
    output_budget = OUTPUT_SCHEMA_BUDGET_PER_TOOL * sizes["tools"]
    figures = [
        figure(
            f"tools/list descriptions + input schemas ({sizes['tools']} tools)",
            listed,
            "chars",
            op="<=",
            target=TOOLS_BUDGET,
            reason="descriptions or schemas grew",
            to_close="say shared facts once in the server instructions; shorten descriptions",
            note=f"before: {BEFORE['tools/list descriptions + input schemas']:,}",
        ),
        figure(
            "tools/list output schemas",
            sizes["output_schemas"],
            "chars",
            op="<=",
            target=output_budget,
            reason="output schemas grew",
            to_close="no nested definitions repeated per tool (sdk_adapter.compact_schemas)",
            note=f"before: {BEFORE['tools/list output schemas']:,}",
        ),
    ]
    for tool, size in sizes["answers"].items():
        before = BEFORE.get(tool)
        figures.append(
            figure(
                f"{tool} default text (5 types x 3 regions)",
                size,
                "chars",
                op="<=",
                target=ANSWER_BUDGET,
                reason="the summary grew",
                to_close="services/mcp_gateway/rendering.py: fewer examples or shorter lines",
                note=f"before: {before:,}" if before else "",
            )
        )
    return {
        "name": "context",
        "figures": figures,
        "details": {"scope": demo_scope(demo), "answers": sizes["answers"]},
    }

"""Property-based fuzzing of every tool's arguments through the MCP layer (official client, in memory):
each call ends in a result or a clear error - never a crash, an internal error or a traceback - and
every call is in the call log. Examples are bounded so the suite stays fast."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import Runtime, build_runtime
from tag_compliance_mcp.server import build_server
from tagcompliance.resources import RESOURCE_TYPE_IDS
from tests.e2e.helpers import POLICY_PATH, gateway_settings

EXAMPLES_PER_TOOL = 6

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**9), max_value=10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.lists(st.text(max_size=12), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)
KNOWN_STRINGS = st.sampled_from(
    [
        *RESOURCE_TYPE_IDS[:6],
        "all",
        "us-east-1",
        "eu-west-1",
        "p-12345678",
        "09:00",
        "UTC",
        "monday",
        "*/5 * * * *",
    ]
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    if depth > 3:
        return JUNK
    if "$ref" in schema:
        return from_schema(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    if "anyOf" in schema:
        return st.one_of(*(from_schema(option, defs, depth + 1) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.one_of(KNOWN_STRINGS, st.text(max_size=int(schema.get("maxLength", 60)) + 5))
    if kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 1000)
        return st.integers(min_value=int(low) - 3, max_value=int(high) + 3)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), defs, depth + 1), max_size=4)
    if kind == "object":
        properties = schema.get("properties", {})
        return st.fixed_dictionaries(
            {}, optional={name: from_schema(sub, defs, depth + 1) for name, sub in properties.items()}
        )
    if kind == "null":
        return st.none()
    return JUNK


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    defs = schema.get("$defs", {})
    optional = {
        name: st.one_of(from_schema(sub, defs), JUNK) for name, sub in schema.get("properties", {}).items()
    }
    known = st.fixed_dictionaries({}, optional=optional)
    extra = st.dictionaries(st.sampled_from(["resource_type", "x", "__proto__"]), JUNK, max_size=1)
    return st.tuples(known, extra, st.booleans()).map(lambda t: {**t[0], **t[1]} if t[2] else t[0])


@pytest.fixture(scope="module")
def fuzz_runtime(demo_aws: DemoAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp("fuzz")
    policy = root / "policies" / "tagging_policy.json"
    policy.parent.mkdir()
    shutil.copy(POLICY_PATH, policy)  # imports saved by the fuzzer land here, not in the repository
    runtime = build_runtime(
        gateway_settings(
            demo_aws, root / "data", POLICY_PATH=str(policy), AWS_ENDPOINT_URL=demo_aws.endpoint_url
        ),
        "memory",
    )
    yield runtime
    runtime.close()


async def _schemas(runtime: Runtime) -> dict[str, dict[str, Any]]:
    async with Client(build_server(runtime)) as client:
        return {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}


def _tool_names() -> list[str]:
    return [
        "check_tag_compliance",
        "find_untagged_resources",
        "validate_resource_tags",
        "get_cost_attribution_gap",
        "suggest_tags",
        "get_tagging_policy",
        "generate_compliance_report",
        "get_violation_history",
        "generate_custodian_policy",
        "generate_openops_workflow",
        "apply_tag_remediation",
        "undo_tag_remediation",
        "detect_tag_drift",
        "export_violations_csv",
        "import_aws_tag_policy",
        "schedule_compliance_audit",
        "get_intent_beliefs",
        "get_audit_status",
    ]


def test_the_fuzzed_list_is_every_tool(fuzz_runtime: Runtime) -> None:
    assert set(anyio.run(_schemas, fuzz_runtime)) == set(_tool_names())


@pytest.mark.slow
@pytest.mark.parametrize("tool", _tool_names())
def test_fuzzed_arguments_get_clear_answers(fuzz_runtime: Runtime, tool: str) -> None:
    schema = anyio.run(_schemas, fuzz_runtime)[tool]
    server = build_server(fuzz_runtime)

    @settings(
        max_examples=EXAMPLES_PER_TOOL,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(arguments=arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        async def call() -> Any:
            async with Client(server) as client:
                return await client.call_tool(tool, arguments)

        before = len(fuzz_runtime.store.list_calls(limit=10_000, tool_name=tool))
        result = anyio.run(call)
        text = " ".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            assert text.strip(), f"{tool}{arguments}: an error without a message"
            assert "Traceback" not in text and "internal error" not in text, f"{tool}{arguments}: {text}"
        after = fuzz_runtime.store.list_calls(limit=10_000, tool_name=tool)
        assert len(after) == before + 1, f"{tool}{arguments}: not audited"
        assert after[0].status == ("error" if result.is_error else "success")

    check()

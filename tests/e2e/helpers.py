"""Helpers for end-to-end tests: settings for a gateway on the demo estate, and tool calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client

from services.demo.aws import DemoAws
from services.demo.estate import REGIONS
from tag_compliance_mcp.settings import GatewaySettings

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "policies" / "tagging_policy.json"
# Scans state their scope explicitly: an omitted scope gets clarification_needed (agent safety).
DEMO_REGIONS = list(REGIONS)


def gateway_settings(demo: DemoAws, data_dir: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "AWS_ENDPOINT_URL": demo.endpoint_url,
        "AWS_REGION": demo.regions[0],
        "SCAN_REGIONS": ",".join(demo.regions),
        "POLICY_PATH": str(POLICY_PATH),
        "DATA_DIR": str(data_dir),
    }
    values.update(overrides)
    return GatewaySettings(**values)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail cleanly; return its message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


async def call_confirmed(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that answers with an intent commit (it writes), confirm it, return the result."""
    commit = await call(client, tool, **arguments)
    assert commit.get("safety") == "intent_commit", f"{tool} did not ask for confirmation: {commit}"
    return await call(client, tool, **arguments, confirmation_token=commit["confirmation_token"])

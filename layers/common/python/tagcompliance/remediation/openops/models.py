"""OpenOps workflow generation's constants, the result model and the import file's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Trigger = Literal["schedule", "compliance_score_below"]
Strategy = Literal["auto_tag", "notify_only"]
OutputFormat = Literal["json", "yaml"]

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "openops_flow_template.schema.json"

SCHEDULE_BLOCK = "@openops/block-schedule"
AWS_BLOCK = "@openops/block-aws"
SLACK_BLOCK = "@openops/block-slack"
# Versions as OpenOps's own exported workflows pin them; "~" lets the server pick the newest patch.
BLOCK_VERSIONS = {SCHEDULE_BLOCK: "~0.1.5", AWS_BLOCK: "~0.0.3", SLACK_BLOCK: "~0.5.2"}
# Placeholders the import dialog replaces with the connections the user picks.
AWS_CONNECTION = "{{connections['AWS']}}"
SLACK_CONNECTION = "{{connections['Slack']}}"

DEFAULT_CRON = "0 6 * * *"  # daily, 06:00 UTC
TIMEZONE = "UTC"
TAG_RESOURCES_LIMIT = 20  # ResourceARNList of the Resource Groups Tagging API TagResources call
REPORT_LIMIT = 25  # non-compliant resources listed in the summary the workflow sends


class OpenOpsWorkflow(BaseModel):
    """A generated OpenOps workflow: the import file as a dict and as text, with what to know."""

    model_config = ConfigDict(frozen=True)

    workflow: dict[str, Any] = Field(description="The FlowImportTemplate.")
    content: str = Field(description="The workflow as text in `format`; OpenOps imports the JSON form.")
    format: OutputFormat
    blocks: list[str] = Field(description="OpenOps blocks the workflow uses.")
    notes: list[str] = Field(description="What the workflow does, and what to set up or watch for.")


def load_flow_template_schema() -> dict[str, Any]:
    """The JSON Schema of the OpenOps import file (Draft 2020-12)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

"""Building the flow's steps: ids, chaining, error handling, the remediation branch."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from tagcompliance.resources import REGISTRY

from .checks import ArnBatch
from .models import AWS_BLOCK, AWS_CONNECTION, BLOCK_VERSIONS, SLACK_BLOCK, SLACK_CONNECTION


class StepBuilder:
    """Makes steps named step_1, step_2... in the order OpenOps traverses them, with stable ids."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.count = 0
        self.blocks: list[str] = []
        self.all_valid = True

    def step_id(self, step_name: str) -> str:
        digest = hashlib.sha256(f"{self.seed}\x00{step_name}".encode()).digest()
        return base64.b32encode(digest).decode().lower()[:21]

    def _common(self, display_name: str, step_type: str, valid: bool) -> dict[str, Any]:
        self.count += 1
        name = f"step_{self.count}"
        self.all_valid = self.all_valid and valid
        return {
            "id": self.step_id(name),
            "name": name,
            "valid": valid,
            "displayName": display_name,
            "type": step_type,
        }

    def block(
        self, display_name: str, block_name: str, action: str, input_: dict[str, Any], valid: bool = True
    ) -> dict[str, Any]:
        if block_name not in self.blocks:
            self.blocks.append(block_name)
        step = self._common(display_name, "BLOCK", valid)
        step["settings"] = {
            "blockName": block_name,
            "blockVersion": BLOCK_VERSIONS[block_name],
            "blockType": "OFFICIAL",
            "packageType": "REGISTRY",
            "actionName": action,
            "input": input_,
            "inputUiInfo": {"customizedInputs": {}},
            "errorHandlingOptions": _error_handling(),
        }
        return step

    def code(self, display_name: str, source: str, input_: dict[str, Any]) -> dict[str, Any]:
        step = self._common(display_name, "CODE", True)
        step["settings"] = {
            "input": input_,
            "sourceCode": {"code": source, "packageJson": "{}"},
            "inputUiInfo": {"customizedInputs": {}},
            "errorHandlingOptions": _error_handling(),
        }
        return step

    def branch(self, display_name: str, conditions: list[list[dict[str, Any]]]) -> dict[str, Any]:
        step = self._common(display_name, "BRANCH", True)
        step["settings"] = {"conditions": conditions, "inputUiInfo": {"customizedInputs": {}}}
        return step

    def loop(self, display_name: str, items: str) -> dict[str, Any]:
        step = self._common(display_name, "LOOP_ON_ITEMS", True)
        step["settings"] = {"items": items, "inputUiInfo": {"customizedInputs": {}}}
        return step


def _error_handling() -> dict[str, Any]:
    return {"continueOnFailure": {"value": False}, "retryOnFailure": {"value": False}}


def chained_steps(steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for current, following in itertools.pairwise(steps):
        current["nextAction"] = following
    return steps[0] if steps else None


def remediation_steps(
    build: StepBuilder,
    strategy: str,
    batches: Sequence[ArnBatch],
    evaluation: dict[str, Any] | None,
    dry_run: bool,
    threshold: float | None,
) -> list[dict[str, Any]]:
    if strategy == "notify_only":
        assert evaluation is not None
        header = (
            f"Tag compliance below {format_number(threshold)}"
            if threshold is not None
            else "Tag compliance report"
        )
        return [
            build.block(
                "Send compliance report",
                SLACK_BLOCK,
                "send_slack_message",
                {
                    "auth": SLACK_CONNECTION,
                    "conversationId": None,  # the recipient: chosen in OpenOps after import
                    "threadTs": None,
                    "username": None,
                    "file": None,
                    "blockKitEnabled": False,
                    "headerText": {"headerText": header},
                    "text": {"text": f"{{{{{evaluation['name']}['summary']}}}}"},
                    "blocks": {},
                },
                valid=False,
            )
        ]
    if batches:
        return [
            build.block(
                f"Tag resources {index} of {len(batches)} ({batch.account_id} {batch.region or 'global'})",
                AWS_BLOCK,
                "add_tags_to_resources",
                {
                    "auth": AWS_CONNECTION,
                    "resourceARNs": list(batch.arns),
                    "tags": dict(batch.tags),
                    "dryRun": dry_run,
                },
            )
            for index, batch in enumerate(batches, start=1)
        ]
    assert evaluation is not None
    loop = build.loop("For each batch of 20 resources", f"{{{{{evaluation['name']}['batches']}}}}")
    loop["firstLoopAction"] = build.block(
        "Tag resources in the batch",
        AWS_BLOCK,
        "add_tags_to_resources",
        {
            "auth": AWS_CONNECTION,
            "resourceARNs": f"{{{{{loop['name']}['item']['arns']}}}}",
            "tags": f"{{{{{loop['name']}['item']['tags']}}}}",
            "dryRun": dry_run,
        },
    )
    return [loop]


def scan_command(types: Sequence[str]) -> str:
    filters = " ".join(dict.fromkeys(str(REGISTRY[type_id].tagging_api_filter) for type_id in types))
    return f"aws resourcegroupstaggingapi get-resources --resource-type-filters {filters} --output json"


def format_number(value: float | None) -> str:
    return f"{value or 0:.6f}".rstrip("0").rstrip(".") or "0"

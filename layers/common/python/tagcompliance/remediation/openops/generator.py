"""``generate_openops_workflow``: a workflow for a policy, every argument checked."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import TaggingPolicy
from tagcompliance.requests import OpenOpsRequest
from tagcompliance.resources import REGISTRY, resolve_resource_types

from .checks import (
    ArnBatch,
    arn_batches,
    check_cron,
    check_name,
    check_tag_values,
    check_threshold,
    default_workflow_name,
)
from .code_step import evaluation_code
from .models import (
    AWS_BLOCK,
    AWS_CONNECTION,
    BLOCK_VERSIONS,
    DEFAULT_CRON,
    SCHEDULE_BLOCK,
    TIMEZONE,
    OpenOpsWorkflow,
)
from .notes import workflow_description, workflow_notes
from .steps import StepBuilder, chained_steps, format_number, remediation_steps, scan_command


def generate_openops_workflow(policy: TaggingPolicy, request: OpenOpsRequest) -> OpenOpsWorkflow:
    """An OpenOps workflow for ``policy``. The request model has checked each argument's type and
    range; what depends on the policy or on other arguments is checked here, with errors saying what
    is wrong."""
    resource_types, trigger, remediation_strategy = (
        request.resource_types,
        request.trigger,
        request.remediation_strategy,
    )
    tag_values, resource_arns, name = request.tag_values, request.resource_arns, request.name
    dry_run, output_format = request.dry_run, request.output_format
    cron_expression = request.cron_expression
    types = resolve_resource_types(resource_types)
    if not any(policy.required_for(type_id) for type_id in types) and not policy.prohibited_tags:
        raise InvalidInputError(
            f"the tagging policy requires no tag for {', '.join(types)}: there is nothing to check or fix"
        )
    cron = check_cron(DEFAULT_CRON if cron_expression is None else cron_expression)
    limit = check_threshold(trigger, request.threshold)
    notes: list[str] = []

    values: dict[str, str] | None = None
    batches: list[ArnBatch] = []
    if remediation_strategy == "auto_tag":
        values = check_tag_values(policy, types, tag_values)
        if resource_arns is not None:
            batches = arn_batches(policy, types, values, resource_arns, notes)
    else:
        if tag_values:
            raise InvalidInputError(
                "tag_values apply only to remediation_strategy 'auto_tag'; notify_only changes no tag"
            )
        if resource_arns:
            raise InvalidInputError(
                "resource_arns apply only to remediation_strategy 'auto_tag'; "
                "notify_only reports on every resource of the requested types"
            )

    title = (
        check_name(name)
        if name is not None
        else default_workflow_name(remediation_strategy, types, resource_types)
    )
    needs_scan = trigger == "compliance_score_below" or not batches
    scan_types = [type_id for type_id in types if REGISTRY[type_id].tagging_api_filter]
    if needs_scan and not scan_types:
        raise InvalidInputError(
            f"none of {', '.join(types)} can be listed through the Resource Groups Tagging API, "
            "so the workflow cannot scan them"
        )

    build = StepBuilder(seed=title)
    steps: list[dict[str, Any]] = []
    remediation: list[dict[str, Any]]
    evaluation: dict[str, Any] | None = None
    if needs_scan:
        scan = build.block(
            "Scan resource tags",
            AWS_BLOCK,
            "aws_cli",
            {
                "auth": AWS_CONNECTION,
                "account": {},
                "commandToRun": scan_command(scan_types),
                "dryRun": False,
            },
        )
        evaluation = build.code(
            "Score tag compliance",
            evaluation_code(policy, scan_types, values if not batches else None),
            {"scan": f"{{{{{scan['name']}}}}}"},
        )
        steps += [scan, evaluation]
    if trigger == "compliance_score_below":
        assert evaluation is not None and limit is not None
        branch = build.branch(
            f"Compliance score below {format_number(limit)}",
            [
                [
                    {
                        "operator": "NUMBER_IS_LESS_THAN",
                        "firstValue": f"{{{{{evaluation['name']}['score']}}}}",
                        "secondValue": format_number(limit),
                    }
                ]
            ],
        )
        steps.append(branch)
        remediation = remediation_steps(build, remediation_strategy, batches, evaluation, dry_run, limit)
        branch["onSuccessAction"] = chained_steps(remediation)
    else:
        steps += remediation_steps(build, remediation_strategy, batches, evaluation, dry_run, None)

    trigger_step = {
        "id": build.step_id("trigger"),
        "name": "trigger",
        "valid": True,
        "displayName": f"Schedule ({cron}, {TIMEZONE})",
        "type": "TRIGGER",
        "settings": {
            "blockName": SCHEDULE_BLOCK,
            "blockVersion": BLOCK_VERSIONS[SCHEDULE_BLOCK],
            "blockType": "OFFICIAL",
            "packageType": "REGISTRY",
            "triggerName": "cron_expression",
            "input": {"cronExpression": cron, "timezone": TIMEZONE},
            "inputUiInfo": {"customizedInputs": {}},
        },
        "nextAction": chained_steps(steps),
    }
    blocks = [SCHEDULE_BLOCK, *build.blocks]
    description = workflow_description(trigger, cron, limit, remediation_strategy, types, dry_run)
    now = str(int(time.time() * 1000))
    workflow: dict[str, Any] = {
        "created": now,
        "updated": now,
        "name": title,
        "description": description,
        "tags": ["tag-compliance", "finops", remediation_strategy.replace("_", "-")],
        "services": sorted({REGISTRY[type_id].service for type_id in types}),
        "domains": ["Tagging"],
        "template": {
            "displayName": title,
            "description": description,
            "trigger": trigger_step,
            "valid": build.all_valid,
        },
        "blocks": blocks,
        "categories": [],
    }

    notes += workflow_notes(
        request,
        policy,
        cron=cron,
        threshold=limit,
        batches=batches,
        scanned_types=scan_types if needs_scan else [],
        skipped_types=[type_id for type_id in types if type_id not in scan_types] if needs_scan else [],
        types=types,
        values=values,
    )
    content = (
        json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
        if output_format == "json"
        else yaml.safe_dump(workflow, sort_keys=False, allow_unicode=True, width=100)
    )
    return OpenOpsWorkflow(
        workflow=workflow, content=content, format=output_format, blocks=blocks, notes=notes
    )

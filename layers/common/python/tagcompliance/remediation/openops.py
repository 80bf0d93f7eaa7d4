"""OpenOps workflows that report or fix tag-compliance violations (spec tool 10).

The output is what OpenOps's *Import Workflow* dialog reads: a JSON ``FlowImportTemplate`` (template
metadata plus ``template: {displayName, trigger, valid}``). The trigger and every step carry
``settings: {blockName, blockVersion, actionName|triggerName, input, inputUiInfo}`` and are chained
through ``nextAction``; a Branch step holds its true path in ``onSuccessAction`` and a Loop step its
body in ``firstLoopAction``. ``schemas/openops_flow_template.schema.json`` describes the format.

Shapes of the workflow:

* trigger: ``@openops/block-schedule`` ``cron_expression`` (UTC). OpenOps has no compliance-score
  trigger, so ``compliance_score_below`` is the same schedule, then a read-only scan (``aws_cli``
  running ``resourcegroupstaggingapi get-resources``), a Code step that scores the scan against the
  policy exactly as this server's engine does, and a Branch that continues only below the threshold.
* ``notify_only``: the scan and the score, then a Slack ``send_slack_message`` with the summary.
* ``auto_tag``: ``@openops/block-aws`` ``add_tags_to_resources`` with tag values the caller gave
  (never invented), checked against the policy. With ``resource_arns`` each step tags at most 20
  ARNs of one account and region (the TagResources limit); without them the Code step groups the
  resources that lack those tags into batches of 20 and a Loop tags each batch.

Every write step has ``dryRun`` on unless the caller turns it off.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import itertools
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tagcompliance.errors import InvalidInputError
from tagcompliance.policy import RequiredTag, TaggingPolicy
from tagcompliance.resources import REGISTRY, parse_arn, resolve_resource_types

Trigger = Literal["schedule", "compliance_score_below"]
Strategy = Literal["auto_tag", "notify_only"]
OutputFormat = Literal["json", "yaml"]

SCHEMA_PATH = Path(__file__).with_name("schemas") / "openops_flow_template.schema.json"

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
MAX_RESOURCE_ARNS = 1000
MAX_NAME_LENGTH = 200
REPORT_LIMIT = 25  # non-compliant resources listed in the summary the workflow sends

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")
# AWS tag values: letters, digits, white space and _ . : / = + - @ (at most 256 characters).
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]*")
# Python-only regular-expression syntax that a JavaScript RegExp reads differently or rejects.
_PY_ONLY_REGEX = re.compile(r"\\[AZz]|\(\?[aiLmsux]+[):]|\(\?#")


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


def generate_openops_workflow(
    policy: TaggingPolicy,
    resource_types: Sequence[str] | None,
    trigger: Trigger = "schedule",
    cron_expression: str | None = None,
    threshold: float | None = None,
    remediation_strategy: Strategy = "notify_only",
    tag_values: Mapping[str, str] | None = None,
    resource_arns: Sequence[str] | None = None,
    dry_run: bool = True,
    name: str | None = None,
    output_format: OutputFormat = "json",
) -> OpenOpsWorkflow:
    """An OpenOps workflow for ``policy``; every argument is checked and errors say what is wrong."""
    if trigger not in ("schedule", "compliance_score_below"):
        raise InvalidInputError(f"trigger must be 'schedule' or 'compliance_score_below', not {trigger!r}")
    if remediation_strategy not in ("auto_tag", "notify_only"):
        raise InvalidInputError(
            f"remediation_strategy must be 'auto_tag' or 'notify_only', not {remediation_strategy!r}"
        )
    if output_format not in ("json", "yaml"):
        raise InvalidInputError(f"output_format must be 'json' or 'yaml', not {output_format!r}")
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be true or false, not {dry_run!r}")

    types = resolve_resource_types(resource_types)
    if not any(policy.required_for(type_id) for type_id in types) and not policy.prohibited_tags:
        raise InvalidInputError(
            f"the tagging policy requires no tag for {', '.join(types)}: there is nothing to check or fix"
        )
    cron = _check_cron(DEFAULT_CRON if cron_expression is None else cron_expression)
    limit = _check_threshold(trigger, threshold)
    notes: list[str] = []

    values: dict[str, str] | None = None
    batches: list[_Batch] = []
    if remediation_strategy == "auto_tag":
        values = _check_tag_values(policy, types, tag_values)
        if resource_arns is not None:
            batches = _batches(policy, types, values, resource_arns, notes)
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
        _check_name(name) if name is not None else _default_name(remediation_strategy, types, resource_types)
    )
    needs_scan = trigger == "compliance_score_below" or not batches
    scan_types = [type_id for type_id in types if REGISTRY[type_id].tagging_api_filter]
    if needs_scan and not scan_types:
        raise InvalidInputError(
            f"none of {', '.join(types)} can be listed through the Resource Groups Tagging API, "
            "so the workflow cannot scan them"
        )

    build = _Builder(seed=title)
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
                "commandToRun": _scan_command(scan_types),
                "dryRun": False,
            },
        )
        evaluation = build.code(
            "Score tag compliance",
            _evaluation_code(policy, scan_types, values if not batches else None),
            {"scan": f"{{{{{scan['name']}}}}}"},
        )
        steps += [scan, evaluation]
    if trigger == "compliance_score_below":
        assert evaluation is not None and limit is not None
        branch = build.branch(
            f"Compliance score below {_number(limit)}",
            [
                [
                    {
                        "operator": "NUMBER_IS_LESS_THAN",
                        "firstValue": f"{{{{{evaluation['name']}['score']}}}}",
                        "secondValue": _number(limit),
                    }
                ]
            ],
        )
        steps.append(branch)
        remediation = _remediation(build, remediation_strategy, batches, evaluation, dry_run, limit)
        branch["onSuccessAction"] = _chain(remediation)
    else:
        steps += _remediation(build, remediation_strategy, batches, evaluation, dry_run, None)

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
        "nextAction": _chain(steps),
    }
    blocks = [SCHEDULE_BLOCK, *build.blocks]
    description = _description(trigger, cron, limit, remediation_strategy, types, dry_run)
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

    notes += _notes(
        trigger=trigger,
        cron=cron,
        threshold=limit,
        strategy=remediation_strategy,
        dry_run=dry_run,
        batches=batches,
        scanned_types=scan_types if needs_scan else [],
        skipped_types=[type_id for type_id in types if type_id not in scan_types] if needs_scan else [],
        policy=policy,
        types=types,
        values=values,
        output_format=output_format,
    )
    content = (
        json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
        if output_format == "json"
        else yaml.safe_dump(workflow, sort_keys=False, allow_unicode=True, width=100)
    )
    return OpenOpsWorkflow(
        workflow=workflow, content=content, format=output_format, blocks=blocks, notes=notes
    )


# --- argument checks -----------------------------------------------------------------------------


def _check_cron(expression: str) -> str:
    """A 5-field cron expression, as OpenOps's cron trigger validates it (numbers, no names)."""
    if not isinstance(expression, str):
        raise InvalidInputError(f"cron_expression must be a string, not {type(expression).__name__}")
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInputError(
            f"cron_expression {expression!r} has {len(fields)} field(s); expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 6 * * *'"
        )
    for (label, low, high), field in zip(_CRON_FIELDS, fields, strict=True):
        for part in field.split(","):
            match = _CRON_PART.fullmatch(part)
            if match is None:
                raise InvalidInputError(
                    f"cron_expression {expression!r}: {label} field {field!r} is not valid; "
                    "use numbers, *, ranges a-b, lists a,b and steps /n"
                )
            base, step = match.groups()
            if step is not None and int(step) == 0:
                raise InvalidInputError(f"cron_expression {expression!r}: {label} step must be at least 1")
            if base != "*":
                first, _, last = base.partition("-")
                start, end = int(first), int(last or first)
                if not (low <= start <= high and low <= end <= high) or start > end:
                    raise InvalidInputError(
                        f"cron_expression {expression!r}: {label} value {base!r} is outside {low}-{high}"
                    )
    return " ".join(fields)


def _check_threshold(trigger: str, threshold: float | None) -> float | None:
    if trigger == "schedule":
        if threshold is not None:
            raise InvalidInputError("threshold applies only to trigger 'compliance_score_below'")
        return None
    if threshold is None:
        raise InvalidInputError(
            "trigger 'compliance_score_below' needs a threshold between 0 and 1 (e.g. 0.8 for 80%)"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or math.isnan(threshold):
        raise InvalidInputError(f"threshold must be a number between 0 and 1, not {threshold!r}")
    if not 0 <= threshold <= 1:
        raise InvalidInputError(
            f"threshold {threshold!r} is outside 0..1: it is a compliance score (0.8 means 80%)"
        )
    return float(threshold)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("name must be a non-empty string")
    if len(name.strip()) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name.strip()


def _check_tag_values(
    policy: TaggingPolicy, types: Sequence[str], tag_values: Mapping[str, str] | None
) -> dict[str, str]:
    """Tag values for auto_tag: explicit, for required tags only, each valid under the policy."""
    if not tag_values:
        raise InvalidInputError(
            "auto_tag needs explicit tag_values (tag key -> value) for the required tags to set; "
            "values are never guessed"
        )
    if not isinstance(tag_values, Mapping):
        raise InvalidInputError("tag_values must be a mapping of tag key to value")
    required = {tag.name: tag for type_id in types for tag in policy.required_for(type_id)}
    by_lower = {key.lower(): key for key in required}
    checked: dict[str, str] = {}
    for key, value in tag_values.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"tag_values keys must be tag names (strings), not {key!r}")
        if key not in required:
            if key.lower() in by_lower:
                raise InvalidInputError(
                    f"tag_values key {key!r} does not match the required tag {by_lower[key.lower()]!r}: "
                    "tag keys are case-sensitive"
                )
            if any(tag.name == key for tag in policy.required_tags):
                raise InvalidInputError(
                    f"tag {key!r} is required by the policy, but not for {', '.join(types)}"
                )
            required_names = ", ".join(sorted(required)) or "none"
            raise InvalidInputError(
                f"tag_values key {key!r} is not a required tag of the policy for {', '.join(types)} "
                f"(required: {required_names}); auto_tag only sets required tags"
            )
        checked[key] = _check_tag_value(required[key], value)
    return checked


def _check_tag_value(tag: RequiredTag, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"tag_values[{tag.name!r}] must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(
            f"tag_values[{tag.name!r}] is empty; an empty value does not satisfy the policy"
        )
    if value != value.strip():
        raise InvalidInputError(f"tag_values[{tag.name!r}] has leading or trailing whitespace: {value!r}")
    if len(value) > 256 or not _TAG_VALUE.fullmatch(value):
        raise InvalidInputError(
            f"tag_values[{tag.name!r}] = {value!r} is not a valid AWS tag value "
            "(at most 256 letters, digits, spaces and _ . : / = + - @)"
        )
    problem = tag.rejection(value)
    if problem:
        raise InvalidInputError(f"tag_values[{tag.name!r}] = {value!r} {problem}")
    return value


class _Batch(BaseModel):
    account_id: str
    region: str
    tags: dict[str, str]
    arns: list[str]


def _batches(
    policy: TaggingPolicy,
    types: Sequence[str],
    values: Mapping[str, str],
    resource_arns: Sequence[str],
    notes: list[str],
) -> list[_Batch]:
    """Group the ARNs by account, region and tag set, in chunks of at most 20 (TagResources)."""
    if isinstance(resource_arns, str):
        raise InvalidInputError("resource_arns must be a list of ARNs, not a single string")
    arns = list(dict.fromkeys(resource_arns))
    if not arns:
        raise InvalidInputError("resource_arns is empty: omit it to tag every non-compliant resource found")
    if len(arns) > MAX_RESOURCE_ARNS:
        raise InvalidInputError(
            f"resource_arns holds {len(arns)} ARNs; at most {MAX_RESOURCE_ARNS} per workflow"
        )
    if len(arns) < len(resource_arns):
        notes.append(f"{len(resource_arns) - len(arns)} duplicate ARN(s) in resource_arns were dropped.")
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[str]] = {}
    for arn in arns:
        parsed = parse_arn(arn)
        if parsed.resource_type not in types:
            raise InvalidInputError(
                f"ARN {arn!r} is a {parsed.resource_type}, which is not among the requested "
                f"resource types ({', '.join(types)})"
            )
        required = {tag.name for tag in policy.required_for(parsed.resource_type)}
        tags = tuple((key, value) for key, value in values.items() if key in required)
        if not tags:
            raise InvalidInputError(
                f"ARN {arn!r}: the policy requires none of {', '.join(values)} for "
                f"{parsed.resource_type}, so there is nothing to set on it"
            )
        groups.setdefault((parsed.account_id, parsed.region, tags), []).append(arn)
    return [
        _Batch(account_id=account, region=region, tags=dict(tags), arns=members[i : i + TAG_RESOURCES_LIMIT])
        for (account, region, tags), members in groups.items()
        for i in range(0, len(members), TAG_RESOURCES_LIMIT)
    ]


def _default_name(strategy: str, types: Sequence[str], requested: Sequence[str] | None) -> str:
    action = "Auto-tag" if strategy == "auto_tag" else "Report"
    if not requested or list(requested) == ["all"]:
        scope = "all resource types"
    elif len(types) <= 3:
        scope = ", ".join(types)
    else:
        scope = f"{len(types)} resource types"
    return f"Tag compliance - {action} ({scope})"


# --- steps -----------------------------------------------------------------------------------------


class _Builder:
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


def _chain(steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for current, following in itertools.pairwise(steps):
        current["nextAction"] = following
    return steps[0] if steps else None


def _remediation(
    build: _Builder,
    strategy: str,
    batches: Sequence[_Batch],
    evaluation: dict[str, Any] | None,
    dry_run: bool,
    threshold: float | None,
) -> list[dict[str, Any]]:
    if strategy == "notify_only":
        assert evaluation is not None
        header = (
            f"Tag compliance below {_number(threshold)}" if threshold is not None else "Tag compliance report"
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


def _scan_command(types: Sequence[str]) -> str:
    filters = " ".join(dict.fromkeys(str(REGISTRY[type_id].tagging_api_filter) for type_id in types))
    return f"aws resourcegroupstaggingapi get-resources --resource-type-filters {filters} --output json"


def _number(value: float | None) -> str:
    return f"{value or 0:.6f}".rstrip("0").rstrip(".") or "0"


# --- the scoring Code step ---------------------------------------------------------------------------

# Runs in OpenOps's Code step (TypeScript, so it is kept to plain JavaScript that also compiles as
# TypeScript); the source is package data, scripts/openops_evaluation.js. RULES is a JSON literal
# passed through JSON.parse so that the compiler types it as any; being in the source, not the step
# input, it never meets OpenOps's {{...}} templating. The rules mirror tagcompliance.compliance:
# missing_tag, wrong_key_case, invalid_value (with * wildcards), invalid_format, prohibited_tag.
EVALUATION_SCRIPT = "scripts/openops_evaluation.js"


@lru_cache(maxsize=1)
def evaluation_script() -> str:
    """The Code step's JavaScript, with ``__RULES__`` where the rules go."""
    return (importlib.resources.files(__package__) / EVALUATION_SCRIPT).read_text(encoding="utf-8")


def _js_literal(text: str) -> str:
    """``text`` escaped for a JavaScript RegExp source (no flags)."""
    return re.sub(r"[\\^$.*+?()[\]{}|/-]", lambda match: "\\" + match.group(0), text)


def _js_regex(pattern: str) -> str:
    """A policy regular expression in JavaScript syntax (named groups are spelt differently)."""
    return re.sub(r"\(\?P=(\w+)\)", r"\\k<\1>", pattern.replace("(?P<", "(?<"))


def _rule_spec(tag: RequiredTag) -> dict[str, Any]:
    allowed = tag.allowed_values
    wildcards = [value for value in allowed or [] if "*" in value]
    return {
        "allowed": None if allowed is None else [value for value in allowed if "*" not in value],
        "allowedPattern": (
            "^(?:"
            + "|".join("[\\s\\S]*".join(map(_js_literal, value.split("*"))) for value in wildcards)
            + ")$"
            if wildcards
            else None
        ),
        "pattern": _js_regex(tag.validation_regex) if tag.validation_regex else None,
    }


def _evaluation_code(
    policy: TaggingPolicy, types: Sequence[str], tag_values: Mapping[str, str] | None
) -> str:
    rules: dict[str, Any] = {
        "types": {
            type_id: {
                "service": REGISTRY[type_id].arn_service,
                "prefix": REGISTRY[type_id].arn_prefix,
                "separator": REGISTRY[type_id].arn_separator,
                "required": [tag.name for tag in policy.required_for(type_id)],
            }
            for type_id in types
        },
        "rules": {
            tag.name: _rule_spec(tag)
            for tag in policy.required_tags
            if any(tag.applies(type_id) for type_id in types)
        },
        "prohibited": list(policy.prohibited_tags),
        "tagValues": dict(tag_values) if tag_values is not None else None,
        "batchLimit": TAG_RESOURCES_LIMIT,
        "reportLimit": REPORT_LIMIT,
    }
    literal = json.dumps(rules, indent=2, sort_keys=True, ensure_ascii=True)
    return evaluation_script().replace("__RULES__", literal)


# --- description and notes ---------------------------------------------------------------------------


def _description(
    trigger: str, cron: str, threshold: float | None, strategy: str, types: Sequence[str], dry_run: bool
) -> str:
    when = f"On the schedule '{cron}' ({TIMEZONE})"
    if trigger == "compliance_score_below":
        when += f", when the tag compliance score is below {_number(threshold)}"
    what = (
        "sends a tag-compliance report"
        if strategy == "notify_only"
        else "adds the policy's required tags with the given values"
        + (" (dry run: nothing is changed)" if dry_run else "")
    )
    return f"{when}, {what} for {', '.join(types)}. Generated by the tag-compliance MCP server."


def _notes(
    *,
    trigger: str,
    cron: str,
    threshold: float | None,
    strategy: str,
    dry_run: bool,
    batches: Sequence[_Batch],
    scanned_types: Sequence[str],
    skipped_types: Sequence[str],
    policy: TaggingPolicy,
    types: Sequence[str],
    values: Mapping[str, str] | None,
    output_format: str,
) -> list[str]:
    notes = [
        "Import in OpenOps with Workflows > Import Workflow and the JSON content; pick the AWS "
        + ("and Slack connections" if strategy == "notify_only" else "connection")
        + " when asked."
    ]
    if output_format == "yaml":
        notes.append(
            "The content is YAML for reading only: OpenOps imports the JSON form (the workflow field)."
        )
    notes.append(
        f"Runs on the cron schedule '{cron}' in {TIMEZONE} (@openops/block-schedule cron_expression)."
    )
    if trigger == "compliance_score_below":
        notes.append(
            "OpenOps has no compliance-score trigger: the workflow runs on the schedule, scans and "
            f"scores the resources itself, and a Branch step (NUMBER_IS_LESS_THAN {_number(threshold)}) "
            "lets the remediation run only when the score is below the threshold."
        )
        if threshold == 0:
            notes.append("With threshold 0 the remediation never runs: a score cannot be below 0.")
    if scanned_types:
        notes.append(
            "The scan uses the Resource Groups Tagging API (aws_cli, read-only, so it runs even in "
            "dry-run) in the AWS connection's default region. That API lists only resources that have "
            "or had tags, so never-tagged resources are not counted there; this server's own scan sees them."
        )
        notes.append(
            "The Code step scores like this server: a resource is compliant when every required tag is "
            "present with the exact key, non-empty, allowed and matching its pattern, and no prohibited "
            "tag is set. With no resource found the score is 1."
        )
    if skipped_types:
        notes.append(f"Not scanned (no Tagging API filter): {', '.join(skipped_types)}.")
    if (
        any(tag.validation_regex for type_id in types for tag in policy.required_for(type_id))
        and scanned_types
    ):
        notes.append(
            "validation_regex patterns run as JavaScript RegExp in the Code step: \\w, \\d and \\s "
            "match ASCII only there."
        )
        odd = sorted(
            {
                tag.name
                for type_id in types
                for tag in policy.required_for(type_id)
                if tag.validation_regex and _PY_ONLY_REGEX.search(tag.validation_regex)
            }
        )
        if odd:
            notes.append(
                f"The patterns of {', '.join(odd)} use Python-only syntax (\\A, \\Z or inline flags) "
                "that JavaScript rejects or reads differently: review the Code step before enabling."
            )
    if strategy == "notify_only":
        notes.append(
            "The Slack step has no recipient yet (conversationId): choose the channel or user in "
            "OpenOps; until then the workflow is marked incomplete (valid: false)."
        )
        return notes
    assert values is not None
    if dry_run:
        notes.append(
            "dryRun is on in every Tag Resources step: the steps report and change nothing. "
            "Generate again with dry_run=false to apply the tags."
        )
    else:
        notes.append("dryRun is OFF: once enabled, the workflow writes tags to AWS resources.")
    unset = sorted({tag.name for type_id in types for tag in policy.required_for(type_id)} - set(values))
    if unset:
        notes.append(f"No value was given for {', '.join(unset)}: those required tags are not set.")
    if batches:
        arn_count = sum(len(batch.arns) for batch in batches)
        notes.append(
            f"{arn_count} ARN(s) in {len(batches)} Tag Resources step(s) of at most "
            f"{TAG_RESOURCES_LIMIT} (the TagResources limit), one account and region per step; each "
            "ARN gets only the tags the policy requires for its type, and existing values of those "
            "keys are overwritten."
        )
        if any(not batch.region for batch in batches):
            notes.append(
                "S3 bucket ARNs carry no region; OpenOps's Tag Resources step picks the Tagging API "
                "region from the ARN, so check that the S3 step succeeds."
            )
    else:
        notes.append(
            f"Without resource_arns, the Code step collects the resources whose required tags among "
            f"{', '.join(values)} are missing or empty and a Loop tags them in batches of "
            f"{TAG_RESOURCES_LIMIT} (TagResources limit); values present but invalid are reported, "
            "not changed."
        )
    return notes

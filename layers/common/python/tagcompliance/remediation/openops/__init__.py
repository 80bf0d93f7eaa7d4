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


One module per part; this package re-exports their public names.
"""

from .checks import check_name
from .code_step import EVALUATION_SCRIPT, evaluation_script
from .generator import generate_openops_workflow
from .models import (
    AWS_BLOCK,
    AWS_CONNECTION,
    BLOCK_VERSIONS,
    DEFAULT_CRON,
    REPORT_LIMIT,
    SCHEDULE_BLOCK,
    SCHEMA_PATH,
    SLACK_BLOCK,
    SLACK_CONNECTION,
    TAG_RESOURCES_LIMIT,
    TIMEZONE,
    OpenOpsWorkflow,
    OutputFormat,
    Strategy,
    Trigger,
    load_flow_template_schema,
)
from .notes import workflow_description
from .steps import remediation_steps

__all__ = [
    "AWS_BLOCK",
    "AWS_CONNECTION",
    "BLOCK_VERSIONS",
    "DEFAULT_CRON",
    "EVALUATION_SCRIPT",
    "REPORT_LIMIT",
    "SCHEDULE_BLOCK",
    "SCHEMA_PATH",
    "SLACK_BLOCK",
    "SLACK_CONNECTION",
    "TAG_RESOURCES_LIMIT",
    "TIMEZONE",
    "OpenOpsWorkflow",
    "OutputFormat",
    "Strategy",
    "Trigger",
    "check_name",
    "evaluation_script",
    "generate_openops_workflow",
    "load_flow_template_schema",
    "remediation_steps",
    "workflow_description",
]

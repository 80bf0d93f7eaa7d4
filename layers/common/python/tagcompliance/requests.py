"""The tools' requests: one pydantic model per tool, with every argument, its limits and its
description listed once. The gateway publishes each model's fields as the tool's input schema, builds
the model once per call and hands it to the safety request (``parameters()``: what an intent commit
binds) and to the work."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .audits.models import RUN_ID_PATTERN
from .resources import RESOURCE_TYPE_IDS

# Scope arguments, explained once in the server's instructions.
ResourceTypes = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=len(RESOURCE_TYPE_IDS) + 5,
    ),
]
Regions = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=40,
    ),
]
Accounts = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=1000,
    ),
]
# The arguments every scan shares, explained once in the server's instructions (no description here).
PageSize = Annotated[int, Field(default=50, ge=1, le=500)]
Cursor = Annotated[
    str | None,
    Field(default=None, max_length=2000),
]
ForceRefresh = Annotated[bool, Field(default=False)]
DryRun = Annotated[bool, Field(default=False)]
ConfirmationToken = Annotated[
    str | None,
    Field(default=None, max_length=200),
]
Detail = Literal["summary", "full"]
Severity = Literal["all", "errors_only", "warnings_only"]


class ToolRequest(BaseModel):
    """One tool call's arguments. ``parameters()`` are the ones the work runs with: an intent commit
    binds exactly these (the safety arguments, a cursor, which pages a stored snapshot, and ``detail``,
    which shapes only the answer's text, are not)."""

    model_config = ConfigDict(extra="forbid")

    tool: ClassVar[str]  # the tool these are the arguments of
    not_bound: ClassVar[frozenset[str]] = frozenset({"dry_run", "confirmation_token", "cursor", "detail"})

    def parameters(self) -> dict[str, Any]:
        return {name: value for name, value in self if name not in self.not_bound}


class CheckComplianceRequest(ToolRequest):
    tool: ClassVar[str] = "check_tag_compliance"
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None
    severity: Annotated[Severity, Field(description="Which violations to list and count.")] = "all"
    force_refresh: ForceRefresh = False
    page_size: PageSize = 50
    cursor: Cursor = None
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class FindUntaggedRequest(ToolRequest):
    tool: ClassVar[str] = "find_untagged_resources"
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None
    force_refresh: ForceRefresh = False
    page_size: PageSize = 50
    cursor: Cursor = None
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class ValidateTagsRequest(ToolRequest):
    tool: ClassVar[str] = "validate_resource_tags"
    resource_arns: Annotated[
        list[str], Field(min_length=1, max_length=100, description="1-100 resource ARNs to validate.")
    ]
    regions: Annotated[
        list[str] | None,
        Field(
            default=None,
            max_length=40,
            description="Where to look for S3 buckets (their ARNs carry no region); "
            "default regions if omitted.",
        ),
    ] = None
    force_refresh: Annotated[
        bool, Field(default=True, description="Read current tags from AWS (default) or accept cached ones.")
    ] = True
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class CostGapRequest(ToolRequest):
    tool: ClassVar[str] = "get_cost_attribution_gap"
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None
    start_date: Annotated[
        date | None,
        Field(default=None, description="Default: COST_LOOKBACK_DAYS before end_date."),
    ] = None
    end_date: Annotated[date | None, Field(default=None, description="Exclusive; default today.")] = None
    tag_keys: Annotated[
        list[str] | None,
        Field(default=None, max_length=20, description="Required tags to analyse; default all that apply."),
    ] = None
    include_resource_estimates: Annotated[
        bool,
        Field(default=False, description="Also estimate spend of untagged resources (top 50)."),
    ] = False
    force_refresh: ForceRefresh = False
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class SuggestTagsRequest(ToolRequest):
    tool: ClassVar[str] = "suggest_tags"
    resource_arn: Annotated[str, Field(min_length=1, max_length=2048, description="The resource's ARN.")]
    regions: Annotated[
        list[str] | None,
        Field(
            default=None,
            max_length=40,
            description="Where to look for an S3 bucket (its ARN has no region); default regions.",
        ),
    ] = None
    force_refresh: ForceRefresh = False
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class PolicyRequest(ToolRequest):
    """get_tagging_policy takes no arguments."""

    tool: ClassVar[str] = "get_tagging_policy"


class ReportRequest(ToolRequest):
    tool: ClassVar[str] = "generate_compliance_report"
    format: Annotated[Literal["json", "csv", "markdown"], Field(description="Report format.")] = "markdown"
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None
    include_violations: Annotated[
        bool, Field(default=True, description="List every violation (the file holds them all).")
    ] = True
    force_refresh: ForceRefresh = False
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class HistoryRequest(ToolRequest):
    tool: ClassVar[str] = "get_violation_history"
    days_back: Annotated[int, Field(default=30, ge=1, le=365, description="How far back (1-365 days).")] = 30
    group_by: Annotated[Literal["day", "week", "month"], Field(description="Bucket size of the trend.")] = (
        "day"
    )
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None


class CustodianRequest(ToolRequest):
    tool: ClassVar[str] = "generate_custodian_policy"
    # dry_run is the policies' own argument (select only, or also act): the generation binds it.
    not_bound: ClassVar[frozenset[str]] = frozenset()

    resource_types: ResourceTypes = None
    violation_types: Annotated[
        list[Literal["missing_tag", "invalid_value", "invalid_format", "wrong_key_case"]] | None,
        Field(default=None, max_length=4, description="Default: all."),
    ] = None
    target_tags: Annotated[
        list[str] | None,
        Field(default=None, max_length=50, description="Default: every required tag."),
    ] = None
    dry_run: Annotated[bool, Field(description="false adds the tag / mark-for-op actions.")] = True
    placeholder_values: Annotated[
        dict[str, str] | None,
        Field(default=None, description="Written only where a tag is absent; policy-valid."),
    ] = None
    mark_for_op_days: Annotated[
        int | None,
        Field(default=None, ge=1, le=90, description="Days before acting on invalid values."),
    ] = None
    mode: Annotated[
        Literal["pull", "periodic", "cloudtrail"], Field(description="Custodian execution mode.")
    ] = "pull"
    schedule: Annotated[
        str | None, Field(default=None, max_length=100, description="periodic mode: e.g. rate(1 day).")
    ] = None


class OpenOpsRequest(ToolRequest):
    tool: ClassVar[str] = "generate_openops_workflow"
    # dry_run is the workflow's own argument (its steps' dryRun), so an intent commit binds it.
    not_bound: ClassVar[frozenset[str]] = frozenset({"confirmation_token"})

    resource_types: ResourceTypes = None
    trigger: Annotated[
        Literal["schedule", "compliance_score_below"],
        Field(description="compliance_score_below: act only below threshold."),
    ] = "schedule"
    cron_expression: Annotated[
        str | None,
        Field(default=None, max_length=100, description="5-field cron in UTC; default daily 06:00."),
    ] = None
    threshold: Annotated[
        float | None,
        Field(default=None, ge=0, le=1, description="Score below which to act."),
    ] = None
    remediation_strategy: Annotated[
        Literal["auto_tag", "notify_only"],
        Field(description="auto_tag writes tag_values where missing."),
    ] = "notify_only"
    tag_values: Annotated[
        dict[str, str] | None,
        Field(default=None, description="For auto_tag; policy-valid."),
    ] = None
    resource_arns: Annotated[
        list[str] | None,
        Field(default=None, max_length=1000, description="Only these resources."),
    ] = None
    dry_run: Annotated[bool, Field(description="Steps run with dryRun.")] = True
    name: Annotated[str | None, Field(default=None, max_length=200)] = None
    output_format: Annotated[Literal["json", "yaml"], Field(description="yaml: for reading only.")] = "json"
    confirmation_token: ConfirmationToken = None

    def overwrites_tags(self) -> bool:
        """Whether the workflow would write tag values onto named resources (which may hold others)."""
        return bool(
            self.remediation_strategy == "auto_tag"
            and not self.dry_run
            and self.tag_values
            and self.resource_arns
        )


class DriftRequest(ToolRequest):
    tool: ClassVar[str] = "detect_tag_drift"
    resource_types: ResourceTypes = None
    regions: Regions = None
    accounts: Accounts = None
    lookback_days: Annotated[
        int | None,
        Field(
            default=None,
            ge=1,
            le=365,
            description="Baseline: the newest snapshot at least this old; default newest.",
        ),
    ] = None
    tag_keys: Annotated[
        list[str] | None, Field(default=None, max_length=50, description="Only drift on these tag keys.")
    ] = None
    threshold: Annotated[
        int | None, Field(default=None, ge=1, le=1_000_000, description="Flag when this many drifts or more.")
    ] = None
    limit: Annotated[int, Field(default=100, ge=1, le=1000, description="Drifts listed.")] = 100
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity = "all"
    resource_types: list[str] | None = Field(default=None, max_length=30)
    regions: list[str] | None = Field(default=None, max_length=40)
    accounts: list[str] | None = Field(default=None, max_length=1000)
    violation_types: list[str] | None = Field(default=None, max_length=10)


class ExportRequest(ToolRequest):
    tool: ClassVar[str] = "export_violations_csv"
    filters: Annotated[
        ExportFilters | None,
        Field(default=None, description="Default: every violation in scope."),
    ] = None
    columns: Annotated[
        list[str] | None,
        Field(
            default=None,
            max_length=20,
            description="In order; e.g. resource_arn, violation, severity.",
        ),
    ] = None
    format: Literal["csv"] = "csv"
    limit: Annotated[int, Field(default=500, ge=1, le=10_000, description="Rows in this answer.")] = 500
    cursor: Cursor = None
    to_file: Annotated[
        bool, Field(default=False, description="Write every row to a file (resource link).")
    ] = False
    force_refresh: ForceRefresh = False
    detail: Detail = "summary"
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None

    @property
    def chosen_filters(self) -> ExportFilters:
        return self.filters or ExportFilters()

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "filters": self.chosen_filters.model_dump()}


class ImportPolicyRequest(ToolRequest):
    tool: ClassVar[str] = "import_aws_tag_policy"
    policy_id: Annotated[
        str | None,
        Field(default=None, max_length=130, description="p-... id; omit to list the available tag policies."),
    ] = None
    use_effective: Annotated[
        bool, Field(default=False, description="Import this account's effective tag policy instead.")
    ] = False
    save_to_file: Annotated[
        bool, Field(default=False, description="Save the converted policy (inside the policies directory).")
    ] = False
    output_path: Annotated[
        str | None,
        Field(default=None, max_length=500, description="A .json path inside the policies directory."),
    ] = None
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None


class ScheduleRequest(ToolRequest):
    tool: ClassVar[str] = "schedule_compliance_audit"
    action: Annotated[
        Literal["create", "list", "get", "update", "pause", "resume", "delete"],
        Field(description="create/update take the fields below."),
    ] = "create"
    schedule_id: Annotated[
        str | None,
        Field(default=None, max_length=64, description="All actions but create and list."),
    ] = None
    schedule: Annotated[Literal["daily", "weekly", "monthly", "cron"] | None, Field(default=None)] = None
    time: Annotated[str | None, Field(default=None, max_length=5, description="HH:MM, 24-hour, local.")] = (
        None
    )
    timezone: Annotated[
        str | None, Field(default=None, max_length=64, description="IANA zone, e.g. America/New_York.")
    ] = None
    day_of_week: Annotated[
        str | None, Field(default=None, max_length=9, description="weekly: e.g. monday.")
    ] = None
    day_of_month: Annotated[
        int | None, Field(default=None, ge=1, le=31, description="monthly; the last day if shorter.")
    ] = None
    cron_expression: Annotated[
        str | None, Field(default=None, max_length=100, description="cron: 5 fields, in the timezone.")
    ] = None
    resource_types: ResourceTypes = None
    regions: Regions = None
    recipients: Annotated[
        list[str] | None,
        Field(default=None, max_length=50, description="Email addresses and/or Slack webhook URLs."),
    ] = None
    format: Annotated[Literal["email", "slack", "both"] | None, Field(default=None)] = None
    status: Annotated[
        Literal["active", "paused", "deleted", "all"] | None,
        Field(default=None, description="For list; default active and paused."),
    ] = None
    dry_run: DryRun = False
    confirmation_token: ConfirmationToken = None

    def schedule_fields(self) -> dict[str, Any]:
        """The schedule's own fields that were given (create/update/list take these)."""
        return {
            name: value
            for name, value in self.parameters().items()
            if name not in ("action", "schedule_id") and value is not None
        }

    def parameters(self) -> dict[str, Any]:
        given = {name: value for name, value in super().parameters().items() if value is not None}
        return {"action": self.action, "schedule_id": self.schedule_id, **given}

    def scans(self) -> bool:
        """Whether the schedule's runs scan a scope (create or update with types or regions)."""
        return self.action in ("create", "update") and (
            self.resource_types is not None or self.regions is not None
        )


class BeliefLogRequest(ToolRequest):
    tool: ClassVar[str] = "get_intent_beliefs"
    tool_name: Annotated[str | None, Field(default=None, max_length=100, description="Only this tool.")] = (
        None
    )
    user_id: Annotated[str | None, Field(default=None, max_length=255, description="Only this caller.")] = (
        None
    )
    stage: Annotated[
        Literal["clarification", "commit", "executed", "dry_run"] | None,
        Field(default=None, description="Only this stage."),
    ] = None
    only_mismatched: Annotated[
        bool, Field(default=False, description="Only beliefs whose outcome did not match.")
    ] = False
    limit: Annotated[int, Field(default=50, ge=1, le=500, description="Newest first.")] = 50


class AuditStatusRequest(ToolRequest):
    tool: ClassVar[str] = "get_audit_status"
    run_id: Annotated[
        str,
        Field(
            pattern=RUN_ID_PATTERN, description="The run_id of a job handle (job.run_id) or a scheduled run."
        ),
    ]


class TagChange(BaseModel):
    """One resource: tags to set, keys to remove."""

    model_config = ConfigDict(extra="forbid")

    resource_arn: str = Field(min_length=1, max_length=2048)
    set_tags: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="key -> value, added or overwritten."
    )
    remove_tags: list[str] = Field(default_factory=list, max_length=50, description="Keys to remove.")


class FromSuggestions(BaseModel):
    """suggest_tags' values for missing/invalid required tags."""

    model_config = ConfigDict(extra="forbid")

    resource_types: list[str] = Field(min_length=1, max_length=len(RESOURCE_TYPE_IDS) + 5)
    regions: list[str] = Field(min_length=1, max_length=40)
    accounts: Accounts = None
    min_confidence: float = Field(default=0.8, ge=0, le=1, description="0-1.")
    tags: list[str] | None = Field(
        default=None, max_length=50, description="Only these required keys (default all)."
    )


class ApplyRemediationRequest(ToolRequest):
    tool: ClassVar[str] = "apply_tag_remediation"
    changes: Annotated[
        list[TagChange] | None,
        Field(
            default=None,
            max_length=1000,
            description="Or give from_suggestions.",
        ),
    ] = None
    from_suggestions: Annotated[
        FromSuggestions | None,
        Field(default=None),
    ] = None
    regions: Annotated[
        list[str] | None,
        Field(default=None, max_length=40, description="Where S3 buckets in changes live."),
    ] = None
    allow_policy_violations: Annotated[
        bool, Field(default=False, description="Write values the policy rejects.")
    ] = False
    dry_run: Annotated[
        bool,
        Field(default=False, description="Diff only; write nothing."),
    ] = False
    confirmation_token: ConfirmationToken = None


class UndoRemediationRequest(ToolRequest):
    tool: ClassVar[str] = "undo_tag_remediation"
    remediation_id: Annotated[
        str,
        Field(
            pattern=r"^rem_[0-9a-f]{32}$", description="The remediation_id apply_tag_remediation returned."
        ),
    ]
    force: Annotated[
        bool,
        Field(
            default=False,
            description="Also restore resources whose tags changed since.",
        ),
    ] = False
    dry_run: Annotated[
        bool,
        Field(default=False, description="Diff only; write nothing."),
    ] = False
    confirmation_token: ConfirmationToken = None

"""The MCP server: tool definitions. Each tool validates its arguments, calls one core function and
returns a pydantic result model (structured content)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tagcompliance import __version__
from tagcompliance.cost import CostAttributionGap
from tagcompliance.drift import DriftResult
from tagcompliance.errors import InvalidInputError
from tagcompliance.inventory import ProgressCallback
from tagcompliance.models import (
    ComplianceCheckResult,
    ExportResult,
    FindUntaggedResult,
    HistoryResult,
    PolicyResult,
    ReportResult,
    ScheduleAction,
    ValidateResult,
)
from tagcompliance.policy_import import (
    ImportResult,
    OrganizationsTagPolicySource,
    import_tag_policy,
    resolve_output_path,
)
from tagcompliance.remediation.custodian import CustodianPolicies, generate_custodian_policies
from tagcompliance.remediation.openops import OpenOpsWorkflow
from tagcompliance.remediation.openops import generate_openops_workflow as build_openops_workflow
from tagcompliance.resources import RESOURCE_TYPE_IDS
from tagcompliance.safety.tokens import Caller
from tagcompliance.schedules import ScheduleSpec
from tagcompliance.suggest import TagSuggestions

from .audit_tools import register_audit_tools
from .auth.config import GatewayAuth, is_loopback
from .auth.scopes import ADMIN_SCOPE, ScopeMiddleware
from .runtime import CallLogMiddleware, Runtime, run_tool
from .safety import (
    ConfirmationToken,
    DryRun,
    ResultT,
    SafetyGate,
    SafetyRequest,
    SafetyResponse,
    allow_safety_responses,
    current_caller,
    register_safety_tools,
    scan_outcome,
)
from .tracing import ToolTraceMiddleware

INSTRUCTIONS = f"""\
Tag-compliance analyst for AWS. Checks resources against the organisation's tagging policy,
finds untagged resources, quantifies spend that cannot be attributed, suggests tag values and
tracks compliance over time.

Resource types are registry ids: {", ".join(RESOURCE_TYPE_IDS)} (or "all").
Results are summaries plus one page of details; pass next_cursor back for more.
Every figure states its scope (account, regions, types); failed_shards lists what could not be
read: never present a partial scan as complete. When the user's request leaves the resource
types, regions or time period unclear, ask them rather than guessing: such calls answer
clarification_needed with options and estimates. Large, costly or writing calls answer intent_commit:
show it to the user, and only after they confirm call again with its confirmation_token. dry_run
estimates a call without calling AWS.
"""

# A proxy in front adds one of these: the request's loopback peer then is the proxy, not the client.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")

# Tools whose answer may be a SafetyResponse instead of their own result.
GUARDED_TOOLS = (
    "check_tag_compliance",
    "find_untagged_resources",
    "validate_resource_tags",
    "get_cost_attribution_gap",
    "suggest_tags",
    "generate_compliance_report",
    "generate_openops_workflow",
    "detect_tag_drift",
    "export_violations_csv",
    "import_aws_tag_policy",
    "schedule_compliance_audit",
)


async def guarded(
    gate: SafetyGate,
    ctx: Context,
    tool: str,
    parameters: dict[str, Any],
    execute: Callable[[ProgressCallback], ResultT],
    *,
    dry_run: bool = False,
    confirmation_token: str | None = None,
    cursor: str | None = None,
    caller: Caller | None = None,
    outcome: Callable[[ResultT], Mapping[str, Any]] | None = None,
    precheck: Callable[[], None] | None = None,
    **implied: Any,
) -> ResultT | SafetyResponse:
    """One call of a guarded tool: its ``SafetyRequest``, then ``gate.run`` (``execute`` only on proceed).

    ``parameters``: every argument the work runs with, listed by the tool (the commit binds exactly
    these); ``dry_run`` and ``confirmation_token``: the tool's safety arguments; ``implied``: what the
    call implies, as ``SafetyRequest`` fields (``scope``, ``fixed_estimate``, ``cost_explorer``,
    ``writes``, ``tag_values``, ``current_tags``); ``caller``: default ``current_caller``. A ``cursor``
    pages a stored snapshot and calls no AWS API: that work runs unguarded (and refuses ``dry_run``)."""
    if cursor:
        if dry_run:
            raise InvalidInputError(
                "dry_run estimates a new scan; a cursor pages a stored snapshot and calls no AWS API"
            )
        return await run_tool(ctx, execute)
    request = SafetyRequest(
        tool=tool,
        parameters=parameters,
        caller=caller if caller is not None else current_caller(gate.runtime),
        dry_run=dry_run,
        confirmation_token=confirmation_token,
        **implied,
    )
    return await gate.run(ctx, request, execute, outcome, precheck)


ResourceTypes = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=len(RESOURCE_TYPE_IDS) + 5,
        description='Registry resource types such as "ec2:instance", "rds:db", "s3:bucket"; ["all"] '
        "means every supported type. Omitted: the answer asks which (clarification_needed).",
    ),
]
Regions = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=40,
        description='AWS regions such as "us-east-1"; ["all"] means every enabled region (needs approval). '
        "Omitted: the answer asks which (clarification_needed).",
    ),
]
PageSize = Annotated[int, Field(default=50, ge=1, le=500, description="Details per page (1-500).")]
Cursor = Annotated[
    str | None,
    Field(
        default=None, max_length=2000, description="next_cursor from a previous call, to get the next page."
    ),
]
ForceRefresh = Annotated[
    bool, Field(default=False, description="Re-scan AWS instead of using a result cached within the TTL.")
]


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Literal["all", "errors_only", "warnings_only"] = "all"
    resource_types: list[str] | None = Field(default=None, max_length=30)
    regions: list[str] | None = Field(default=None, max_length=40)
    violation_types: list[str] | None = Field(default=None, max_length=10)


def build_server(runtime: Runtime, auth: GatewayAuth | None = None) -> MCPServer:
    """The MCP server; with ``auth`` every HTTP request needs a bearer token with ``tag:read`` and
    each tool call the scope ``auth.scopes.required_scope`` names (audit first, so refusals are logged).
    Tools that scan, cost money or write go through the safety gate (``services/mcp_gateway/safety.py``)."""
    mcp = MCPServer(
        name="tag-compliance",
        version=__version__,
        instructions=INSTRUCTIONS,
        middleware=[ToolTraceMiddleware(), CallLogMiddleware(runtime), ScopeMiddleware()],
        token_verifier=auth.verifier if auth is not None else None,
        auth=auth.settings if auth is not None else None,
    )
    service = runtime.service
    gate = SafetyGate(runtime)

    @mcp.tool()
    async def check_tag_compliance(
        ctx: Context,
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        severity: Annotated[
            Literal["all", "errors_only", "warnings_only"],
            Field(description="Which violations to list and count."),
        ] = "all",
        force_refresh: ForceRefresh = False,
        page_size: PageSize = 50,
        cursor: Cursor = None,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ComplianceCheckResult | SafetyResponse:
        """Check resources against the tagging policy: compliance score (compliant / scanned), counts by
        type, region and violation type, and one page of violations (missing_tag, wrong_key_case,
        invalid_value, invalid_format, prohibited_tag). Every check is stored as a snapshot for history."""

        def execute(progress):
            return service.check_compliance(
                resource_types, regions, severity, force_refresh, page_size, cursor, progress
            )

        parameters = {
            "resource_types": resource_types,
            "regions": regions,
            "severity": severity,
            "force_refresh": force_refresh,
            "page_size": page_size,
        }
        return await guarded(
            gate,
            ctx,
            "check_tag_compliance",
            parameters,
            execute,
            scope=gate.scope(resource_types, regions),
            outcome=scan_outcome,
            cursor=cursor,
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def find_untagged_resources(
        ctx: Context,
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        force_refresh: ForceRefresh = False,
        page_size: PageSize = 50,
        cursor: Cursor = None,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> FindUntaggedResult | SafetyResponse:
        """Find resources missing one or more required tags (empty values count as missing), including
        resources that were never tagged at all, with the missing keys for each."""

        def execute(progress):
            return service.find_untagged(resource_types, regions, force_refresh, page_size, cursor, progress)

        parameters = {
            "resource_types": resource_types,
            "regions": regions,
            "force_refresh": force_refresh,
            "page_size": page_size,
        }
        return await guarded(
            gate,
            ctx,
            "find_untagged_resources",
            parameters,
            execute,
            scope=gate.scope(resource_types, regions),
            outcome=scan_outcome,
            cursor=cursor,
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def validate_resource_tags(
        ctx: Context,
        resource_arns: Annotated[
            list[str],
            Field(min_length=1, max_length=100, description="1-100 resource ARNs to validate."),
        ],
        regions: Annotated[
            list[str] | None,
            Field(
                default=None,
                max_length=40,
                description="Where to look for S3 buckets (their ARNs carry no region); "
                "default regions if omitted.",
            ),
        ] = None,
        force_refresh: Annotated[
            bool,
            Field(default=True, description="Read current tags from AWS (default) or accept cached ones."),
        ] = True,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ValidateResult | SafetyResponse:
        """Validate specific resources by ARN against the policy. An ARN that does not exist is reported
        as not_found, one whose tags could not be read as not_scanned; neither is ever called compliant."""
        return await guarded(
            gate,
            ctx,
            "validate_resource_tags",
            {"resource_arns": resource_arns, "regions": regions, "force_refresh": force_refresh},
            lambda progress: service.validate_resources(resource_arns, regions, force_refresh, progress),
            fixed_estimate=gate.arn_estimate(resource_arns, regions),
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def get_cost_attribution_gap(
        ctx: Context,
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        start_date: Annotated[
            date | None,
            Field(
                default=None,
                description="First day (YYYY-MM-DD); default COST_LOOKBACK_DAYS before end_date.",
            ),
        ] = None,
        end_date: Annotated[
            date | None, Field(default=None, description="Day after the last day (exclusive); default today.")
        ] = None,
        tag_keys: Annotated[
            list[str] | None,
            Field(
                default=None, max_length=20, description="Required tags to analyse; default all that apply."
            ),
        ] = None,
        include_resource_estimates: Annotated[
            bool,
            Field(default=False, description="Also list estimated spend of resources missing tags (top 50)."),
        ] = False,
        force_refresh: ForceRefresh = False,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> CostAttributionGap | SafetyResponse:
        """Spend that cannot be attributed: for each required tag, the Cost Explorer spend of the
        requested types' services without the tag or with a value the policy rejects, per service, with
        the headline gap. Every figure states its method. Cost Explorer bills $0.01 per request (one per
        tag, plus one activation check); answers are cached. Omitting start_date and end_date asks for
        the period."""
        parameters = {
            "resource_types": resource_types,
            "regions": regions,
            "start_date": start_date,
            "end_date": end_date,
            "tag_keys": tag_keys,
            "include_resource_estimates": include_resource_estimates,
            "force_refresh": force_refresh,
        }
        return await guarded(
            gate,
            ctx,
            "get_cost_attribution_gap",
            parameters,
            lambda progress: service.cost_gap(
                resource_types,
                regions,
                start_date,
                end_date,
                tag_keys,
                include_resource_estimates,
                force_refresh,
                progress,
            ),
            scope=gate.scope(resource_types, regions, (start_date, end_date), period_matters=True),
            cost_explorer=gate.cost_estimate(resource_types, tag_keys, include_resource_estimates),
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def suggest_tags(
        ctx: Context,
        resource_arn: Annotated[str, Field(min_length=1, max_length=2048, description="The resource's ARN.")],
        regions: Annotated[
            list[str] | None,
            Field(
                default=None,
                max_length=40,
                description="Where to look for an S3 bucket (its ARN has no region); default regions.",
            ),
        ] = None,
        force_refresh: ForceRefresh = False,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> TagSuggestions | SafetyResponse:
        """Suggest values for a resource's missing, wrong-cased or invalid required tags, from its name,
        its siblings (same VPC, CloudFormation stack or name prefix) and account-wide majorities. Each
        suggestion has a confidence and its reasons; only values the policy allows are suggested. Confirm
        with the user before applying any."""
        return await guarded(
            gate,
            ctx,
            "suggest_tags",
            {"resource_arn": resource_arn, "regions": regions, "force_refresh": force_refresh},
            lambda progress: service.suggest(resource_arn, regions, force_refresh, progress),
            fixed_estimate=gate.arn_estimate([resource_arn], regions),
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def get_tagging_policy(ctx: Context) -> PolicyResult:
        """The tagging policy in force: required tags (allowed values, format, which types), optional and
        prohibited tags, and where it was loaded from."""
        return await run_tool(ctx, lambda progress: service.policy_info())

    @mcp.tool()
    async def generate_compliance_report(
        ctx: Context,
        format: Annotated[
            Literal["json", "csv", "markdown"], Field(description="Report format.")
        ] = "markdown",
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        include_violations: Annotated[
            bool, Field(default=True, description="List every violation (the file holds them all).")
        ] = True,
        force_refresh: ForceRefresh = False,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ReportResult | SafetyResponse:
        """An executive compliance report (score, coverage, worst types and regions, top violations,
        recommendations). Small reports come inline; large ones are written to a file whose path is
        returned."""
        parameters = {
            "format": format,
            "resource_types": resource_types,
            "regions": regions,
            "include_violations": include_violations,
            "force_refresh": force_refresh,
        }
        return await guarded(
            gate,
            ctx,
            "generate_compliance_report",
            parameters,
            lambda progress: service.compliance_report(
                format, resource_types, regions, include_violations, force_refresh, progress
            ),
            scope=gate.scope(resource_types, regions),
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def get_violation_history(
        ctx: Context,
        days_back: Annotated[
            int, Field(default=30, ge=1, le=365, description="How far back (1-365 days).")
        ] = 30,
        group_by: Annotated[
            Literal["day", "week", "month"], Field(description="Bucket size of the trend.")
        ] = "day",
        resource_types: ResourceTypes = None,
        regions: Regions = None,
    ) -> HistoryResult:
        """Compliance trend from stored snapshots: score and counts per day, week or month, and whether
        compliance is improving. Only snapshots of the same scope are compared."""
        return await run_tool(
            ctx,
            lambda progress: service.violation_history(days_back, group_by, resource_types, regions),
        )

    @mcp.tool()
    async def generate_custodian_policy(
        ctx: Context,
        resource_types: ResourceTypes = None,
        violation_types: Annotated[
            list[Literal["missing_tag", "invalid_value", "invalid_format", "wrong_key_case"]] | None,
            Field(default=None, max_length=4, description="Violations to select; default all four."),
        ] = None,
        target_tags: Annotated[
            list[str] | None,
            Field(default=None, max_length=50, description="Required tags to enforce; default all of them."),
        ] = None,
        dry_run: Annotated[
            bool,
            Field(description="Only select and report (default); false adds the tag / mark-for-op actions."),
        ] = True,
        placeholder_values: Annotated[
            dict[str, str] | None,
            Field(
                default=None, description="Values the tag action writes where a tag is ABSENT; policy-valid."
            ),
        ] = None,
        mark_for_op_days: Annotated[
            int | None,
            Field(
                default=None, ge=1, le=90, description="Grace period before action on invalid values (days)."
            ),
        ] = None,
        mode: Annotated[
            Literal["pull", "periodic", "cloudtrail"], Field(description="How Custodian runs the policies.")
        ] = "pull",
        schedule: Annotated[
            str | None, Field(default=None, max_length=100, description="periodic mode: e.g. rate(1 day).")
        ] = None,
    ) -> CustodianPolicies:
        """Generate Cloud Custodian YAML (one policy per resource type) selecting every resource that
        violates the tagging policy (violations OR-ed). dry_run (default) only selects and reports; with
        dry_run false, placeholders are written only where a tag is absent, never over a valid value, and
        invalid values get mark-for-op. Run with `custodian run --dryrun` first."""
        return await run_tool(
            ctx,
            lambda progress: generate_custodian_policies(
                service.loaded_policy.policy,
                resource_types,
                violation_types,
                target_tags,
                dry_run,
                placeholder_values,
                mark_for_op_days,
                mode,
                schedule,
            ),
        )

    @mcp.tool()
    async def generate_openops_workflow(
        ctx: Context,
        resource_types: ResourceTypes = None,
        trigger: Annotated[
            Literal["schedule", "compliance_score_below"],
            Field(description="Run on a schedule, or on a schedule but act only below a compliance score."),
        ] = "schedule",
        cron_expression: Annotated[
            str | None,
            Field(default=None, max_length=100, description="5-field cron in UTC; default daily 06:00."),
        ] = None,
        threshold: Annotated[
            float | None,
            Field(
                default=None,
                ge=0,
                le=1,
                description="Score (0-1) below which to act; compliance_score_below.",
            ),
        ] = None,
        remediation_strategy: Annotated[
            Literal["auto_tag", "notify_only"],
            Field(description="auto_tag applies tag_values to resources missing them; notify_only reports."),
        ] = "notify_only",
        tag_values: Annotated[
            dict[str, str] | None,
            Field(
                default=None,
                description="Values to apply with auto_tag; each must be valid under the policy.",
            ),
        ] = None,
        resource_arns: Annotated[
            list[str] | None,
            Field(default=None, max_length=1000, description="Tag exactly these resources (batches of 20)."),
        ] = None,
        dry_run: Annotated[bool, Field(description="Generated steps run with dryRun (default true).")] = True,
        name: Annotated[str | None, Field(default=None, max_length=200, description="Workflow name.")] = None,
        output_format: Annotated[
            Literal["json", "yaml"], Field(description="json imports into OpenOps; yaml is for reading only.")
        ] = "json",
        confirmation_token: ConfirmationToken = None,
    ) -> OpenOpsWorkflow | SafetyResponse:
        """Generate an importable OpenOps workflow (FlowImportTemplate JSON) that reports or remediates
        tagging violations on a schedule, optionally only when the compliance score falls below a
        threshold. Steps run with dryRun unless dry_run is false. Never invents tag values: auto_tag needs
        explicit, policy-valid tag_values. A workflow that would overwrite existing tag values (per the
        stored inventory) first answers intent_commit."""
        overwriting = remediation_strategy == "auto_tag" and not dry_run and tag_values and resource_arns
        parameters = {
            "resource_types": resource_types,
            "trigger": trigger,
            "cron_expression": cron_expression,
            "threshold": threshold,
            "remediation_strategy": remediation_strategy,
            "tag_values": tag_values,
            "resource_arns": resource_arns,
            "dry_run": dry_run,
            "name": name,
            "output_format": output_format,
        }
        return await guarded(
            gate,
            ctx,
            "generate_openops_workflow",
            parameters,
            lambda progress: build_openops_workflow(
                service.loaded_policy.policy,
                resource_types,
                trigger,
                cron_expression,
                threshold,
                remediation_strategy,
                tag_values,
                resource_arns,
                dry_run,
                name,
                output_format,
            ),
            tag_values=tag_values if overwriting else None,
            current_tags=gate.stored_tags(resource_arns or []) if overwriting else None,
            confirmation_token=confirmation_token,  # dry_run is the workflow's own argument here
        )

    @mcp.tool()
    async def detect_tag_drift(
        ctx: Context,
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        lookback_days: Annotated[
            int | None,
            Field(
                default=None,
                ge=1,
                le=365,
                description="Compare with the newest snapshot at least this many days old; default: newest.",
            ),
        ] = None,
        tag_keys: Annotated[
            list[str] | None, Field(default=None, max_length=50, description="Only drift on these tag keys.")
        ] = None,
        threshold: Annotated[
            int | None,
            Field(default=None, ge=1, le=1_000_000, description="Flag when this many drifts or more."),
        ] = None,
        limit: Annotated[
            int, Field(default=100, ge=1, le=1000, description="Drifts listed (most severe first).")
        ] = 100,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> DriftResult | SafetyResponse:
        """Tags added, removed or changed since an earlier snapshot of the same scope (a fresh scan is
        compared with the stored tag state). Severity: critical when a required tag is removed or made
        invalid, warning when a required tag's value changes, info for other tags. Who and when come from
        CloudTrail when available."""
        parameters = {
            "resource_types": resource_types,
            "regions": regions,
            "lookback_days": lookback_days,
            "tag_keys": tag_keys,
            "threshold": threshold,
            "limit": limit,
        }
        return await guarded(
            gate,
            ctx,
            "detect_tag_drift",
            parameters,
            lambda progress: service.tag_drift(
                resource_types, regions, lookback_days, tag_keys, threshold, limit, progress
            ),
            scope=gate.scope(resource_types, regions),
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def export_violations_csv(
        ctx: Context,
        filters: Annotated[
            ExportFilters | None,
            Field(default=None, description="severity, resource_types, regions, violation_types."),
        ] = None,
        columns: Annotated[
            list[str] | None,
            Field(
                default=None,
                max_length=20,
                description="Columns in order, e.g. resource_arn, resource_type, violation, severity.",
            ),
        ] = None,
        format: Annotated[Literal["csv"], Field(description="Only csv.")] = "csv",
        limit: Annotated[int, Field(default=500, ge=1, le=10_000, description="Rows in this answer.")] = 500,
        cursor: Cursor = None,
        to_file: Annotated[
            bool, Field(default=False, description="Write every matching row to a file and return its path.")
        ] = False,
        force_refresh: ForceRefresh = False,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ExportResult | SafetyResponse:
        """Violations as CSV for spreadsheets (RFC 4180; cells that a spreadsheet would run as formulas are
        neutralised). Pages with next_cursor, or writes all rows to a file with to_file."""
        chosen = filters or ExportFilters()

        def execute(progress):
            return service.export_violations(
                chosen.resource_types,
                chosen.regions,
                chosen.severity,
                chosen.violation_types,
                columns,
                limit,
                cursor,
                to_file,
                force_refresh,
                progress,
            )

        parameters = {
            "filters": chosen.model_dump(),
            "columns": columns,
            "format": format,
            "limit": limit,
            "to_file": to_file,
            "force_refresh": force_refresh,
        }
        return await guarded(
            gate,
            ctx,
            "export_violations_csv",
            parameters,
            execute,
            scope=gate.scope(chosen.resource_types, chosen.regions),
            cursor=cursor,
            dry_run=dry_run,
            confirmation_token=confirmation_token,
        )

    @mcp.tool()
    async def import_aws_tag_policy(
        ctx: Context,
        policy_id: Annotated[
            str | None,
            Field(
                default=None, max_length=130, description="p-... id; omit to list the available tag policies."
            ),
        ] = None,
        use_effective: Annotated[
            bool, Field(default=False, description="Import this account's effective tag policy instead.")
        ] = False,
        save_to_file: Annotated[
            bool,
            Field(default=False, description="Save the converted policy (inside the policies directory)."),
        ] = False,
        output_path: Annotated[
            str | None,
            Field(default=None, max_length=500, description="A .json path inside the policies directory."),
        ] = None,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ImportResult | SafetyResponse:
        """Fetch an AWS Organizations tag policy and convert it to this server's policy format:
        report_required_tag_for makes a tag required, enforced_for is recorded as enforcement, wildcard
        values stay patterns, and anything that cannot be represented is listed in warnings. Without a
        policy_id it lists the available policies. Saving over the active policy file takes effect at once.
        Saving first answers intent_commit."""
        policies_dir = Path(runtime.settings.policy_path).resolve().parent

        def check_output_path() -> None:
            resolve_output_path(output_path, policies_dir)  # refuses a path outside the policies directory

        parameters = {
            "policy_id": policy_id,
            "use_effective": use_effective,
            "save_to_file": save_to_file,
            "output_path": output_path,
        }
        return await guarded(
            gate,
            ctx,
            "import_aws_tag_policy",
            parameters,
            lambda progress: import_tag_policy(
                OrganizationsTagPolicySource(service.clients),
                policy_id,
                use_effective,
                save_to_file,
                output_path,
                policies_dir,
            ),
            fixed_estimate=gate.organizations_estimate(policy_id, use_effective),
            writes=f"saves the converted policy as {output_path or 'the default file'} (policies directory)"
            if save_to_file
            else None,
            dry_run=dry_run,
            confirmation_token=confirmation_token,
            # A path outside the policies directory is refused before any commit.
            precheck=check_output_path if save_to_file else None,
        )

    @mcp.tool()
    async def schedule_compliance_audit(
        ctx: Context,
        action: Annotated[
            Literal["create", "list", "get", "update", "pause", "resume", "delete"],
            Field(description="What to do; create and update take the schedule fields below."),
        ] = "create",
        schedule_id: Annotated[
            str | None,
            Field(default=None, max_length=64, description="The schedule (all actions but create/list)."),
        ] = None,
        schedule: Annotated[
            Literal["daily", "weekly", "monthly", "cron"] | None,
            Field(default=None, description="How often."),
        ] = None,
        time: Annotated[
            str | None, Field(default=None, max_length=5, description="HH:MM, 24-hour, local.")
        ] = None,
        timezone: Annotated[
            str | None, Field(default=None, max_length=64, description="IANA zone, e.g. America/New_York.")
        ] = None,
        day_of_week: Annotated[
            str | None, Field(default=None, max_length=9, description="weekly: e.g. monday.")
        ] = None,
        day_of_month: Annotated[
            int | None,
            Field(default=None, ge=1, le=31, description="monthly: 1-31 (the last day if shorter)."),
        ] = None,
        cron_expression: Annotated[
            str | None, Field(default=None, max_length=100, description="cron: 5 fields, in the timezone.")
        ] = None,
        resource_types: ResourceTypes = None,
        regions: Regions = None,
        recipients: Annotated[
            list[str] | None,
            Field(default=None, max_length=50, description="Email addresses and/or Slack webhook URLs."),
        ] = None,
        format: Annotated[
            Literal["email", "slack", "both"] | None, Field(default=None, description="How results are sent.")
        ] = None,
        status: Annotated[
            Literal["active", "paused", "deleted", "all"] | None,
            Field(default=None, description="list: which schedules (default active and paused)."),
        ] = None,
        dry_run: DryRun = False,
        confirmation_token: ConfirmationToken = None,
    ) -> ScheduleAction | SafetyResponse:
        """Create, list, update, pause, resume or delete recurring compliance audits (daily, weekly, monthly
        or cron, at a local time in an IANA timezone; next_run is correct across DST). Results are stored
        in history flagged as scheduled and sent to the recipients."""
        fields = {
            name: value
            for name, value in {
                "schedule": schedule,
                "time": time,
                "timezone": timezone,
                "day_of_week": day_of_week,
                "day_of_month": day_of_month,
                "cron_expression": cron_expression,
                "resource_types": resource_types,
                "regions": regions,
                "recipients": recipients,
                "format": format,
                "status": status,
            }.items()
            if value is not None
        }
        writes = {
            "create": "creates a recurring audit that scans on every run",
            "update": f"changes schedule {schedule_id}",
            "delete": f"deletes schedule {schedule_id}",
        }.get(action)
        scans = action in ("create", "update") and (resource_types is not None or regions is not None)
        # created_by: the caller the audit log names (the token's user), not a fixed placeholder
        caller = current_caller(runtime)

        def precheck() -> None:  # refuse invalid changes before committing to them
            if action == "create" and not schedule_id:
                ScheduleSpec.model_validate(dict(fields))
            elif action in ("update", "delete") and schedule_id:
                service.schedules.get(schedule_id)  # refuses an unknown schedule_id

        return await guarded(
            gate,
            ctx,
            "schedule_compliance_audit",
            {"action": action, "schedule_id": schedule_id, **fields},
            lambda progress: service.manage_schedule(action, schedule_id, fields, caller.user_id),
            fixed_estimate=gate.schedule_run_estimate(resource_types, regions) if scans else None,
            writes=writes,
            caller=caller,
            dry_run=dry_run,
            confirmation_token=confirmation_token,
            precheck=precheck,
        )

    register_safety_tools(mcp, runtime, gate)
    register_audit_tools(mcp, runtime)
    _forbid_unknown_arguments(mcp)
    allow_safety_responses(mcp, GUARDED_TOOLS)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> JSONResponse:
        """Liveness for anyone (load balancers); the configuration for an operator."""
        return JSONResponse(runtime.health() if may_see_health_details(request) else {"status": "ok"})

    return mcp


def may_see_health_details(request: Request) -> bool:
    """An ``admin`` bearer token, or a loopback client no proxy forwarded (an operator on the host)."""
    user = request.scope.get("user")
    if isinstance(user, AuthenticatedUser) and ADMIN_SCOPE in user.scopes:
        return True
    client = request.client
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    return client is not None and is_loopback(client.host) and not forwarded


def _forbid_unknown_arguments(mcp: MCPServer) -> None:
    """A misspelt argument is an error, not silently dropped: ``resource_type=`` for ``resource_types=``
    would otherwise widen a scan to its defaults without telling anyone. The SDK ignores extra
    arguments and offers no switch, so each tool's argument model is tightened here."""
    for tool in mcp._tool_manager.list_tools():
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters["additionalProperties"] = False

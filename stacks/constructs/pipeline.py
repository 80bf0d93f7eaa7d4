"""Pipeline: the Lambda layers, one function per handler, the audit state machine (its scan a
Distributed Map over a plan in the pipeline's own S3 bucket), the EventBridge
Scheduler group with the hourly sync schedule (the sync function writes every other schedule, the
daily snapshot included), and the role the schedules assume.

The functions are derived from the code, never listed here: every entry of the ``HANDLERS`` table
of ``services.scanners.handlers`` (and of ``services.scheduler.handlers`` once it exists) becomes a
function, and the state machine's ``${...}`` placeholders are filled from
``services.scanners.definition.FUNCTION_SUBSTITUTIONS`` plus the few non-function values below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Annotations, ArnFormat, CfnOutput, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from services.scanners import definition
from services.scanners.definition import ASL_PATH, FUNCTION_SUBSTITUTIONS, placeholders
from stacks.budget import LAMBDA_POOL_SIZE, SCAN_FUNCTION_KEY, reserved_concurrency
from stacks.config import DATABASE_NAME, DATABASE_PORT, DATABASE_USER, AppConfig
from stacks.permissions import (
    STATE_MACHINE_EXECUTION_ACTIONS,
    STATE_MACHINE_START_ACTIONS,
    pipeline_read_actions,
)
from tagcompliance.audits.distributed import PLAN_PREFIX
from tagcompliance.audits.ledger import DEFAULT_TTL_DAYS

from .data import Data
from .foundation import Foundation
from .log_groups import log_group
from .network import allow_ingress

ROOT = Path(__file__).resolve().parents[2]
# Non-function placeholders declared by definition.py (absent in older versions of it).
NON_FUNCTION_SUBSTITUTIONS: dict[str, str] = getattr(definition, "NON_FUNCTION_SUBSTITUTIONS", {})
SCHEDULER_MODULE = "services.scheduler.handlers"
HANDLER_MODULES = ("services.scanners.handlers", SCHEDULER_MODULE)
RUNTIME = lambda_.Runtime.PYTHON_3_12  # `make lambda-deps` builds wheels for this version (tested)
# Lambda's maximum: a child execution is STANDARD (no 5-minute ceiling), so a large account-region
# batch may take this long; the other steps keep FUNCTION_TIMEOUT.
SCAN_BATCH_TIMEOUT = Duration.minutes(15)
FUNCTION_TIMEOUT = Duration.minutes(5)
RESULTS_PREFIX = "results/"  # the Map's ResultWriter (the ASL's ResultWriter Prefix)
# Optional wiring of services.scheduler handlers, by their HANDLERS key.
SYNC_SCHEDULES_KEY = "sync-schedules"  # hourly: EventBridge schedules follow the scheduled_audits table
RECORD_RUN_KEY = "record-scheduled-run"  # every finished execution (EventBridge rule)
SYNC_SCHEDULES_RATE = "rate(1 hour)"
# Function code: the handler packages and the policy file; everything else of the repository is
# left out (gitignore syntax: exclude all, then re-include).
FUNCTION_CODE_EXCLUDE = [
    "/*",
    "!/services/",
    "/services/*",
    "!/services/__init__.py",
    "!/services/lambda_runtime.py",
    "!/services/scanners/",
    "!/services/scheduler/",
    "!/policies/",
    "__pycache__/",
    "*.pyc",
    "*.md",
]


@dataclass(frozen=True)
class HandlerSpec:
    """One Lambda: its key in a HANDLERS table and its Lambda handler string."""

    key: str
    module: str
    attribute: str

    @property
    def handler(self) -> str:
        return f"{self.module}.{self.attribute}"

    @property
    def construct_id(self) -> str:
        return "".join(part.capitalize() for part in self.key.replace("_", "-").split("-")) + "Function"


def discover_handlers(modules: tuple[str, ...] = HANDLER_MODULES) -> list[HandlerSpec]:
    """Every handler of every HANDLERS table (a module not written yet contributes nothing)."""
    specs: dict[str, HandlerSpec] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue  # the module (or its package) does not exist yet
            raise
        table = getattr(module, "HANDLERS", None)
        if not isinstance(table, dict):
            raise SystemExit(f"{module_name} has no HANDLERS dict: cannot derive its Lambda functions")
        for key, function in table.items():
            names = [
                name for name, value in vars(module).items() if value is function and not name.startswith("_")
            ]
            if not names:
                raise SystemExit(f"{module_name}.HANDLERS[{key!r}] is not a module-level function")
            if key in specs:
                raise SystemExit(f"handler key {key!r} is defined by {specs[key].module} and {module_name}")
            specs[key] = HandlerSpec(key=key, module=module_name, attribute=sorted(names)[0])
    return list(specs.values())


class Pipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, base: Foundation, *, data: Data) -> None:
        super().__init__(scope, construct_id)
        config, network, secrets = base.config, base.network, base.secrets
        env = config.env
        stack = Stack.of(self)
        # The state machine's ARN from its name: the functions (which the definition references)
        # get it in their environment without a circular reference.
        self.state_machine_name = f"{config.prefix}-compliance-audit"
        self.state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.execution_arns = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.security_group = ec2.SecurityGroup(
            self, "FunctionSecurityGroup", vpc=network.vpc, description="Audit pipeline Lambdas"
        )
        allow_ingress(
            self,
            "DatabaseFromFunctions",
            target=data.lambda_security_group,
            source=self.security_group,
            port=DATABASE_PORT,
            description="audit Lambdas to PostgreSQL (through RDS Proxy where there is one)",
        )

        # --- layers ---------------------------------------------------------------------------
        self.common_layer = lambda_.LayerVersion(
            self,
            "CommonLayer",
            code=lambda_.Code.from_asset(
                str(ROOT / "layers" / "common"), exclude=["**/__pycache__", "*.pyc"]
            ),
            compatible_runtimes=[RUNTIME],
            description="tagcompliance: the domain core shared by the gateway and the Lambdas",
        )
        self.dependencies_layer = lambda_.LayerVersion(
            self,
            "DependenciesLayer",
            code=lambda_.Code.from_asset(str(self._dependencies_dir(config))),
            compatible_runtimes=[RUNTIME],
            description="Third-party packages of requirements.txt (make lambda-deps)",
        )

        # --- EventBridge Scheduler: group and the role schedules assume ---------------------------
        self.schedule_group = scheduler.CfnScheduleGroup(
            self, "ScheduleGroup", name=config.scheduler_group_name
        )
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="Assumed by EventBridge Scheduler to start the compliance audit state machine",
        )
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(
                sid="StartAudits",
                actions=list(STATE_MACHINE_START_ACTIONS),
                resources=[self.state_machine_arn],
            )
        )

        # --- the plan bucket: each run's plan (the Map's ItemReader) and the Map's result manifests ---
        self.plan_bucket = s3.Bucket(
            self,
            "PlanBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # A plan is read while its run lasts (2 hours at most); keep them as long as the ledger.
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(DEFAULT_TTL_DAYS))],
            # Retained: emptying it on delete takes a custom-resource Lambda in this stack, whose
            # functions are all audit steps; its objects expire on their own, so a deleted
            # environment leaves an empty bucket behind.
            removal_policy=RemovalPolicy.RETAIN,
        )

        # --- functions ------------------------------------------------------------------------
        self.handlers = discover_handlers()
        # One role per handler module: the state machine's steps scan and read; the scheduler's
        # handlers start runs and manage schedules.
        self.role = self._function_role("FunctionRole", "Audit steps: read-only scans, ledger, database")
        secrets.database.grant_read(self.role)
        self._grant_scanning(self.role, config, stack, data)
        self.scheduler_functions_role: iam.Role | None = None
        if any(spec.module == SCHEDULER_MODULE for spec in self.handlers):
            self.scheduler_functions_role = self._function_role(
                "SchedulerFunctionRole", "Scheduler handlers: manage the schedule group, database"
            )
            secrets.database.grant_read(self.scheduler_functions_role)
            self.grant_schedule_management(self.scheduler_functions_role, config, stack)

        environment = {
            "AUDIT_LEDGER_TABLE": data.ledger.table_name,
            "DATABASE_URL": (
                f"postgresql://{DATABASE_USER}@{data.lambda_database_host}:{DATABASE_PORT}/{DATABASE_NAME}"
                "?sslmode=require"
            ),
            "DATABASE_POOL_SIZE": str(LAMBDA_POOL_SIZE),
            # Settings read the password from it at cold start: none in the function's configuration.
            "DATABASE_PASSWORD_SECRET_ARN": secrets.database.secret_arn,
            "POLICY_PATH": "/var/task/policies/tagging_policy.json",
            "DATA_DIR": "/tmp/tag-compliance",
            "SCAN_REGIONS": ",".join(env.scan_regions),
            "AUTO_IMPORT_AWS_POLICY": "false",
            "LOCAL_SCHEDULER_INTERVAL_SECONDS": "0",
            "STATE_MACHINE_ARN": self.state_machine_arn,
            "SCHEDULER_ROLE_ARN": self.scheduler_role.role_arn,
            "SCHEDULER_GROUP": config.scheduler_group_name,
            "DAILY_SNAPSHOT_TIME": env.daily_snapshot_time,
            "AUDIT_ROLE_NAME": config.audit_role_name,
            "AUDIT_PLAN_BUCKET": self.plan_bucket.bucket_name,
            # Child executions at once = the scan function's reserved concurrency: more would only
            # wait on Lambda throttling.
            "AUDIT_MAX_CONCURRENCY": str(reserved_concurrency(config, SCAN_FUNCTION_KEY)),
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # The Lambdas always write JSON (Powertools); these keep the one schema's fields equal.
            "LOG_FORMAT": "json",
            "ENVIRONMENT_NAME": config.env_name,
        }
        if env.notify_email_sender:
            environment["NOTIFY_EMAIL_SENDER"] = env.notify_email_sender
        if config.aws_endpoint_url:
            environment["AWS_ENDPOINT_URL"] = config.aws_endpoint_url
        code = lambda_.Code.from_asset(str(ROOT), exclude=FUNCTION_CODE_EXCLUDE, ignore_mode=IgnoreMode.GIT)

        self.functions: dict[str, lambda_.Function] = {}
        for spec in self.handlers:
            self.functions[spec.key] = lambda_.Function(
                self,
                spec.construct_id,
                runtime=RUNTIME,
                architecture=lambda_.Architecture.X86_64,
                handler=spec.handler,
                code=code,
                layers=[self.dependencies_layer, self.common_layer],
                role=self.role_for(spec),
                vpc=network.vpc,
                vpc_subnets=network.app_subnets,
                security_groups=[self.security_group],
                memory_size=1024,
                timeout=SCAN_BATCH_TIMEOUT if spec.key == SCAN_FUNCTION_KEY else FUNCTION_TIMEOUT,
                tracing=lambda_.Tracing.ACTIVE,
                environment=environment,
                log_group=log_group(self, f"{spec.construct_id}Logs", config),
                # Bounded, so its PostgreSQL connections are (stacks/budget.py).
                reserved_concurrent_executions=reserved_concurrency(config, spec.key),
                description=f"tag-compliance {spec.key}: {spec.handler}",
            )

        # --- state machine --------------------------------------------------------------------
        self.state_machine_logs = log_group(
            self, "StateMachineLogs", config, name=f"/aws/vendedlogs/states/{self.state_machine_name}"
        )
        self.state_machine = sfn.StateMachine(
            self,
            "ComplianceAudit",
            state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_PATH)),
            definition_substitutions=self._substitutions(config, data),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            timeout=Duration.hours(2),
            logs=sfn.LogOptions(
                destination=self.state_machine_logs, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        for key in sorted(set(FUNCTION_SUBSTITUTIONS.values())):  # sorted: the same template every synth
            self.functions[key].grant_invoke(self.state_machine.role)
        self._grant_distributed_map()

        # --- schedules --------------------------------------------------------------------------
        # The daily snapshot schedule has one owner, the sync function (reconcile_schedules writes it
        # at DAILY_SNAPSHOT_TIME): CloudFormation does not define it, so the two cannot disagree.
        self.sync_schedule: scheduler.CfnSchedule | None = None
        if SYNC_SCHEDULES_KEY in self.functions:
            sync = self.functions[SYNC_SCHEDULES_KEY]
            sync.grant_invoke(self.scheduler_role)
            self.sync_schedule = scheduler.CfnSchedule(
                self,
                "SyncSchedules",
                name="sync-schedules",
                group_name=config.scheduler_group_name,
                description="Bring EventBridge schedules in line with the scheduled_audits table",
                schedule_expression=SYNC_SCHEDULES_RATE,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=sync.function_arn, role_arn=self.scheduler_role.role_arn, input="{}"
                ),
            )
            self.sync_schedule.node.add_dependency(self.schedule_group)
        # The deploy workflow runs a small audit and the first schedule sync with these.
        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        if SYNC_SCHEDULES_KEY in self.functions:
            sync_name = self.functions[SYNC_SCHEDULES_KEY].function_name
            CfnOutput(self, "SyncSchedulesFunctionName", value=sync_name)
        self.run_finished_rule: events.Rule | None = None
        if RECORD_RUN_KEY in self.functions:
            self.run_finished_rule = events.Rule(
                self,
                "AuditFinished",
                description="A compliance audit execution ended: record the scheduled run",
                event_pattern=events.EventPattern(
                    source=["aws.states"],
                    detail_type=["Step Functions Execution Status Change"],
                    detail={
                        "stateMachineArn": [self.state_machine.state_machine_arn],
                        "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
                    },
                ),
                targets=[targets.LambdaFunction(self.functions[RECORD_RUN_KEY], retry_attempts=2)],
            )

    def _grant_distributed_map(self) -> None:
        """What the Distributed Map needs: start its child executions (of this state machine), follow
        and stop them, read the plan (ItemReader) and write its results (ResultWriter)."""
        role = self.state_machine.role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="StartChildExecutions",
                actions=["states:StartExecution"],
                resources=[self.state_machine_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FollowChildExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                # Child executions are named <state machine>/<map run label>:<execution>.
                resources=[f"{self.execution_arns.removesuffix(':*')}/*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadPlans",
                actions=["s3:GetObject"],
                resources=[self.plan_bucket.arn_for_objects(f"{PLAN_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteMapResults",
                actions=[
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                resources=[self.plan_bucket.arn_for_objects(f"{RESULTS_PREFIX}*")],
            )
        )

    def role_for(self, spec: HandlerSpec) -> iam.Role:
        if spec.module == SCHEDULER_MODULE and self.scheduler_functions_role is not None:
            return self.scheduler_functions_role
        return self.role

    def _function_role(self, construct_id: str, description: str) -> iam.Role:
        return iam.Role(
            self,
            construct_id,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            ],
        )

    def _grant_scanning(self, role: iam.Role, config: AppConfig, stack: Stack, data: Data) -> None:
        """The state machine's steps: read-only scans, drift attribution, policy import, member
        accounts, the shard ledger, and notifications (SES from the configured sender only)."""
        role.add_to_policy(
            iam.PolicyStatement(sid="ReadOnlyScan", actions=list(pipeline_read_actions()), resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeAuditRoles",
                actions=["sts:AssumeRole"],
                resources=[f"arn:{stack.partition}:iam::*:role/{config.audit_role_name}"],
            )
        )
        data.ledger.grant_read_write_data(role)
        # The plan step writes each run's plan (only under plans/: the Map's results are not its own).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WritePlans",
                actions=["s3:PutObject"],
                resources=[self.plan_bucket.arn_for_objects(f"{PLAN_PREFIX}*")],
            )
        )
        sender = config.env.notify_email_sender
        if sender:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="SendNotifications",
                    actions=["ses:SendEmail"],
                    resources=[stack.format_arn(service="ses", resource="identity", resource_name="*")],
                    conditions={"StringEquals": {"ses:FromAddress": sender}},
                )
            )

    def grant_start_and_schedule_audits(self, role: iam.IRole, config: AppConfig, stack: Stack) -> None:
        """Start and follow runs of the state machine, and manage the schedule group (the gateway)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="StartAudits",
                actions=list(STATE_MACHINE_START_ACTIONS),
                resources=[self.state_machine_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FollowAudits",
                actions=list(STATE_MACHINE_EXECUTION_ACTIONS),
                resources=[self.execution_arns],
            )
        )
        self.grant_schedule_management(role, config, stack)

    def grant_schedule_management(self, role: iam.IRole, config: AppConfig, stack: Stack) -> None:
        """Manage the schedule group's schedules and pass the scheduler role to EventBridge Scheduler
        (the gateway and the sync function)."""
        group = config.scheduler_group_name
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManageScheduleGroup",
                actions=["scheduler:*"],
                resources=[
                    stack.format_arn(service="scheduler", resource="schedule-group", resource_name=group),
                    stack.format_arn(service="scheduler", resource="schedule", resource_name=f"{group}/*"),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassSchedulerRole",
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )

    def _dependencies_dir(self, config: AppConfig) -> Path:
        path = (ROOT / config.lambda_deps_dir).resolve()
        if (path / "python").is_dir():
            return path
        message = (
            f"{config.lambda_deps_dir}/python is missing: the Lambdas' third-party packages are not built "
            "(run `make lambda-deps` before `cdk deploy`); synthesizing with an empty dependencies layer"
        )
        if config.require_lambda_deps:
            Annotations.of(self).add_error(message)
        else:
            Annotations.of(self).add_warning_v2("tagcompliance:lambda-deps-missing", message)
        return ROOT / "stacks" / "lambda_deps_placeholder"

    def _substitutions(self, config: AppConfig, data: Data) -> dict[str, str]:
        """Every placeholder of the ASL mapped to a value; an unknown placeholder stops the synth."""
        values = {
            placeholder: self._function_for(placeholder, key).function_arn
            for placeholder, key in FUNCTION_SUBSTITUTIONS.items()
        }
        # Values this app can give the non-function placeholders definition.py may declare.
        providers = {
            "LedgerTableName": data.ledger.table_name,
            "PlanBucketName": self.plan_bucket.bucket_name,
            "ScheduleGroupName": config.scheduler_group_name,
        }
        for name in NON_FUNCTION_SUBSTITUTIONS:
            if name not in providers:
                raise SystemExit(
                    f"services.scanners.definition.NON_FUNCTION_SUBSTITUTIONS declares {name!r}, which the "
                    "CDK app cannot fill: give it a value in Pipeline._substitutions"
                )
            values[name] = providers[name]
        unknown = placeholders() - values.keys()
        if unknown:
            raise SystemExit(
                f"{ASL_PATH.name} uses placeholders the CDK app cannot fill: {sorted(unknown)}. Map each "
                "to a handler in services.scanners.definition.FUNCTION_SUBSTITUTIONS (or declare it in "
                "NON_FUNCTION_SUBSTITUTIONS and give it a value in stacks/constructs/pipeline.py)"
            )
        return values

    def _function_for(self, placeholder: str, key: str) -> lambda_.Function:
        if key not in self.functions:
            raise SystemExit(
                f"state machine placeholder {placeholder} names handler {key!r}, which no HANDLERS table "
                f"({', '.join(HANDLER_MODULES)}) defines"
            )
        return self.functions[key]

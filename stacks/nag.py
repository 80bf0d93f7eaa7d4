"""cdk-nag AwsSolutions suppressions. Each names the rule, the resource (and, for IAM5, the exact
wildcard it accepts) and the reason it is acceptable here; nothing is suppressed stack-wide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

from stacks.permissions import tag_write_grants

if TYPE_CHECKING:
    from stacks.stacks import Deployment

SINGLE_AZ_REASON = (
    "{env} runs single-AZ to keep its cost down (cdk.json multi_az=false); prod is Multi-AZ and "
    "this suppression is not applied there"
)


def _suppress(construct: IConstruct, rules: list[tuple[str, str]], children: bool = False) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule, reason=reason) for rule, reason in rules],
        apply_to_children=children,
    )


def _suppress_wildcards(construct: IConstruct, rule_reasons: list[tuple[str, list[str], str]]) -> None:
    """IAM5 suppressions limited to the listed findings (``Resource::...`` / ``Action::...``)."""
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(id=rule, reason=reason, applies_to=applies_to)
            for rule, applies_to, reason in rule_reasons
        ],
        apply_to_children=True,
    )


def suppress(deployment: Deployment) -> None:
    config = deployment.config
    env = config.env
    single_az = SINGLE_AZ_REASON.format(env=config.env_name)
    pipeline = deployment.pipeline
    gateway = deployment.gateway

    # --- data ---------------------------------------------------------------------------------
    for secret in deployment.secrets.all:
        _suppress(
            secret,
            [
                (
                    "AwsSolutions-SMG4",
                    "Rotated by redeploying (stacks/README.md 'Secrets'): the gateway reads these values "
                    "at task start (ECS secrets), so an automatic rotation would break running tasks until "
                    "they restart",
                )
            ],
        )
    database_rules = [
        (
            "AwsSolutions-RDS11",
            "PostgreSQL keeps its default port: RDS Proxy (the Lambdas' path) always listens on 5432, "
            "and the instance sits in isolated subnets reachable only from the gateway and proxy "
            "security groups",
        )
    ]
    if not env.multi_az:
        database_rules.append(("AwsSolutions-RDS3", single_az))
    if not env.deletion_protection:
        database_rules.append(
            (
                "AwsSolutions-RDS10",
                f"{config.env_name} is disposable (cdk.json deletion_protection=false); prod has deletion "
                "protection and this suppression is not applied there",
            )
        )
    _suppress(deployment.data.database, database_rules, children=True)
    if not env.multi_az:
        _suppress(deployment.data.redis, [("AwsSolutions-AEC4", single_az)])

    # --- pipeline -------------------------------------------------------------------------------
    for function in pipeline.functions.values():
        _suppress(
            function,
            [
                (
                    "AwsSolutions-L1",
                    "Pinned to python3.12 (stacks/constructs/pipeline.py RUNTIME): the dependencies layer is "
                    "built for exactly that interpreter (make lambda-deps); moving to a newer runtime is a "
                    "deliberate upgrade together with a rebuilt layer",
                )
            ],
            children=True,
        )
    function_roles = [role for role in (pipeline.role, pipeline.scheduler_functions_role) if role is not None]
    for role in function_roles:
        _suppress(
            role,
            [
                (
                    "AwsSolutions-IAM4",
                    "AWSLambdaVPCAccessExecutionRole is the AWS-maintained minimum for a Lambda in a VPC "
                    "(ENIs, logs)",
                )
            ],
        )
        if env.notify_email_sender:
            _suppress_wildcards(
                role,
                [
                    (
                        "AwsSolutions-IAM5",
                        [f"Resource::arn:<AWS::Partition>:ses:{config.region}:<AWS::AccountId>:identity/*"],
                        "SES identities may be any verified one; the ses:FromAddress condition pins "
                        "the sender",
                    )
                ],
            )
    state_machine_arn_pattern = (
        f"Resource::arn:<AWS::Partition>:states:{config.region}:<AWS::AccountId>:execution:"
        f"{pipeline.state_machine_name}:*"
    )
    schedules_pattern = (
        f"Resource::arn:<AWS::Partition>:scheduler:{config.region}:<AWS::AccountId>:schedule/"
        f"{config.scheduler_group_name}/*"
    )
    _suppress_wildcards(
        pipeline.role,
        [
            (
                "AwsSolutions-IAM5",
                ["Resource::*"],
                "Read-only scanning: the List/Describe/tag-read actions (derived from the resource "
                "registry in stacks/permissions.py), Organizations and CloudTrail reads act on every "
                "resource of the account and support no resource-level scoping",
            ),
            (
                "AwsSolutions-IAM5",
                [f"Resource::arn:<AWS::Partition>:iam::*:role/{config.audit_role_name}"],
                "Audits of member accounts assume this one named role in each of them; the account ids are "
                "runtime configuration (AUDIT_ACCOUNTS / Organizations)",
            ),
        ],
    )
    if pipeline.scheduler_functions_role is not None:
        _suppress_wildcards(
            pipeline.scheduler_functions_role,
            [
                (
                    "AwsSolutions-IAM5",
                    ["Resource::*"],
                    "X-Ray tracing (PutTraceSegments, PutTelemetryRecords) accepts no resource scoping",
                ),
                (
                    "AwsSolutions-IAM5",
                    ["Action::scheduler:*", schedules_pattern],
                    "sync-schedules manages the schedules of the product's own schedule group only",
                ),
            ],
        )
    plan_bucket = f"<{_logical_id(deployment, pipeline.plan_bucket)}.Arn>"
    _suppress(
        pipeline.plan_bucket,
        [
            (
                "AwsSolutions-S1",
                "Holds only the pipeline's own run plans and Distributed Map result manifests, written "
                "and read by its own roles; the state machine's logs and the ledger record every run",
            )
        ],
    )
    _suppress_wildcards(
        pipeline.role,
        [
            (
                "AwsSolutions-IAM5",
                [f"Resource::{plan_bucket}/plans/*"],
                "The plan step writes one object per run (plans/<run id>.json) under the plans/ prefix "
                "of the pipeline's own bucket: run ids are only known at run time",
            )
        ],
    )
    _suppress_wildcards(
        pipeline.state_machine,
        [
            (
                "AwsSolutions-IAM5",
                ["Resource::*"],
                "X-Ray tracing and CloudWatch Logs delivery actions accept no resource scoping",
            ),
            (
                "AwsSolutions-IAM5",
                [
                    f"Resource::arn:<AWS::Partition>:states:{config.region}:<AWS::AccountId>:execution:"
                    f"{pipeline.state_machine_name}/*"
                ],
                "The Distributed Map describes and stops its own child executions, named "
                "<state machine>/<map run>:<execution> at run time (Step Functions' documented policy)",
            ),
            (
                "AwsSolutions-IAM5",
                [f"Resource::{plan_bucket}/plans/*", f"Resource::{plan_bucket}/results/*"],
                "The Distributed Map reads each run's plan (ItemReader) and writes its results "
                "(ResultWriter) under two prefixes of the pipeline's own bucket; keys hold run ids",
            ),
            (
                "AwsSolutions-IAM5",
                [
                    f"Resource::<{_logical_id(deployment, function)}.Arn>:*"
                    for function in pipeline.functions.values()
                ],
                "lambda:InvokeFunction on the versions/aliases of the pipeline's own functions (CDK grant)",
            ),
        ],
    )
    _suppress_wildcards(
        pipeline.scheduler_role,
        [
            (
                "AwsSolutions-IAM5",
                [
                    f"Resource::<{_logical_id(deployment, function)}.Arn>:*"
                    for function in pipeline.functions.values()
                ],
                "lambda:InvokeFunction on the versions/aliases of the sync function the schedule targets",
            )
        ],
    )

    # --- gateway --------------------------------------------------------------------------------
    _suppress(
        gateway.access_logs,
        [("AwsSolutions-S1", "This is the access-log bucket itself; logging it to itself would loop")],
    )
    _suppress(
        gateway.alb_security_group,
        [
            (
                "AwsSolutions-EC23",
                "The public MCP endpoint: HTTPS (and HTTP, redirected to HTTPS) from anywhere is its "
                "purpose; OAuth bearer tokens guard every MCP request",
            )
        ],
    )
    _suppress(
        gateway.task_definition,
        [
            (
                "AwsSolutions-ECS2",
                "The environment holds configuration only (endpoints, ARNs, names); the secrets (database "
                "password, Redis AUTH token) come from Secrets Manager through the container's secrets",
            )
        ],
    )
    if env.remediation_enabled:
        patterns = ["Resource::*"] + [
            f"Resource::{pattern}"
            for _, resources in tag_write_grants("<AWS::Partition>", "<AWS::AccountId>")
            for pattern in resources
        ]
        _suppress_wildcards(
            gateway.task_role,
            [
                (
                    "AwsSolutions-IAM5",
                    patterns,
                    "apply_tag_remediation writes tags on any resource of a registry type the user names "
                    "(each write confirmed, journaled and undoable): scoped to those types' ARN patterns in "
                    "this account; tag:TagResources / UntagResources themselves take no resource scope",
                ),
                (
                    "AwsSolutions-IAM5",
                    [f"Resource::arn:<AWS::Partition>:iam::*:role/{config.remediation_role_name}"],
                    "Remediations in member accounts assume this one named role (tag reads and writes only) "
                    "in each of them; the account ids are the ARNs' the user confirmed",
                ),
            ],
        )
    _suppress_wildcards(
        gateway.task_role,
        [
            (
                "AwsSolutions-IAM5",
                ["Resource::*"],
                "The spec's read-only task role: List/Describe/tag reads derived from the resource registry, "
                "Cost Explorer, Organizations and CloudTrail reads, and the X-Ray daemon's trace uploads, "
                "which support no resource-level scoping",
            ),
            (
                "AwsSolutions-IAM5",
                [state_machine_arn_pattern],
                "DescribeExecution on the executions of the audit state machine only (names are run ids)",
            ),
            (
                "AwsSolutions-IAM5",
                [f"Resource::arn:<AWS::Partition>:iam::*:role/{config.audit_role_name}"],
                "Questions about member accounts assume this one named role in each of them; the account "
                "ids are runtime configuration (AUDIT_ACCOUNTS / Organizations / the accounts argument)",
            ),
            (
                "AwsSolutions-IAM5",
                ["Action::scheduler:*", schedules_pattern],
                "schedule_compliance_audit manages schedules in the product's own schedule group only",
            ),
        ],
    )
    _suppress_wildcards(
        gateway.load_balancer_role,
        [
            (
                "AwsSolutions-IAM4",
                [
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
                ],
                "The infrastructure role ECS blue/green deployments require (ECS guide): AWS keeps this "
                "policy in step with the actions the deployment controller calls on target groups and "
                "listener rules; only ecs.amazonaws.com can assume the role",
            )
        ],
    )
    _suppress_wildcards(
        gateway.task_definition.obtain_execution_role(),
        [
            (
                "AwsSolutions-IAM5",
                ["Resource::*"],
                "ecr:GetAuthorizationToken has no resource scoping (image pulls themselves are "
                "repository-scoped)",
            )
        ],
    )


def _logical_id(deployment: Deployment, construct: IConstruct) -> str:
    """The logical id cdk-nag prints for a construct's resource (cross-stack references included)."""
    from aws_cdk import CfnElement, Stack

    resource = construct.node.default_child
    assert isinstance(resource, CfnElement)
    return Stack.of(resource).get_logical_id(resource)

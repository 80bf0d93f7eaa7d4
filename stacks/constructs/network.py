"""Network: a VPC over three Availability Zones with public, private (tasks, Lambdas) and isolated
(data) subnets, flow logs, the free S3 and DynamoDB gateway endpoints, and the interface endpoints
the environment chooses."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import AppConfig

from .log_groups import log_group

# Interface endpoints an environment may choose (cdk.json interface_endpoints): each keeps one
# service's traffic off the NAT gateways, at about $7 a month per AZ (make cost). Without them the
# same calls leave through NAT, which every environment has.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
}


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig) -> None:
        super().__init__(scope, construct_id)
        env = config.env
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(env.vpc_cidr),
            availability_zones=config.availability_zones[:3],
            nat_gateways=env.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            restrict_default_security_group=True,
        )
        flow_log_group = log_group(self, "FlowLogs", config)
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        # Gateway endpoints are free: S3 (image layers, assets) and DynamoDB (the shard ledger).
        private = [
            ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ]
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=private)
        self.vpc.add_gateway_endpoint(
            "DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=private
        )
        self.endpoint_security_group: ec2.SecurityGroup | None = None
        if env.interface_endpoints:
            self.endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="Interface VPC endpoints: HTTPS from inside the VPC",
                allow_all_outbound=False,
            )
            self.endpoint_security_group.add_ingress_rule(
                ec2.Peer.ipv4(env.vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
            )
        for name in env.interface_endpoints:
            self.vpc.add_interface_endpoint(
                name,
                service=INTERFACE_ENDPOINTS[name],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                security_groups=[self.endpoint_security_group] if self.endpoint_security_group else None,
                private_dns_enabled=True,
                open=False,  # the security group above admits HTTPS from the VPC
            )

    @property
    def app_subnets(self) -> ec2.SubnetSelection:
        """Gateway tasks and Lambdas: private, with NAT egress for the other regions' APIs."""
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

    @property
    def data_subnets(self) -> ec2.SubnetSelection:
        """RDS and ElastiCache: isolated, no route out."""
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)


def allow_ingress(
    scope: Construct,
    construct_id: str,
    *,
    target: ec2.ISecurityGroup,
    source: ec2.ISecurityGroup,
    port: int,
    description: str,
) -> ec2.CfnSecurityGroupIngress:
    """An ingress rule on ``target`` from ``source``, created in ``scope``'s stack (the consumer's).

    ``connections.allow_from`` puts a cross-stack rule in the target's stack, which would make the
    data stack depend on the stacks that use it (a cycle); the consumer owning the rule avoids that.
    """
    return ec2.CfnSecurityGroupIngress(
        scope,
        construct_id,
        group_id=target.security_group_id,
        source_security_group_id=source.security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
    )

"""Network: a VPC over three AZs, private subnets, NAT per environment, endpoints, flow logs."""

from __future__ import annotations

from aws_cdk.assertions import Match

from stacks.constructs.network import INTERFACE_ENDPOINTS

from .conftest import Synthesized


def test_vpc_spans_three_azs_with_public_private_and_isolated_subnets(synth: Synthesized) -> None:
    network = synth.template("network")
    config = synth.deployment.config
    network.resource_count_is("AWS::EC2::VPC", 1)
    network.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": config.env.vpc_cidr})
    subnets = synth.resources("network", "AWS::EC2::Subnet")
    assert len(subnets) == 9  # 3 AZs x (public, private with egress, isolated data)
    azs = {subnet["Properties"]["AvailabilityZone"] for subnet in subnets.values()}
    assert azs == set(config.availability_zones[:3])
    public = [s for s in subnets.values() if s["Properties"]["MapPublicIpOnLaunch"]]
    assert len(public) == 3


def test_nat_gateways_follow_the_environment(synth: Synthesized) -> None:
    synth.template("network").resource_count_is(
        "AWS::EC2::NatGateway", synth.deployment.config.env.nat_gateways
    )


def test_gateway_endpoints_for_s3_and_dynamodb_and_interface_endpoints(synth: Synthesized) -> None:
    endpoints = synth.resources("network", "AWS::EC2::VPCEndpoint")
    gateway = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"
    ]
    interface = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"]
    services = {str(e["Properties"]["ServiceName"]) for e in gateway}
    assert any(".s3" in name for name in services) and any(".dynamodb" in name for name in services)
    assert len(gateway) == 2
    assert len(interface) == len(INTERFACE_ENDPOINTS)
    for endpoint in interface:
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    # Interface endpoints admit HTTPS from the VPC's own range only.
    synth.template("network").has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Interface VPC endpoints"),
            "SecurityGroupIngress": [
                Match.object_like(
                    {"CidrIp": synth.deployment.config.env.vpc_cidr, "FromPort": 443, "ToPort": 443}
                )
            ],
        },
    )


def test_flow_logs_are_on(synth: Synthesized) -> None:
    synth.template("network").has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "LogDestinationType": "cloud-watch-logs"}
    )

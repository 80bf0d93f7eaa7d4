"""Network: a VPC over three AZs, private subnets, NAT per environment, endpoints, flow logs."""

from __future__ import annotations

from stacks.config import INTERFACE_ENDPOINT_NAMES
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


def test_free_gateway_endpoints_and_the_chosen_interface_endpoints(synth: Synthesized) -> None:
    endpoints = synth.resources("network", "AWS::EC2::VPCEndpoint")
    gateway = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"
    ]
    interface = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"]
    services = {str(e["Properties"]["ServiceName"]) for e in gateway}
    assert any(".s3" in name for name in services) and any(".dynamodb" in name for name in services)
    assert len(gateway) == 2
    assert len(interface) == len(synth.deployment.config.env.interface_endpoints)


def test_every_interface_endpoint_name_cdk_json_accepts_maps_to_a_service() -> None:
    assert sorted(INTERFACE_ENDPOINTS) == sorted(INTERFACE_ENDPOINT_NAMES)


def test_flow_logs_are_on(synth: Synthesized) -> None:
    synth.template("network").has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "LogDestinationType": "cloud-watch-logs"}
    )

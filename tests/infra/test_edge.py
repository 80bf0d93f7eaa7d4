"""The edge: WAF on the load balancer (staging, prod), deletion protection in prod, and, in one extra
synthesis of staging with a hosted zone, Slack alarms and two interface endpoints, the Route 53
alias, the AWS Chatbot channel and the endpoints, all cdk-nag clean."""

from __future__ import annotations

import json

import pytest

from stacks.config import cdk_json_context
from stacks.constructs.gateway import WAF_MANAGED_RULE_GROUPS

from .conftest import Synthesized, synthesize
from .test_variants import _errors

ZONE_ID = "Z0123456789ABCDEFGHIJ"
ZONE_NAME = "finops.example.com"
SLACK = {"alarm_slack_workspace_id": "T0123ABCD", "alarm_slack_channel_id": "C0456EFGH"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    environments = cdk_json_context()["environments"]
    staging = {
        **environments["staging"],
        "hosted_zone_id": ZONE_ID,
        "hosted_zone_name": ZONE_NAME,
        "interface_endpoints": ["SecretsManager", "Logs"],
        **SLACK,
    }
    return synthesize(
        "staging", tmp_path_factory.mktemp("cdk-edge"), environments={**environments, "staging": staging}
    )


def test_waf_guards_the_load_balancer_in_staging_and_prod(synth: Synthesized) -> None:
    acls = synth.resources("gateway", "AWS::WAFv2::WebACL")
    associations = synth.resources("gateway", "AWS::WAFv2::WebACLAssociation")
    if not synth.deployment.config.env.waf:
        assert synth.env == "dev" and not acls and not associations
        return
    ((acl_id, acl),) = acls.items()
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL" and props["DefaultAction"] == {"Allow": {}}
    groups = {
        rule["Statement"]["ManagedRuleGroupStatement"]["Name"]: rule["Statement"]["ManagedRuleGroupStatement"]
        for rule in props["Rules"]
    }
    assert sorted(groups) == sorted(name for name, _ in WAF_MANAGED_RULE_GROUPS)
    assert all(group["VendorName"] == "AWS" for group in groups.values())
    # Large JSON-RPC bodies are counted, not blocked.
    overrides = groups["AWSManagedRulesCommonRuleSet"]["RuleActionOverrides"]
    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    ((_, association),) = associations.items()
    (balancer_id,) = synth.resources("gateway", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["Properties"]["ResourceArn"] == {"Ref": balancer_id}
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}


def test_the_load_balancer_has_deletion_protection_in_prod_only(synth: Synthesized) -> None:
    (balancer,) = synth.resources("gateway", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    expected = "true" if synth.env == "prod" else "false"
    assert attributes.get("deletion_protection.enabled", "false") == expected


def test_no_route53_record_without_a_hosted_zone(synth: Synthesized) -> None:
    assert not synth.resources("gateway", "AWS::Route53::RecordSet")


def test_a_hosted_zone_gets_an_alias_of_the_domain_to_the_load_balancer(edge: Synthesized) -> None:
    ((_, record),) = edge.resources("gateway", "AWS::Route53::RecordSet").items()
    props = record["Properties"]
    assert props["HostedZoneId"] == ZONE_ID and props["Type"] == "A"
    assert props["Name"] == f"{edge.deployment.config.env.domain_name}."
    (balancer_id,) = edge.resources("gateway", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    alias = json.dumps(props["AliasTarget"])
    assert balancer_id in alias and "DNSName" in alias and "CanonicalHostedZoneID" in alias


def test_slack_alarms_go_through_aws_chatbot_read_only(edge: Synthesized) -> None:
    ((_, channel),) = edge.resources("monitoring", "AWS::Chatbot::SlackChannelConfiguration").items()
    props = channel["Properties"]
    assert props["SlackWorkspaceId"] == SLACK["alarm_slack_workspace_id"]
    assert props["SlackChannelId"] == SLACK["alarm_slack_channel_id"]
    (topic_id,) = edge.resources("monitoring", "AWS::SNS::Topic")
    assert props["SnsTopicArns"] == [{"Ref": topic_id}]
    assert "ReadOnlyAccess" in json.dumps(props["GuardrailPolicies"])


def test_chosen_interface_endpoints_only_and_the_variant_is_nag_clean(edge: Synthesized) -> None:
    endpoints = edge.resources("network", "AWS::EC2::VPCEndpoint").values()
    interface = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    names = sorted(json.dumps(e["Properties"]["ServiceName"]) for e in interface)
    assert len(names) == 2 and "secretsmanager" in names[1] and "logs" in names[0]
    assert not [error for error in _errors(edge) if "AwsSolutions" in error]

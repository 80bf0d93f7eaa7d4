"""import_aws_tag_policy and the start-up policy detection, against moto's Organizations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from services.demo.aws import DemoAws
from tag_compliance_mcp.runtime import build_runtime
from tag_compliance_mcp.server import build_server
from tests.conftest import tag_policies_in_organization

from .helpers import call, call_confirmed, call_error, gateway_settings

pytestmark = pytest.mark.anyio

TAG_POLICY = {
    "tags": {
        "costcenter": {
            "tag_key": {"@@assign": "CostCenter"},
            "tag_value": {"@@assign": ["CC-1*", "CC-2001"]},
            "enforced_for": {"@@assign": ["ec2:instance"]},
            "report_required_tag_for": {"@@assign": ["ec2:instance", "rds:ALL_SUPPORTED"]},
        },
        "project": {"tag_key": {"@@assign": "Project"}},
    }
}


@pytest.fixture
def attached_tag_policy(aws_env: DemoAws) -> Iterator[str]:
    documents = [("finance-tags", TAG_POLICY)]
    with tag_policies_in_organization(aws_env.client("organizations"), aws_env.account_id, documents) as (
        ids,
        _,
    ):
        yield ids[0]


async def test_startup_detection_and_import_tool(
    aws_env: DemoAws, attached_tag_policy: str, tmp_path: Path
) -> None:
    policies_dir = tmp_path / "policies"
    policies_dir.mkdir()
    active = policies_dir / "tagging_policy.json"
    runtime = build_runtime(gateway_settings(aws_env, tmp_path, POLICY_PATH=str(active)), "memory")
    try:
        # No policy file at start-up: the tag policy attached to the account was imported and saved.
        assert active.exists()
        assert attached_tag_policy in runtime.health()["policy_detection"]
        async with Client(build_server(runtime)) as client:
            policy = await call(client, "get_tagging_policy")
            [cost_center] = policy["policy"]["required_tags"]
            assert cost_center["name"] == "CostCenter"
            assert cost_center["allowed_values"] == ["CC-1*", "CC-2001"]  # the wildcard kept as a pattern
            assert set(cost_center["applies_to"]) == {"ec2:instance", "rds:db", "rds:cluster"}
            assert cost_center["enforced_for"] == ["ec2:instance"]
            assert [tag["name"] for tag in policy["policy"]["optional_tags"]] == ["Project"]

            listing = await call(client, "import_aws_tag_policy")
            assert attached_tag_policy in {p["id"] for p in listing["available_policies"]} or (
                listing["status"] == "success" and listing["source_policy"]["id"] == attached_tag_policy
            )
            imported = await call_confirmed(
                client,
                "import_aws_tag_policy",
                policy_id=attached_tag_policy,
                save_to_file=True,
                output_path="finance.json",
            )
            assert imported["status"] == "success"
            assert Path(imported["saved_to"]).resolve() == (policies_dir / "finance.json").resolve()
            assert imported["summary"]["required_tags_count"] == 1
            escape = await call_error(
                client,
                "import_aws_tag_policy",
                policy_id=attached_tag_policy,
                save_to_file=True,
                output_path="../outside.json",
            )
            assert "policies directory" in escape or "outside" in escape
            assert not (tmp_path / "outside.json").exists()
            missing = await call_error(client, "import_aws_tag_policy", policy_id="p-00000000")
            assert attached_tag_policy in missing
    finally:
        runtime.close()

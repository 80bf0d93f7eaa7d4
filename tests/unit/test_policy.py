"""Policy loading and validation: errors name the field; the default applies when no file exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagcompliance.errors import PolicyError
from tagcompliance.policy import DEFAULT_POLICY, load_policy, parse_policy

REPO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "tagging_policy.json"


def test_repository_policy_loads() -> None:
    loaded = load_policy(REPO_POLICY)
    assert loaded.source == "file"
    names = [tag.name for tag in loaded.policy.required_tags]
    assert names == ["CostCenter", "Owner", "Environment", "Application"]
    assert loaded.policy.required_for("s3:bucket")[-1].name == "Environment"
    assert [t.name for t in loaded.policy.required_for("rds:db")][-1] == "Application"


def test_missing_file_gives_the_default_policy(tmp_path: Path) -> None:
    loaded = load_policy(tmp_path / "absent.json")
    assert loaded.source == "default"
    assert loaded.policy == DEFAULT_POLICY
    assert [t.name for t in DEFAULT_POLICY.required_tags] == ["CostCenter", "Owner", "Environment"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"required_tags": [{"name": "Owner", "validation_regex": "[unclosed"}]},
            r"required_tags\[0\]\.validation_regex: .*invalid regular expression",
        ),
        (
            {"required_tags": [{"name": "Owner", "applies_to": ["ec2:instance", "ec2:vpc"]}]},
            r"required_tags\[0\]\.applies_to: .*unknown resource type\(s\) 'ec2:vpc'",
        ),
        ({"required_tags": [{"name": ""}]}, r"required_tags\[0\]\.name"),
        ({"required_tags": [{"name": "Owner", "allowed_values": []}]}, r"allowed_values is empty"),
        ({"required_tags": [{"name": "Owner"}, {"name": "Owner"}]}, "declared twice"),
        (
            {"required_tags": [{"name": "Owner"}], "prohibited_tags": ["Owner"]},
            "both required and prohibited",
        ),
        (
            {"required_tags": [{"name": "Owner", "colour": "red"}]},
            r"required_tags\[0\]\.colour: Extra inputs",
        ),
        ({"required_tags": "Owner"}, r"required_tags: "),
    ],
)
def test_invalid_policies_name_the_field(document: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


def test_unreadable_json_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy(path)


def test_digest_changes_with_content(tmp_path: Path) -> None:
    base = json.loads(REPO_POLICY.read_text())
    first = parse_policy(base).digest()
    base["required_tags"][0]["allowed_values"].append("CC-9999")
    assert parse_policy(base).digest() != first

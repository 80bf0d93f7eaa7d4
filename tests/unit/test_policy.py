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


# --- wildcard allowed values, enforced_for, imported_from (AWS tag-policy import) -----------


@pytest.mark.parametrize(
    ("allowed", "value", "expected"),
    [
        (["300*"], "300", True),
        (["300*"], "3001", True),
        (["300*"], "300-abc", True),
        (["300*"], "1300", False),
        (["300*"], "30", False),
        (["*@example.com"], "ana@example.com", True),
        (["*@example.com"], "ana@exampleXcom", False),  # "." is literal, not "any character"
        (["*@example.com"], "ana@example.com.evil", False),  # the whole value must match
        (["a.b*"], "aXb1", False),
        (["(x)*"], "(x)1", True),
        (["(x)*"], "x1", False),  # parentheses are literal, not a group
        (["[ab]*"], "[ab]c", True),
        (["[ab]*"], "ac", False),  # brackets are literal, not a class
        (["a+*"], "aa", False),
        (["a+*"], "a+", True),
        (["^$*"], "^$", True),
        (["a\\d*"], "a\\d9", True),
        (["a\\d*"], "a9", False),
        (["*-prod-*"], "web-prod-01", True),
        (["*"], "anything at all", True),
        (["production", "dev-*"], "production", True),
        (["production", "dev-*"], "dev-42", True),
        (["production", "dev-*"], "prod", False),
        (["production"], "production", True),
        (["production"], "productio", False),
    ],
)
def test_wildcard_allowed_values(allowed: list[str], value: str, expected: bool) -> None:
    tag = parse_policy({"required_tags": [{"name": "T", "allowed_values": allowed}]}).required_tags[0]
    assert tag.value_allowed(value) is expected


def test_allowed_value_matcher_keeps_exact_values_in_a_set() -> None:
    from tagcompliance.policy import allowed_value_matcher

    exact, matches = allowed_value_matcher(["a", "b"])
    assert exact == frozenset({"a", "b"}) and matches is None  # no wildcard: no matcher at all
    exact, matches = allowed_value_matcher(["a", "b*"])
    assert exact == frozenset({"a"}) and matches is not None and matches("bee") and not matches("a")


def test_enforced_for_is_recorded_and_validated() -> None:
    policy = parse_policy(
        {
            "required_tags": [
                {"name": "Owner", "applies_to": ["s3:bucket"], "enforced_for": ["ec2:instance"]}
            ],
            "optional_tags": [{"name": "Project", "enforced_for": ["rds:db"]}],
        }
    )
    assert policy.required_tags[0].enforced_for == ["ec2:instance"]
    assert policy.required_for("ec2:instance") == []  # enforcement does not make a tag required
    with pytest.raises(
        PolicyError, match=r"required_tags\[0\]\.enforced_for: .*unknown resource type\(s\) 'ec2:vpc'"
    ):
        parse_policy({"required_tags": [{"name": "Owner", "enforced_for": ["ec2:vpc"]}]})
    with pytest.raises(PolicyError, match=r"optional_tags\[0\]\.enforced_for"):
        parse_policy({"optional_tags": [{"name": "Owner", "enforced_for": ["nope:nope"]}]})


def test_digest_is_unchanged_for_policies_without_the_new_fields() -> None:
    # The value computed before enforced_for and imported_from existed: caches and snapshots keep matching.
    assert DEFAULT_POLICY.digest() == "1922730979a57a0c"
    data = DEFAULT_POLICY.model_dump(mode="json")
    with_origin = parse_policy({**data, "imported_from": {"policy_id": "p-12345678", "name": "tags"}})
    assert with_origin.digest() == DEFAULT_POLICY.digest()  # provenance is not content
    data["required_tags"][0]["enforced_for"] = ["ec2:instance"]
    assert parse_policy(data).digest() != DEFAULT_POLICY.digest()


def test_imported_policy_round_trips_and_says_where_it_came_from(tmp_path: Path) -> None:
    document = {
        "required_tags": [
            {"name": "CostCenter", "allowed_values": ["100", "300*"], "enforced_for": ["s3:bucket"]}
        ],
        "imported_from": {"kind": "aws_tag_policy", "policy_id": "p-12345678", "name": "org-tags"},
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    loaded = load_policy(path)
    assert loaded.policy == parse_policy(document)
    assert loaded.description.endswith("(imported from AWS Organizations tag policy p-12345678 'org-tags')")
    with pytest.raises(PolicyError, match=r"imported_from\.kind"):
        parse_policy({"imported_from": {"kind": "somewhere"}})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("a*a", "a", False),  # head and tail may not overlap
        ("a*a", "aa", True),
        ("a*a", "aba", True),
        ("*ab*ab", "abab", True),
        ("*ab*ab", "abXab", True),
        ("*ab*ab", "ab", False),
        ("*a*b*", "ba", False),
        ("*a*b*", "xaybz", True),
        ("x**y", "xy", True),
        ("x**y", "x-y", True),
        ("**", "", True),
    ],
)
def test_wildcard_edge_cases(pattern: str, value: str, expected: bool) -> None:
    from tagcompliance.policy import allowed_value_matcher

    _, matches = allowed_value_matcher([pattern])
    assert matches is not None and matches(value) is expected


def test_many_wildcards_match_in_linear_time() -> None:
    import time

    tag = parse_policy(
        {"required_tags": [{"name": "T", "allowed_values": ["*a" * 12 + "*b"]}]}
    ).required_tags[0]
    started = time.perf_counter()
    assert tag.value_allowed("a" * 256) is False  # a backtracking regular expression would take minutes
    assert tag.value_allowed("a" * 255 + "b") is True
    assert time.perf_counter() - started < 0.5

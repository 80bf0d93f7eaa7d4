"""AWS tag policy import: conversion, saving inside the policies directory, the import tool and
start-up detection, against an in-memory TagPolicySource (moto lacks DescribeEffectivePolicy)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tagcompliance import policy_import
from tagcompliance.compliance import Resource, compile_policy, evaluate
from tagcompliance.errors import InvalidInputError, PolicyError
from tagcompliance.policy import DEFAULT_POLICY, load_policy
from tagcompliance.policy_import import (
    DETECTION_ACTIONS,
    EffectivePolicyNotFoundError,
    OrganizationsNotInUseError,
    TagPolicyAccessDeniedError,
    TagPolicyNotFoundError,
    TagPolicySummary,
    convert_tag_policy,
    detect_policy_at_startup,
    import_tag_policy,
    resolve_output_path,
    write_policy_file,
)
from tagcompliance.resources import REGISTRY, RESOURCE_TYPE_IDS

EC2_TYPES = [type_id for type_id in RESOURCE_TYPE_IDS if type_id.startswith("ec2:")]

# A realistic tag policy as AWS stores it: every construct the converter must account for.
AWS_POLICY: dict[str, Any] = {
    "tags": {
        "@@operators_allowed_for_child_policies": ["@@none"],
        "costcenter": {
            "tag_key": {"@@assign": "CostCenter", "@@operators_allowed_for_child_policies": ["@@none"]},
            "tag_value": {
                "@@assign": ["100", "200", "300*"],
                "@@operators_allowed_for_child_policies": ["@@append"],
            },
            "enforced_for": {"@@assign": ["secretsmanager:ALL_SUPPORTED", "ec2:instance"]},
            "report_required_tag_for": {
                "@@assign": ["ec2:ALL_SUPPORTED", "rds:db", "s3:bucket", "athena:workgroup"]
            },
        },
        "environment": {
            "tag_key": {"@@assign": "Environment"},
            "tag_value": {"@@assign": ["Prod", "Dev"], "@@append": ["Staging"], "@@remove": ["Dev"]},
            "report_required_tag_for": {"@@assign": ["lambda:function", "es:ALL_SUPPORTED"]},
        },
        "owner": {
            "tag_key": {"@@assign": "Owner"},
            "tag_value": {"@@assign": ["*@example.com"]},
            "report_required_tag_for": {"@@assign": ["ec2:instance"]},
        },
        "project": {
            "tag_key": {"@@assign": "Project"},
            "enforced_for": {"@@assign": ["dynamodb:*"]},
        },
        "dataclassification": {
            "tag_key": {"@@assign": "DataClassification"},
            "tag_value": {"@@assign": ["public", "internal", "confidential"]},
        },
        "team": {
            "tag_key": {"@@assign": "Team"},
            "report_required_tag_for": {"@@assign": ["athena:workgroup", "quicksight:ALL_SUPPORTED"]},
        },
    }
}


def by_name(tags) -> dict[str, Any]:
    return {tag.name: tag for tag in tags}


def test_conversion_maps_every_field() -> None:
    result = convert_tag_policy(AWS_POLICY, policy_id="p-abcdefgh", name="org-tags")
    policy = result.policy
    required = by_name(policy.required_tags)
    optional = by_name(policy.optional_tags)
    assert list(required) == ["CostCenter", "Environment", "Owner"]
    assert list(optional) == ["Project", "DataClassification", "Team"]

    cost = required["CostCenter"]
    assert cost.allowed_values == ["100", "200", "300*"]  # wildcard kept as a pattern
    assert cost.applies_to == [*EC2_TYPES, "rds:db", "s3:bucket"]  # ALL_SUPPORTED expanded from the registry
    assert cost.enforced_for == ["secretsmanager:secret", "ec2:instance"]
    assert required["Environment"].allowed_values == ["Prod", "Staging"]  # @@append added, @@remove applied
    assert required["Environment"].applies_to == [
        "lambda:function",
        "opensearch:domain",
    ]  # es: -> registry id
    assert required["Owner"].allowed_values == ["*@example.com"]
    assert required["Owner"].enforced_for == []  # enforcement is recorded, never implied

    assert optional["Project"].enforced_for == ["dynamodb:table"]  # enforced_for alone does not require
    assert optional["DataClassification"].allowed_values == ["public", "internal", "confidential"]
    assert optional["Team"].allowed_values is None

    assert policy.imported_from is not None
    assert (policy.imported_from.policy_id, policy.imported_from.name) == ("p-abcdefgh", "org-tags")
    assert policy.imported_from.kind == "aws_tag_policy"
    assert result.summary.model_dump() == {
        "required_tags_count": 3,
        "optional_tags_count": 3,
        "enforced_services": ["dynamodb", "ec2", "secretsmanager"],
        "enforced_types": ["ec2:instance", "dynamodb:table", "secretsmanager:secret"],
    }


def test_conversion_accounts_for_every_aws_construct() -> None:
    """Each AWS value is in the policy or named in a warning; each operator other than @@assign is warned about."""
    result = convert_tag_policy(AWS_POLICY)
    text = "\n".join(result.warnings)
    tags = {tag.name.lower(): tag for tag in [*result.policy.required_tags, *result.policy.optional_tags]}
    assert "tags.@@operators_allowed_for_child_policies" in text
    for key, entry in AWS_POLICY["tags"].items():
        if key.startswith("@@"):
            continue
        tag = tags[key]
        for field, node in entry.items():
            for operator, value in node.items():
                path = f"tags.{key}.{field}.{operator}"
                if operator != "@@assign":
                    assert path in text, f"{path} is not accounted for"
                    continue
                if field == "tag_key":
                    assert tag.name == value
                elif field == "tag_value":
                    assert all(item in tag.allowed_values for item in value if item not in ("Dev",))
                else:
                    mapped = tag.enforced_for if field == "enforced_for" else getattr(tag, "applies_to", [])
                    for index, item in enumerate(value):
                        name_in_registry = item in {row.tag_policy_name for row in REGISTRY.values()}
                        if not name_in_registry or item.endswith((":ALL_SUPPORTED", ":*")):
                            assert f"{path}[{index}]" in text, (
                                f"{path}[{index}] ({item}) is not accounted for"
                            )
                        else:
                            assert any(REGISTRY[t].tag_policy_name == item for t in mapped)
    # The things that changed meaning are explained.
    assert re.search(r"athena:workgroup is not a resource type this server supports", text)
    assert re.search(r"ec2:ALL_SUPPORTED expanded to the ec2 types", text)
    assert re.search(r"tags\.environment\.tag_value\.@@remove: .*removed: \"Dev\"", text)
    assert re.search(r"tags\.team\.report_required_tag_for: .*'Team' imported as optional", text)
    assert re.search(
        r"3 tag\(s\) required for no resource type this server scans were imported as optional", text
    )


def test_round_trip_convert_save_load(tmp_path: Path) -> None:
    result = convert_tag_policy(json.dumps(AWS_POLICY), policy_id="p-abcdefgh", name="org-tags")
    path = tmp_path / "tagging_policy.json"
    assert write_policy_file(result.policy, path) is False
    loaded = load_policy(path)
    assert loaded.policy == result.policy
    assert loaded.policy.digest() == result.policy.digest()
    assert "imported from AWS Organizations tag policy p-abcdefgh 'org-tags'" in loaded.description
    assert write_policy_file(result.policy, path) is True  # replaced
    assert not [p for p in tmp_path.iterdir() if p.name != "tagging_policy.json"]  # no temp files left


def test_effective_policy_form_converts_like_the_stored_form() -> None:
    stored = {
        "tags": {
            "costcenter": {
                "tag_key": {"@@assign": "CostCenter"},
                "tag_value": {"@@assign": ["100", "300*"]},
                "enforced_for": {"@@assign": ["ec2:instance"]},
                "report_required_tag_for": {"@@assign": ["rds:db"]},
            }
        }
    }
    effective = {
        "tags": {
            "costcenter": {
                "tag_key": "CostCenter",
                "tag_value": ["100", "300*"],
                "enforced_for": ["ec2:instance"],
                "report_required_tag_for": ["rds:db"],
            }
        }
    }
    a = convert_tag_policy(stored).policy
    b = convert_tag_policy(effective, effective_for="").policy

    def rules(policy) -> list[dict[str, Any]]:
        return [
            tag.model_dump(exclude={"description"}) for tag in [*policy.required_tags, *policy.optional_tags]
        ]

    assert rules(a) == rules(b) and len(a.required_tags) == 1
    assert b.imported_from is not None and b.imported_from.kind == "aws_effective_tag_policy"


def test_converted_wildcards_drive_the_engine() -> None:
    policy = convert_tag_policy(AWS_POLICY).policy
    compiled = compile_policy(policy, RESOURCE_TYPE_IDS)

    def instance(tags: dict[str, str]) -> Resource:
        return Resource(
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
            "ec2:instance",
            "us-east-1",
            "123456789012",
            "i-0123456789abcdef0",
            tags,
        )

    assert evaluate([instance({"CostCenter": "3007", "Owner": "ana@example.com"})], compiled).violations == []
    violations = evaluate([instance({"CostCenter": "400", "Owner": "ana@example.org"})], compiled).violations
    assert [(v.violation_type, v.tag_key) for v in violations] == [
        ("invalid_value", "CostCenter"),
        ("invalid_value", "Owner"),
    ]


def test_missing_tag_key_means_lower_case_and_empty_values_are_reported() -> None:
    result = convert_tag_policy(
        {"tags": {"Stage": {"tag_value": ["", "blue"], "report_required_tag_for": ["s3:bucket"]}}}
    )
    tag = result.policy.required_tags[0]
    assert (tag.name, tag.allowed_values, tag.applies_to) == ("stage", ["blue"], ["s3:bucket"])
    text = "\n".join(result.warnings)
    assert (
        "tags.Stage: no tag_key" in text and "the empty value '' is allowed by AWS but not imported" in text
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], r"at document: expected a JSON object"),
        ({}, r"at tags: missing"),
        ({"tags": {}, "scp": {}}, r"at scp: unknown key"),
        ({"tags": {"owner": "Owner"}}, r"at tags\.owner: expected an object"),
        ({"tags": {"owner": {"tag_values": ["a"]}}}, r"at tags\.owner\.tag_values: unknown field"),
        (
            {"tags": {"owner": {"tag_key": {"@@assign": "Team"}}}},
            r"at tags\.owner\.tag_key: 'Team' must equal",
        ),
        (
            {"tags": {"owner": {"tag_key": {"@@append": "Owner"}}}},
            r"at tags\.owner\.tag_key\.@@append: .*only @@assign",
        ),
        (
            {"tags": {"owner": {"tag_key": {"@@assign": 7}}}},
            r"at tags\.owner\.tag_key\.@@assign: expected a string",
        ),
        (
            {"tags": {"owner": {"tag_value": {"@@assign": ["a", 1]}}}},
            r"at tags\.owner\.tag_value\.@@assign\[1\]: expected a string",
        ),
        (
            {"tags": {"owner": {"tag_value": {"@@replace": ["a"]}}}},
            r"at tags\.owner\.tag_value\.@@replace: unknown operator",
        ),
        (
            {"tags": {"owner": {"enforced_for": {"@@assign": ["ec2:instance", "*:*"]}}}},
            r"at tags\.owner\.enforced_for\.@@assign\[1\]: '\*:\*' is not SERVICE:TYPE",
        ),
        (
            {"tags": {"owner": {"report_required_tag_for": {"@@assign": ["ec2"]}}}},
            r"at tags\.owner\.report_required_tag_for\.@@assign\[0\]",
        ),
        (
            {
                "tags": {
                    "owner": {
                        "tag_key": {"@@operators_allowed_for_child_policies": "@@none", "@@assign": "Owner"}
                    }
                }
            },
            r"at tags\.owner\.tag_key\.@@operators_allowed_for_child_policies",
        ),
        (
            {"tags": {"owner": {"tag_key": "Owner"}, "OWNER": {"tag_key": "OWNER"}}},
            r"at tags\.OWNER: tag key 'OWNER' is also declared at tags\.owner",
        ),
        ({"tags": {"x" * 129: {}}}, r"at tags\.x+: name: String should have at most 128"),
    ],
)
def test_malformed_documents_name_the_path(document: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        convert_tag_policy(document)


# --- saving --------------------------------------------------------------------------------


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    return directory


@pytest.mark.parametrize(
    ("output_path", "message"),
    [
        ("../escape.json", r"must not contain '\.\.'"),
        ("sub/../../escape.json", r"must not contain '\.\.'"),
        ("/etc/tagging_policy.json", "outside the policies directory"),
        ("policy.yaml", r"must name a \.json file"),
        ("tagging_policy", r"must name a \.json file"),
        ("", "output_path is empty"),
    ],
)
def test_output_path_outside_the_policies_directory_is_refused(
    policies_dir: Path, output_path: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        resolve_output_path(output_path, policies_dir)


def test_symlinks_out_of_the_policies_directory_are_refused(policies_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (policies_dir / "linked_dir").symlink_to(outside, target_is_directory=True)
    (policies_dir / "linked.json").symlink_to(outside / "target.json")
    for name in ("linked_dir/tagging_policy.json", "linked.json", str(outside / "x.json")):
        with pytest.raises(InvalidInputError, match="outside the policies directory"):
            resolve_output_path(name, policies_dir)
    (policies_dir / "folder.json").mkdir()
    with pytest.raises(InvalidInputError, match="not a regular file"):
        resolve_output_path("folder.json", policies_dir)
    assert list(outside.iterdir()) == []


def test_output_paths_inside_the_policies_directory(
    policies_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = policies_dir.resolve()
    assert resolve_output_path(None, policies_dir) == root / "tagging_policy.json"
    assert resolve_output_path("team.json", policies_dir) == root / "team.json"
    assert resolve_output_path(str(root / "abs.json"), policies_dir) == root / "abs.json"
    monkeypatch.chdir(tmp_path)  # the spec's form, relative to the working directory like POLICY_PATH
    assert resolve_output_path("policies/tagging_policy.json", policies_dir) == root / "tagging_policy.json"


def test_a_failed_save_leaves_the_old_file_and_no_partial_write(
    policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = policies_dir / "tagging_policy.json"
    target.write_text('{"required_tags": [{"name": "Owner"}]}')
    before = target.read_text()

    def broken_load(path: Path):
        raise PolicyError("simulated failure while validating")

    monkeypatch.setattr(policy_import.files, "load_policy", broken_load)
    with pytest.raises(PolicyError, match="simulated failure"):
        write_policy_file(convert_tag_policy(AWS_POLICY).policy, target)
    assert target.read_text() == before
    assert [p.name for p in policies_dir.iterdir()] == ["tagging_policy.json"]


# --- a fake TagPolicySource ------------------------------------------------------------------

ACCOUNT = "111122223333"
SIMPLE = {
    "tags": {
        "owner": {"tag_key": {"@@assign": "Owner"}, "report_required_tag_for": {"@@assign": ["s3:bucket"]}}
    }
}
SECOND = {
    "tags": {"team": {"tag_key": {"@@assign": "Team"}, "report_required_tag_for": {"@@assign": ["rds:db"]}}}
}
EFFECTIVE = {
    "tags": {
        "costcenter": {
            "tag_key": "CostCenter",
            "tag_value": ["1*"],
            "report_required_tag_for": ["ec2:instance"],
        }
    }
}


class FakeSource:
    """In-memory TagPolicySource: policies, attachments, the OU tree and the effective policy."""

    def __init__(
        self,
        documents: dict[str, dict[str, Any]] | None = None,
        attachments: dict[str, list[str]] | None = None,
        parents: dict[str, str] | None = None,
        effective: dict[str, Any] | None = None,
        denied: set[str] | frozenset[str] = frozenset(),
        in_organization: bool = True,
    ) -> None:
        self.summaries = {
            policy_id: TagPolicySummary(
                id=policy_id, arn=f"arn:aws:organizations::{ACCOUNT}:policy/o-x/tag_policy/{policy_id}",
                name=f"name-{policy_id}", description=f"description of {policy_id}",
            )
            for policy_id in (documents or {})
        }  # fmt: skip
        self.documents = documents or {}
        self.attachments = attachments or {}
        self.parents = parents or {ACCOUNT: "r-root"}
        self.effective = effective
        self.denied = denied
        self.in_organization = in_organization
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if not self.in_organization:
            raise OrganizationsNotInUseError("this account is not a member of an AWS Organization")
        if name in self.denied:
            raise TagPolicyAccessDeniedError(f"{name}: AccessDeniedException", ["organizations:" + name])

    def account_id(self) -> str:
        return ACCOUNT

    def list_tag_policies(self) -> list[TagPolicySummary]:
        self._call("ListPolicies")
        return list(self.summaries.values())

    def fetch_tag_policy(self, policy_id: str) -> tuple[TagPolicySummary, dict[str, Any]]:
        self._call("DescribePolicy")
        if policy_id not in self.documents:
            raise TagPolicyNotFoundError(f"tag policy {policy_id!r} does not exist")
        return self.summaries[policy_id], copy.deepcopy(self.documents[policy_id])

    def effective_tag_policy(self, target_id: str | None = None) -> dict[str, Any]:
        self._call("DescribeEffectivePolicy")
        if self.effective is None:
            raise EffectivePolicyNotFoundError("no tag policy applies to this target")
        return copy.deepcopy(self.effective)

    def policies_for_target(self, target_id: str) -> list[TagPolicySummary]:
        self._call("ListPoliciesForTarget")
        return [self.summaries[i] for i in self.attachments.get(target_id, [])]

    def parent_ids(self, child_id: str) -> list[str]:
        self._call("ListParents")
        return [self.parents[child_id]] if child_id in self.parents else []


P1, P2 = "p-aaaaaaaa", "p-bbbbbbbb"


def iam_actions(message: str) -> list[str]:
    document = json.loads(message[message.index("{") : message.rindex("}") + 1])
    assert document["Version"] == "2012-10-17"
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
    return statement["Action"]


# --- import_tag_policy -----------------------------------------------------------------------


def run_import(source: FakeSource, policies_dir: Path, **overrides: Any):
    arguments = {
        "policy_id": None,
        "use_effective": False,
        "save_to_file": False,
        "output_path": None,
        "policies_dir": policies_dir,
    }
    arguments.update(overrides)
    return import_tag_policy(source, **arguments)


def test_several_policies_and_no_id_lists_them(policies_dir: Path) -> None:
    result = run_import(FakeSource({P1: SIMPLE, P2: SECOND}), policies_dir, save_to_file=True)
    assert result.status == "choose_policy" and result.policy is None
    assert [(p.id, p.name, p.description) for p in result.available_policies] == [
        (P1, f"name-{P1}", f"description of {P1}"),
        (P2, f"name-{P2}", f"description of {P2}"),
    ]
    assert list(policies_dir.iterdir()) == []


def test_a_single_policy_is_imported_without_an_id(policies_dir: Path) -> None:
    result = run_import(FakeSource({P1: SIMPLE}), policies_dir)
    assert result.status == "success" and result.saved_to is None
    assert result.source_policy is not None and result.source_policy.id == P1
    assert result.policy is not None and [t.name for t in result.policy.required_tags] == ["Owner"]
    assert result.summary is not None and result.summary.required_tags_count == 1


def test_no_policies_and_no_organization(policies_dir: Path) -> None:
    assert run_import(FakeSource({}), policies_dir).status == "no_policy"
    assert run_import(FakeSource({P1: SIMPLE}, in_organization=False), policies_dir).status == "no_policy"


def test_import_by_id_saves_and_loads_back(policies_dir: Path) -> None:
    source = FakeSource({P1: SIMPLE, P2: SECOND})
    result = run_import(source, policies_dir, policy_id=P2, save_to_file=True)
    assert result.status == "success" and result.replaced_existing_file is False
    assert result.saved_to == str(policies_dir.resolve() / "tagging_policy.json")
    loaded = load_policy(Path(result.saved_to))
    assert loaded.policy == result.policy and loaded.policy.imported_from.policy_id == P2
    again = run_import(
        source, policies_dir, policy_id=P1, save_to_file=True, output_path="tagging_policy.json"
    )
    assert again.replaced_existing_file is True
    assert load_policy(Path(again.saved_to)).policy.required_tags[0].name == "Owner"


def test_unknown_policy_id_lists_the_available_ids(policies_dir: Path) -> None:
    with pytest.raises(
        TagPolicyNotFoundError, match=rf"'p-cccccccc' does not exist; .*{P1} \(name-{P1}\), {P2}"
    ):
        run_import(FakeSource({P1: SIMPLE, P2: SECOND}), policies_dir, policy_id="p-cccccccc")


@pytest.mark.parametrize("bad", ["p-short", "policy-12345678", "p-aaaaaaaa/../x"])
def test_malformed_policy_id_is_refused_before_calling_aws(policies_dir: Path, bad: str) -> None:
    source = FakeSource({P1: SIMPLE})
    with pytest.raises(InvalidInputError, match="is not a policy id"):
        run_import(source, policies_dir, policy_id=bad)
    assert source.calls == []


def test_bad_output_path_is_refused_before_calling_aws(policies_dir: Path) -> None:
    source = FakeSource({P1: SIMPLE})
    with pytest.raises(InvalidInputError, match="must not contain"):
        run_import(source, policies_dir, policy_id=P1, save_to_file=True, output_path="../../etc/x.json")
    assert source.calls == []


def test_access_denied_gives_the_least_privilege_iam_policy(policies_dir: Path) -> None:
    with pytest.raises(TagPolicyAccessDeniedError) as caught:
        run_import(FakeSource({P1: SIMPLE}, denied={"DescribePolicy"}), policies_dir, policy_id=P1)
    assert iam_actions(str(caught.value)) == ["organizations:DescribePolicy", "organizations:ListPolicies"]
    assert "DescribePolicy: AccessDeniedException" in str(caught.value)

    with pytest.raises(TagPolicyAccessDeniedError) as caught:
        run_import(
            FakeSource(effective=EFFECTIVE, denied={"DescribeEffectivePolicy"}),
            policies_dir,
            use_effective=True,
        )
    assert iam_actions(str(caught.value)) == ["organizations:DescribeEffectivePolicy"]


def test_effective_policy_import(policies_dir: Path) -> None:
    result = run_import(FakeSource(effective=EFFECTIVE), policies_dir, use_effective=True, save_to_file=True)
    assert result.status == "success" and result.source_policy is None
    assert result.policy is not None and result.policy.imported_from.kind == "aws_effective_tag_policy"
    assert result.policy.required_tags[0].allowed_values == ["1*"]
    assert load_policy(Path(result.saved_to)).policy == result.policy
    assert run_import(FakeSource(), policies_dir, use_effective=True).status == "no_policy"
    with pytest.raises(InvalidInputError, match="either policy_id or use_effective"):
        run_import(FakeSource(effective=EFFECTIVE), policies_dir, use_effective=True, policy_id=P1)


# --- detect_policy_at_startup ----------------------------------------------------------------


def detect(source: FakeSource, policy_path: Path, **overrides: Any):
    options = {
        "auto_import": True,
        "policy_id": None,
        "fallback_to_default": True,
        "policy_path": policy_path,
    }
    options.update(overrides)
    return detect_policy_at_startup(source, **options)


def test_an_existing_file_wins_without_calling_aws(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    path.write_text("{}")
    source = FakeSource({P1: SIMPLE})
    outcome = detect(source, path)
    assert outcome.source == "file" and outcome.aws_called is False and source.calls == []
    assert path.read_text() == "{}"


def test_auto_import_off(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    source = FakeSource({P1: SIMPLE})
    outcome = detect(source, path, auto_import=False)
    assert outcome.source == "default" and outcome.policy == DEFAULT_POLICY and source.calls == []
    assert "AUTO_IMPORT_AWS_POLICY=false" in outcome.description
    with pytest.raises(PolicyError, match="FALLBACK_TO_DEFAULT_POLICY"):
        detect(source, path, auto_import=False, fallback_to_default=False)
    assert not path.exists()


def test_the_only_policy_is_imported_and_saved(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    outcome = detect(FakeSource({P1: SIMPLE}), path)
    assert outcome.source == "aws_tag_policy" and outcome.source_policy.id == P1
    assert "only tag policy" in outcome.reason
    assert load_policy(path).policy == outcome.policy
    assert outcome.saved_to == str(path.resolve())


def test_several_policies_use_the_one_attached_to_the_account(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    outcome = detect(FakeSource({P1: SIMPLE, P2: SECOND}, attachments={ACCOUNT: [P2], "r-root": [P1]}), path)
    assert outcome.source_policy.id == P2 and f"attached to {ACCOUNT}" in outcome.reason
    assert load_policy(path).policy.required_tags[0].name == "Team"


def test_several_policies_use_the_one_attached_to_the_nearest_ou(policies_dir: Path) -> None:
    source = FakeSource(
        {P1: SIMPLE, P2: SECOND},
        attachments={"ou-ab12-cdef3456": [P1], "r-root": [P2]},
        parents={ACCOUNT: "ou-ab12-cdef3456", "ou-ab12-cdef3456": "r-root"},
    )
    outcome = detect(source, policies_dir / "tagging_policy.json")
    assert outcome.source_policy.id == P1 and "attached to ou-ab12-cdef3456" in outcome.reason


def test_several_policies_at_one_level_use_the_effective_policy(policies_dir: Path) -> None:
    source = FakeSource({P1: SIMPLE, P2: SECOND}, attachments={ACCOUNT: [P1, P2]}, effective=EFFECTIVE)
    outcome = detect(source, policies_dir / "tagging_policy.json")
    assert outcome.source == "aws_effective_tag_policy" and "2 tag policies" in outcome.reason
    assert outcome.policy.required_tags[0].name == "CostCenter"


def test_several_policies_none_attached_falls_back(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    outcome = detect(FakeSource({P1: SIMPLE, P2: SECOND}), path)
    assert outcome.source == "default" and outcome.aws_called and not path.exists()
    with pytest.raises(PolicyError, match="no tag policy applies"):
        detect(FakeSource({P1: SIMPLE, P2: SECOND}), path, fallback_to_default=False)


def test_configured_policy_id(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    outcome = detect(FakeSource({P1: SIMPLE, P2: SECOND}), path, policy_id=P2)
    assert outcome.source_policy.id == P2 and "AWS_POLICY_ID" in outcome.reason
    path.unlink()
    with pytest.raises(PolicyError, match="AWS_POLICY_ID 'p-cccccccc' names no tag policy"):
        detect(FakeSource({P1: SIMPLE}), path, policy_id="p-cccccccc")  # a misconfiguration: never a fallback


def test_member_account_reads_its_effective_policy(policies_dir: Path) -> None:
    source = FakeSource({P1: SIMPLE}, effective=EFFECTIVE, denied={"ListPolicies", "DescribePolicy"})
    outcome = detect(source, policies_dir / "tagging_policy.json")
    assert outcome.source == "aws_effective_tag_policy" and "ListPolicies is denied" in outcome.reason


def test_access_denied_everywhere(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    denied = {"ListPolicies", "DescribePolicy", "DescribeEffectivePolicy"}
    outcome = detect(FakeSource({P1: SIMPLE}, denied=denied), path)
    assert outcome.source == "default"
    assert iam_actions(outcome.reason) == sorted(DETECTION_ACTIONS)
    with pytest.raises(PolicyError) as caught:
        detect(FakeSource({P1: SIMPLE}, denied=denied), path, fallback_to_default=False)
    assert iam_actions(str(caught.value)) == sorted(DETECTION_ACTIONS)


def test_no_organization_or_no_policies_fall_back(policies_dir: Path) -> None:
    path = policies_dir / "tagging_policy.json"
    assert detect(FakeSource({P1: SIMPLE}, in_organization=False), path).source == "default"
    outcome = detect(FakeSource({}), path)
    assert outcome.source == "default" and "no tag policies" in outcome.reason
    assert not path.exists()


def test_detection_creates_the_policy_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tagging_policy.json"
    outcome = detect(FakeSource({P1: SIMPLE}), path)
    assert outcome.source == "aws_tag_policy" and load_policy(path).source == "file"
    assert path.stat().st_mode & 0o777 == 0o644  # readable like a hand-written policy file

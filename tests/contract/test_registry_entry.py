"""server.json, the MCP Registry entry, against the registry's published schema (vendored in
``schemas/``: the registry's server.schema.json of 2025-09-29) and the official registry's own rules
for a PyPI package; and in step with pyproject.toml, the README and the bundle's manifest."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from pydantic import AliasChoices

from tag_compliance_mcp.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "mcp-registry-server-2025-09-29.schema.json").read_text()
)
SERVER = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MANIFEST = json.loads(
    (ROOT / "services" / "mcp_gateway" / "mcpb" / "manifest.json").read_text(encoding="utf-8")
)
# Read by boto3's credential chain, not by the product's settings.
BOTO_VARIABLES = {"AWS_PROFILE"}


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def setting_aliases() -> dict[str, str]:
    """Environment variable -> settings field, for every setting of the gateway."""
    aliases: dict[str, str] = {}
    for name, field in GatewaySettings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or name.upper()]
        aliases.update({str(choice): name for choice in choices})
    return aliases


def test_server_json_follows_the_registry_schema_it_names() -> None:
    assert SERVER["$schema"] == SCHEMA["$id"]
    assert schema_errors(SERVER) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["packages"][0].update(version="latest"), "packages/0"),
        (lambda d: d.update(description="x" * 101), "description"),
        (lambda d: d.update(name="no-namespace"), "name"),
        (lambda d: d["packages"][0].pop("transport"), "packages/0"),
    ],
)
def test_the_schema_check_rejects_what_the_registry_rejects(change: Any, complaint: str) -> None:
    broken = copy.deepcopy(SERVER)
    change(broken)
    assert any(error.startswith(complaint) for error in schema_errors(broken)), schema_errors(broken)


def test_the_package_is_this_projects_pypi_distribution_over_stdio() -> None:
    (package,) = SERVER["packages"]
    assert package["registryType"] == "pypi" and package["registryBaseUrl"] == "https://pypi.org"
    assert package["identifier"] == PROJECT["name"]
    assert package["version"] == SERVER["version"] == PROJECT["version"] == MANIFEST["version"]
    assert package["transport"] == {"type": "stdio"}
    # `uvx tag-compliance-mcp` runs the console script named like the distribution
    assert package["runtimeHint"] == "uvx" and PROJECT["name"] in PROJECT["scripts"]


def test_the_readme_carries_the_registry_ownership_marker() -> None:
    """The official registry verifies a PyPI package by ``mcp-name: <name>`` in its description
    (the README, pyproject's ``readme``)."""
    assert PROJECT["readme"] == "README.md"
    markers = re.findall(r"mcp-name: (\S+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert markers == [SERVER["name"]]


def test_every_environment_variable_is_a_setting_with_its_default() -> None:
    (package,) = SERVER["packages"]
    aliases = setting_aliases()
    for variable in package["environmentVariables"]:
        name = variable["name"]
        assert name in aliases or name in BOTO_VARIABLES, f"{name} is read by nothing"
        assert variable.get("isRequired") is False, f"{name}: the server starts without it"
        if "default" in variable:
            default = GatewaySettings.model_fields[aliases[name]].get_default(call_default_factory=True)
            assert variable["default"] == (
                str(default).lower() if isinstance(default, bool) else str(default)
            )

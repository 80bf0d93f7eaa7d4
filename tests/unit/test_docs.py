"""The docs match the code: settings, tools and make targets named in the READMEs exist, and vice versa."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from pydantic import AliasChoices

from tag_compliance_mcp.server import build_server
from tag_compliance_mcp.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
COMPONENT_READMES = sorted([*ROOT.glob("services/*/README.md"), ROOT / "statemachines" / "README.md"])
MAKE_READMES = [README, ROOT / "stacks" / "README.md", *COMPONENT_READMES]

# UPPER_SNAKE names these READMEs mention that are not settings, each with the reason.
DOCUMENTED_NON_SETTINGS = {
    "AWS_PROFILE": "read by boto3's credential chain, not by the product",
    "AWS_ACCESS_KEY_ID": "read by boto3's credential chain, not by the product",
    "AWS_SECRET_ACCESS_KEY": "read by boto3's credential chain, not by the product",
    "DEMO_AWS_PORT": "read by services/demo only (make demo), not the product",
    "DEMO_HTTP_PORT": "read by services/demo only (make demo), not the product",
    "DEMO_DATA_DIR": "read by services/demo only (make demo), not the product",
    "XDG_DATA_HOME": "the XDG base directory the default DATA_DIR lies in on Linux, not a setting",
    "FORWARDED_ALLOW_IPS": "read by uvicorn (which addresses may set X-Forwarded-For), not the product",
    "FUNCTION_SUBSTITUTIONS": "a Python constant in services.scanners.definition, not a variable",
    "NON_FUNCTION_SUBSTITUTIONS": "a Python constant in services.scanners.definition, not a variable",
    "LINKED_ACCOUNT": "a Cost Explorer dimension (the member account of a charge), not a variable",
    "CAPABILITY_NAMED_IAM": "a CloudFormation capability (the StackSet's named role), not a variable",
    "SERVICE_MANAGED": "a CloudFormation StackSet permission model, not a variable",
}
UPPER_SNAKE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _aliases() -> dict[str, str]:
    """Every environment variable of the settings (the gateway's extend the core's) -> its field name."""
    names: dict[str, str] = {}
    for field_name, field in GatewaySettings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        assert choices and all(isinstance(choice, str) for choice in choices), field_name
        names.update({str(choice): field_name for choice in choices})
    return names


ALIASES = _aliases()


def _default(name: str) -> Any:
    return GatewaySettings.model_fields[ALIASES[name]].get_default(call_default_factory=True)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _split_outside_backticks(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == "`":
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def _variable_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """(names, defaults) of every row of the README tables headed ``| Variable | Default | ...``."""
    rows, in_table = [], False
    for line in text.splitlines():
        if line.startswith("| Variable | Default |"):
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            names_cell, default_cell = _cells(line)[:2]
            rows.append((re.findall(r"`([A-Z0-9_]+)`", names_cell), _split_outside_backticks(default_cell)))
        elif not line.startswith("|"):
            in_table = False
    return rows


def _same(name: str, documented: str) -> bool:
    """Whether the README's literal default (without backticks) is the setting's default."""
    value = _default(name)
    if isinstance(value, bool):
        return documented == str(value).lower()
    if isinstance(value, int | float):
        return float(documented) == value
    if isinstance(value, list):
        return documented == ",".join(value)
    if isinstance(value, dict):
        return json.loads(documented) == value
    if isinstance(value, Path):
        return Path(documented).expanduser() == value
    return documented == str(value)


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in ALIASES if f"`{name}`" not in text]
    assert not missing, f"settings not documented in README.md: {missing}"


def test_every_variable_the_docs_name_is_a_setting_or_explained() -> None:
    for path in (README, *COMPONENT_READMES):
        named = set(UPPER_SNAKE.findall(path.read_text(encoding="utf-8")))
        unknown = sorted(named - set(ALIASES) - set(DOCUMENTED_NON_SETTINGS))
        assert not unknown, f"{_shown(path)} names variables that are not settings: {unknown}"
    assert not set(DOCUMENTED_NON_SETTINGS) & set(ALIASES), "a documented non-setting is a setting now"


def test_variable_tables_state_the_settings_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # DATA_DIR's default depends on the home folder (and a legacy folder in it): an empty one here.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    rows = _variable_rows(README.read_text(encoding="utf-8"))
    assert len(rows) >= 40, "the README's variable tables were not found"
    checked = 0
    for names, defaults in rows:
        assert names, f"a variable table row names no variable: {defaults}"
        if len(defaults) == 1:
            defaults = defaults * len(names)
        assert len(defaults) == len(names), f"{names}: one default per variable expected, got {defaults}"
        for name, documented in zip(names, defaults, strict=True):
            if name not in ALIASES:
                continue
            value = _default(name)
            if value is None or value == [] or value == {}:  # unset: the README says what applies instead
                literal = re.fullmatch(r"`([^`]*)`", documented)
                assert (
                    not literal
                    or literal.group(1) in ALIASES  # "`AWS_REGION`": another setting's value
                    or "HOST:PORT" in literal.group(1)  # derived from the listen address
                    or _same(name, literal.group(1))
                ), f"{name}: README default {documented}, but the setting is unset by default"
                continue
            literal = re.match(r"`([^`]+)`", documented)
            assert literal and _same(name, literal.group(1)), (
                f"{name}: README default {documented!r}, settings default {value!r}"
            )
            checked += 1
    assert checked >= 25


# Defaults stated in prose: "`NAME` (2)", "`NAME` (default 40)", "`NAME`, default `x`".
PROSE_DEFAULT = re.compile(
    r"`([A-Z][A-Z0-9_]+)`(?: \((\d+(?:\.\d+)?|true|false)\)|,? \(?default `?([^`\s,;)]+)`?)"
)


def test_defaults_stated_in_prose_match_the_settings() -> None:
    checked = 0
    for path in (README, *COMPONENT_READMES):
        for match in PROSE_DEFAULT.finditer(path.read_text(encoding="utf-8")):
            name, documented = match.group(1), match.group(2) or match.group(3)
            if name not in ALIASES:
                continue
            assert _same(name, documented), (
                f"{_shown(path)}: {match.group(0)!r}, settings default {_default(name)!r}"
            )
            checked += 1
    assert checked >= 5


def _registered_tools() -> set[str]:
    # build_server only wires the tools to the runtime; no store, AWS or service is touched.
    runtime = SimpleNamespace(settings=GatewaySettings.model_construct(), store=None, service=None)
    server = build_server(runtime)  # type: ignore[arg-type]
    return {tool.name for tool in anyio.run(server.list_tools)}


def test_tools_table_lists_exactly_the_registered_tools() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Tools\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    registered = _registered_tools()
    assert len(registered) >= 16
    assert len(documented) == len(set(documented)), "a tool is listed twice"
    assert set(documented) == registered, (
        f"missing from README: {sorted(registered - set(documented))}; "
        f"not registered: {sorted(set(documented) - registered)}"
    )


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*):(?!=)", text, flags=re.MULTILINE))


@pytest.mark.parametrize("path", MAKE_READMES, ids=lambda path: str(_shown(path)))
def test_make_targets_in_the_docs_exist(path: Path) -> None:
    # `make X` in prose, or a command line starting with make (prose like "make a tag" is not a target)
    mentioned = set(re.findall(r"(?:`|^)make ([\w-]+)", path.read_text(encoding="utf-8"), flags=re.MULTILINE))
    targets = _make_targets()
    assert {"demo", "test", "setup"} <= targets, "the Makefile parser found no targets"
    assert mentioned <= targets, f"{_shown(path)} mentions unknown make targets: {mentioned - targets}"


def test_the_operations_section_documents_the_log_schema_and_call_outcomes() -> None:
    from tagcompliance.observability import BASE_FIELDS, CORRELATION_FIELDS
    from tagcompliance.observability.metrics import CALL_OUTCOMES

    section = README.read_text(encoding="utf-8").split("### The log schema", 1)[1].split("\n### ", 1)[0]
    for name in (*BASE_FIELDS, *CORRELATION_FIELDS, *CALL_OUTCOMES):
        assert f"`{name}`" in section, name


def test_the_readme_starts_with_the_two_commands() -> None:
    """Contributors' two commands come first (the first code block), then the users' install."""
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"], first_block
    assert text.index("make demo") < text.index("uvx tag-compliance-mcp")

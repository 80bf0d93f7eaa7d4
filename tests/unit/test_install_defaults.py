"""Where an installed command keeps its files when nothing is configured: the user's data folder per
platform, and the policy beside the store unless the working directory holds one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagcompliance import settings as settings_module
from tagcompliance.settings import Settings, user_data_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    for name in ("XDG_DATA_HOME", "APPDATA", "DATA_DIR", "POLICY_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("platform", "environment", "expected"),
    [
        ("linux", {}, ".local/share/tag-compliance"),
        ("linux", {"XDG_DATA_HOME": "relative/ignored"}, ".local/share/tag-compliance"),
        ("darwin", {}, "Library/Application Support/tag-compliance"),
        ("win32", {}, "AppData/Roaming/tag-compliance"),
    ],
)
def test_the_data_folder_follows_the_platform(
    home: Path, monkeypatch: pytest.MonkeyPatch, platform: str, environment: dict[str, str], expected: str
) -> None:
    monkeypatch.setattr(settings_module.sys, "platform", platform)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert user_data_dir() == home / expected


def test_xdg_data_home_and_appdata_are_honoured(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(settings_module.sys, "platform", "linux")
    assert user_data_dir() == tmp_path / "xdg" / "tag-compliance"
    monkeypatch.setenv("APPDATA", str(tmp_path / "roaming"))
    monkeypatch.setattr(settings_module.sys, "platform", "win32")
    assert user_data_dir() == tmp_path / "roaming" / "tag-compliance"


def test_an_existing_legacy_folder_stays_in_use_until_the_new_one_exists(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module.sys, "platform", "linux")
    (home / ".tag-compliance").mkdir(parents=True)
    assert user_data_dir() == home / ".tag-compliance"
    (home / ".local" / "share" / "tag-compliance").mkdir(parents=True)
    assert user_data_dir() == home / ".local" / "share" / "tag-compliance"


def test_the_policy_defaults_to_the_working_directory_file_else_the_data_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert Settings(DATA_DIR=str(tmp_path / "data")).policy_path == tmp_path / "data" / "tagging_policy.json"
    (elsewhere / "policies").mkdir()
    (elsewhere / "policies" / "tagging_policy.json").write_text("{}")
    assert Settings(DATA_DIR=str(tmp_path / "data")).policy_path == Path("policies/tagging_policy.json")
    monkeypatch.setenv("POLICY_PATH", "mine.json")  # an explicit setting wins, existing or not
    assert Settings().policy_path == Path("mine.json")

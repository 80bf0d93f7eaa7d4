"""Issue 13, attack 5 (errors): tool errors showed the server's directories, and a 300-character
``output_path`` gave "internal error (OSError)". Errors now name no server path, and an over-long
path is a clear invalid-input error, in the reply and in ``call_log``."""

from __future__ import annotations

import pytest

from tag_compliance_mcp.auth.logfilter import public_error
from tests.auth.conftest import AuthStack, connect
from tests.e2e.helpers import REPO_ROOT

from .conftest import user_token

pytestmark = pytest.mark.anyio


def server_directories(stack: AuthStack) -> list[str]:
    settings = stack.runtime.settings
    return [
        str(REPO_ROOT),
        str(settings.policy_path.resolve().parent),
        str(settings.data_dir.resolve()),
    ]


async def import_error(stack: AuthStack, output_path: str) -> str:
    admin = user_token(stack, "root@example.com", "tag:read admin")
    async with connect(stack.mcp_url, token=admin) as client:
        result = await client.call_tool(
            "import_aws_tag_policy",
            {"policy_id": "p-12345678", "save_to_file": True, "output_path": output_path},
        )
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize(
    "output_path",
    ["x" * 300 + ".json", "nested/" + "y" * 260 + "/policy.json"],
    ids=["long-name", "long-directory"],
)
async def test_an_over_long_output_path_is_a_clear_invalid_input_error(
    stack: AuthStack, output_path: str
) -> None:
    text = await import_error(stack, output_path)
    assert "internal error" not in text and "OSError" not in text and "incident" not in text, text
    assert "output_path" in text and "too long" in text, text
    audit = stack.runtime.store.list_calls(limit=1)[0]
    assert audit.tool_name == "import_aws_tag_policy" and audit.error_message is not None
    assert "too long" in audit.error_message and "OSError" not in audit.error_message


@pytest.mark.parametrize("output_path", ["/etc/passwd.json", "../outside.json", "sub/../../x.json"])
async def test_errors_name_no_server_directory(stack: AuthStack, output_path: str) -> None:
    text = await import_error(stack, output_path)
    audit = stack.runtime.store.list_calls(limit=1)[0]
    for directory in server_directories(stack):
        assert directory not in text, text
        assert directory not in (audit.error_message or ""), audit.error_message
    assert "policies directory" in text or "'..'" in text, text


async def test_the_confirmation_asked_before_saving_names_no_server_directory(stack: AuthStack) -> None:
    admin = user_token(stack, "root@example.com", "tag:read admin")
    async with connect(stack.mcp_url, token=admin) as client:
        result = await client.call_tool(
            "import_aws_tag_policy",
            {"policy_id": "p-12345678", "save_to_file": True, "output_path": "x.json"},
        )
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["safety"] == "intent_commit"
    text = str(result.structured_content)
    for directory in server_directories(stack):
        assert directory not in text, text


@pytest.mark.parametrize(
    ("message", "hidden", "kept"),
    [
        ("tagging policy /srv/app/policies/p.json is not valid JSON", "/srv/app", ".../p.json"),
        ("[Errno 36] File name too long: '/home/svc/.tag-compliance/x.json'", "/home/svc", ".../x.json"),
        ("no such resource arn:aws:iam::123456789012:role/team/app-role", None, "role/team/app-role"),
        (
            "cron */15 * * * * at http://127.0.0.1:8080/mcp/x",
            None,
            "*/15 * * * * at http://127.0.0.1:8080/mcp/x",
        ),
    ],
)
def test_public_errors_hide_server_paths_only(message: str, hidden: str | None, kept: str) -> None:
    shown = public_error(message)
    assert kept in shown, shown
    if hidden is not None:
        assert hidden not in shown, shown

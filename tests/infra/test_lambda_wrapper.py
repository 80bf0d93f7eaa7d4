"""The Lambda exec wrapper: the database password from Secrets Manager into PGPASSWORD, then exec.

Runs the real script against a private moto server (its own process: the shared demo estate is
left alone), the way Lambda runs it: ``wrapper <runtime command...>``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "stacks" / "lambda_runtime" / "bin" / "tagcompliance-secrets-env"
PRINT_PASSWORD = [sys.executable, "-c", "import os; print(os.environ.get('PGPASSWORD', '<unset>'))"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto_server did not start")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "DATABASE_PASSWORD_SECRET_ARN")}
    return {
        **base,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


def test_wrapper_is_executable_and_exports_the_secret_password(moto_endpoint: str) -> None:
    assert os.access(WRAPPER, os.X_OK)
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = client.create_secret(
        Name="tagging-mcp/test/database-credentials",
        SecretString=json.dumps({"username": "mcp_admin", "password": "s3cr3t-pw"}),
    )["ARN"]
    result = subprocess.run(
        [str(WRAPPER), *PRINT_PASSWORD],
        env=_env(moto_endpoint, DATABASE_PASSWORD_SECRET_ARN=arn),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s3cr3t-pw"


def test_wrapper_without_a_secret_arn_just_runs_the_command(moto_endpoint: str) -> None:
    result = subprocess.run(
        [str(WRAPPER), *PRINT_PASSWORD], env=_env(moto_endpoint), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "<unset>"


def test_wrapper_fails_loudly_on_an_unknown_secret(moto_endpoint: str) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tagging-mcp/none-AbCdEf"
    result = subprocess.run(
        [str(WRAPPER), *PRINT_PASSWORD],
        env=_env(moto_endpoint, DATABASE_PASSWORD_SECRET_ARN=missing),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr

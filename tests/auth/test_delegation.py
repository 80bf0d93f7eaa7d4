"""User login delegated to the company IdP (the test OIDC provider here): a bad ID token, a refused
login, a forged login state, a wrong IdP client secret -> no MCP code; and the gateway's
configuration: signing key (generated and kept locally, or from Secrets Manager) and clear errors."""

from __future__ import annotations

import json
import stat
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import boto3
import httpx2 as httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.demo.aws import DemoAws
from tag_compliance_mcp.auth.config import build_auth
from tag_compliance_mcp.auth.keys import KEY_FILE_NAME, load_signing_key
from tag_compliance_mcp.settings import GatewaySettings
from tagcompliance.cache import MemoryCache
from tagcompliance.errors import TagComplianceError
from tagcompliance.store import open_store

from .conftest import AuthStack, ManualClient, pkce_pair, shown_error

pytestmark = pytest.mark.anyio


async def idp_login_url(stack: AuthStack, http: httpx.AsyncClient) -> tuple[ManualClient, str]:
    """A registered client's /authorize, answered by the redirect to the IdP (not followed)."""
    client = await ManualClient.register(stack, http)
    _, challenge = pkce_pair()
    response = await client.authorize(http, challenge)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{stack.idp.issuer}/authorize?")
    return client, location


@pytest.mark.parametrize("fault", ["signature", "nonce", "audience", "issuer", "expired"])
async def test_a_bad_upstream_id_token_gets_no_code(stack: AuthStack, fault: Any) -> None:
    stack.idp.id_token_fault = fault
    try:
        async with httpx.AsyncClient() as http:
            client = await ManualClient.register(stack, http)
            _, challenge = pkce_pair()
            response = await client.login(http, challenge)
    finally:
        stack.idp.id_token_fault = None
    # shown, never a code; not redirected: the user has not consented to this client's redirect URI
    assert "ID token" in shown_error(response, 403)


async def test_the_idp_refusing_the_login_gets_access_denied(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        _, location = await idp_login_url(stack, http)
        state = parse_qs(urlparse(location).query)["state"][0]
        callback = f"{stack.issuer}/oauth/callback?{urlencode({'state': state, 'error': 'access_denied'})}"
        response = await http.get(callback, follow_redirects=False)
    assert "refused the sign-in" in shown_error(response, 403)


@pytest.mark.parametrize("kind", ["missing", "garbage", "other-key", "expired", "no-code"])
async def test_a_forged_or_stale_login_state_is_refused(stack: AuthStack, kind: str) -> None:
    async with httpx.AsyncClient() as http:
        _, location = await idp_login_url(stack, http)
        real_state = parse_qs(urlparse(location).query)["state"][0]
        claims = jwt.decode(real_state, stack.key).claims
        now = int(time.time())
        states = {
            "missing": None,
            "garbage": "not-a-state",
            "other-key": jwt.encode(
                {"alg": "RS256", "kid": stack.key.kid, "typ": "oauth-login+jwt"},
                {**claims, "redirect_uri": "http://127.0.0.1:2/evil"},
                RSAKey.generate_key(2048),
            ),
            "expired": jwt.encode(
                {"alg": "RS256", "kid": stack.key.kid, "typ": "oauth-login+jwt"},
                {**claims, "iat": now - 1200, "exp": now - 600},
                stack.key,
            ),
            "no-code": real_state,
        }
        params = {"code": "upstream-code"} if kind != "no-code" else {}
        if states[kind] is not None:
            params["state"] = str(states[kind])
        response = await http.get(
            f"{stack.issuer}/oauth/callback?{urlencode(params)}", follow_redirects=False
        )
    if kind == "no-code":  # a genuine state: the error is shown (no consent for this client yet)
        assert "sent no code" in shown_error(response, 400)
        return
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


async def test_a_wrong_idp_client_secret_gets_access_denied(stack: AuthStack) -> None:
    real = stack.idp.client_secret
    stack.idp.client_secret = "rotated-" + uuid.uuid4().hex  # the IdP no longer accepts the gateway's
    try:
        async with httpx.AsyncClient() as http:
            client = await ManualClient.register(stack, http)
            _, challenge = pkce_pair()
            response = await client.login(http, challenge)
    finally:
        stack.idp.client_secret = real
    text = shown_error(response, 403)
    assert "401" in text and real not in text


async def test_a_token_for_another_resource_is_refused(stack: AuthStack) -> None:
    async with httpx.AsyncClient() as http:
        client = await ManualClient.register(stack, http)
        _, challenge = pkce_pair()
        client.resource = "https://other.example.com/mcp"
        response = await client.authorize(http, challenge)
    shown_error(response, 400)  # not redirected: nobody has approved the redirect URI yet
    assert response.json()["error"] == "invalid_target"


# --- configuration -------------------------------------------------------------------------------


def test_the_local_signing_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = GatewaySettings(DATA_DIR=str(tmp_path))
    first = load_signing_key(settings)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_signing_key(settings)
    assert first.kid == again.kid and first.is_private
    path.write_text("not a key")
    with pytest.raises(TagComplianceError, match="not a PEM RSA private key"):
        load_signing_key(settings)


def test_signing_key_and_idp_secret_from_secrets_manager(demo_aws: DemoAws, tmp_path: Path) -> None:
    secrets = boto3.client(
        "secretsmanager",
        region_name=demo_aws.regions[0],
        endpoint_url=demo_aws.endpoint_url,
        aws_access_key_id=demo_aws.environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=demo_aws.environment["AWS_SECRET_ACCESS_KEY"],
    )
    pem = RSAKey.generate_key(2048).as_pem(private=True).decode()
    name = f"tagging-mcp/test-{uuid.uuid4().hex[:8]}"
    key_arn = secrets.create_secret(Name=f"{name}/signing-key", SecretString=pem)["ARN"]
    idp_arn = secrets.create_secret(Name=f"{name}/idp", SecretString="s3cr3t-from-secrets-manager")["ARN"]
    # the spec's form: finops/mcp/oauth-credentials = {"client_id", "client_secret", "issuer_url"}
    document = {
        "client_id": "from-secret",
        "client_secret": "json-s3cr3t",
        "issuer_url": "https://idp.example.com",
    }
    json_arn = secrets.create_secret(Name=f"{name}/oauth-credentials", SecretString=json.dumps(document))[
        "ARN"
    ]
    patch = pytest.MonkeyPatch()
    for variable, value in demo_aws.environment.items():
        patch.setenv(variable, value)
    try:
        values: dict[str, Any] = {
            "AWS_ENDPOINT_URL": demo_aws.endpoint_url,
            "AWS_REGION": demo_aws.regions[0],
            "DATA_DIR": str(tmp_path),
            "AUTH_SIGNING_KEY_SECRET_ARN": key_arn,
            "AUTH_IDP_ISSUER_URL": "https://idp.example.com",
            "AUTH_IDP_CLIENT_ID": "gateway",
            "AUTH_IDP_CLIENT_SECRET_ARN": idp_arn,
            "AUTH_PUBLIC_URL": "https://mcp.example.com/",
        }
        settings = GatewaySettings(**values)
        key = load_signing_key(settings)
        assert key.as_pem(private=True).decode().strip() == pem.strip()
        assert not (tmp_path / KEY_FILE_NAME).exists()  # nothing generated locally
        store = open_store(settings)
        try:
            auth = build_auth(settings, "0.0.0.0", 8080, store, MemoryCache())
            assert auth is not None and auth.authorization_server is not None
            assert auth.authorization_server.issuer == "https://mcp.example.com"
            assert auth.authorization_server.resource == "https://mcp.example.com/mcp"
            assert "s3cr3t" not in repr(auth.authorization_server)  # the secret is never printed
            assert auth.describe().startswith("oauth (issuer https://mcp.example.com: this gateway")
            assert auth.authorization_server.upstream.client_id == "gateway"
            spec_form = GatewaySettings(
                **{**values, "AUTH_IDP_CLIENT_ID": "", "AUTH_IDP_CLIENT_SECRET_ARN": json_arn}
            )
            from_json = build_auth(spec_form, "0.0.0.0", 8080, store, MemoryCache())
            assert from_json is not None and from_json.authorization_server is not None
            assert from_json.authorization_server.upstream.client_id == "from-secret"
            assert "json-s3cr3t" not in repr(from_json.authorization_server.upstream)
            missing = GatewaySettings(**{**values, "AUTH_SIGNING_KEY_SECRET_ARN": key_arn + "-gone"})
            with pytest.raises(TagComplianceError, match="cannot read the access-token signing key"):
                build_auth(missing, "0.0.0.0", 8080, store, MemoryCache())
        finally:
            store.close()
    finally:
        patch.undo()
        # The demo estate is shared by the whole session and secrets are resources it counts.
        for arn in (key_arn, idp_arn, json_arn):
            secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"AUTH_ISSUER_URL": "https://other.example.com", "AUTH_IDP_CLIENT_SECRET": "x"},
            "not both",
        ),
        ({"AUTH_IDP_CLIENT_ID": None, "AUTH_IDP_CLIENT_SECRET": "x"}, "needs AUTH_IDP_CLIENT_ID"),
        ({}, "needs the IdP client secret"),
    ],
)
def test_incomplete_authorization_server_settings_are_refused(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "DATA_DIR": str(tmp_path),
        "AUTH_IDP_ISSUER_URL": "https://idp.example.com",
        "AUTH_IDP_CLIENT_ID": "gateway",
    }
    settings = GatewaySettings(
        **{key: value for key, value in {**base, **values}.items() if value is not None}
    )
    store = open_store(settings)
    try:
        with pytest.raises(TagComplianceError, match=message):
            build_auth(settings, "127.0.0.1", 8080, store, MemoryCache())
    finally:
        store.close()

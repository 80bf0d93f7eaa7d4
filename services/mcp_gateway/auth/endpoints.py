"""The authorization server's endpoints: the SDK's handlers, wrapped where the gateway decides more.

* ``/authorize`` shows the SDK's error redirects instead of following them: before the login nobody
  has approved the client's redirect URI, and registration is open.
* ``/token`` refuses another ``resource`` (``invalid_target``, RFC 8707) and burns a code presented
  with a wrong PKCE verifier; ``/register`` applies the registration policy (``clients.py``).
  ``/register``, ``/authorize`` and ``/token`` are rate-limited per client address (``ratelimit.py``).
* Client secrets are stored as digests only, so ``/token`` and ``/revoke`` authenticate clients by
  comparing digests (``HashedSecretAuthenticator``).
* The client endpoints are wrapped as the SDK wraps its own: body size limit, then CORS.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import anyio.to_thread
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.routes import (
    AUTHORIZATION_PATH,
    REGISTRATION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    build_metadata,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthClientInformationFull
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from .clients import ClientPolicyError, check_registration
from .consent import CONSENT_PATH
from .consents import CALLBACK_PATH, CONSENTS_PATH, NO_STORE
from .digests import s256_challenge, token_hash
from .scopes import ALL_SCOPES, READ_SCOPE

if TYPE_CHECKING:
    from .authserver import GatewayAuthorizationServer

logger = logging.getLogger("tagcompliance.gateway.auth")

JWKS_PATH = "/oauth/jwks"
METADATA_PATH = "/.well-known/oauth-authorization-server"


async def _authorize(request: Request, handler: AuthorizationHandler) -> Response:
    """The SDK's ``/authorize``, with its error redirects shown instead: before the login nobody
    has approved the client's redirect URI, and following one would make an open redirector."""
    response = await handler.handle(request)
    location = response.headers.get("location", "")
    if response.status_code in (302, 303) and "error" in parse_qs(urlsplit(location).query):
        query = parse_qs(urlsplit(location).query)
        return JSONResponse(
            {
                "error": query["error"][0],
                "error_description": query.get("error_description", [""])[0],
            },
            status_code=400,
            headers=NO_STORE,
        )
    return response


async def _token(server: GatewayAuthorizationServer, request: Request, handler: TokenHandler) -> Response:
    """The SDK's ``/token``, first refusing another ``resource`` (RFC 8707 ``invalid_target``) and
    burning a code presented with a wrong PKCE verifier (it must not survive a guess)."""
    form = await request.form()
    resource = form.get("resource")
    if isinstance(resource, str) and resource and resource.rstrip("/") != server.resource.rstrip("/"):
        return JSONResponse(
            {
                "error": "invalid_target",
                "error_description": f"this server issues tokens for {server.resource} only",
            },
            status_code=400,
            headers={**NO_STORE, "Pragma": "no-cache"},
        )
    code, verifier = form.get("code"), form.get("code_verifier")
    if form.get("grant_type") == "authorization_code" and isinstance(code, str) and isinstance(verifier, str):
        digest = token_hash(code)
        record = await anyio.to_thread.run_sync(server.store.get_oauth_code, digest)
        challenge = s256_challenge(verifier)
        if record is not None and not hmac.compare_digest(challenge, record.code_challenge):
            now = datetime.now(UTC)
            if await anyio.to_thread.run_sync(server.store.consume_oauth_code, digest, now):
                logger.warning("code of client %r burnt: wrong PKCE verifier", record.client_id)
    return await handler.handle(request)


async def _register(request: Request, handler: RegistrationHandler) -> Response:
    """The SDK's ``/register`` behind the registration policy (``clients.py``)."""
    try:
        check_registration(await request.body())
    except ClientPolicyError as error:
        return JSONResponse(
            {"error": error.error, "error_description": error.description},
            status_code=400,
            headers=NO_STORE,
        )
    return await handler.handle(request)


def routes(server: GatewayAuthorizationServer) -> list[Route]:
    """The authorization server's endpoints, as routes to mount in front of the MCP app."""
    registration = ClientRegistrationOptions(
        enabled=True, valid_scopes=list(ALL_SCOPES), default_scopes=[READ_SCOPE]
    )
    revocation = RevocationOptions(enabled=True)
    issuer_url = AuthSettings(issuer_url=server.issuer, resource_server_url=None).issuer_url
    metadata = build_metadata(issuer_url, None, registration, revocation)
    metadata.client_id_metadata_document_supported = True
    metadata.token_endpoint_auth_methods_supported = ["client_secret_post", "client_secret_basic", "none"]
    # /token and /revoke authenticate clients against the stored secret digests.
    authenticator = HashedSecretAuthenticator(server)
    authorization = AuthorizationHandler(server)
    token = TokenHandler(server, authenticator)
    register = RegistrationHandler(server, options=registration)
    keys = {"keys": [{**key, "use": "sig", "alg": "RS256"} for key in server.public_keys().as_dict()["keys"]]}

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(keys)

    async def authorize(request: Request) -> Response:
        return await _authorize(request, authorization)

    async def token_endpoint(request: Request) -> Response:
        return await _token(server, request, token)

    async def register_endpoint(request: Request) -> Response:
        return await _register(request, register)

    limited = server.limiter.limited
    return [
        Route(
            METADATA_PATH,
            _cors(request_response(MetadataHandler(metadata).handle), ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        ),
        Route(
            AUTHORIZATION_PATH,
            _body_limited(request_response(limited("/authorize", authorize))),  # no CORS: a navigation
            methods=["GET", "POST"],
        ),
        Route(TOKEN_PATH, _client_endpoint(limited("/token", token_endpoint)), methods=["POST", "OPTIONS"]),
        Route(
            REGISTRATION_PATH,
            _client_endpoint(limited("/register", register_endpoint)),
            methods=["POST", "OPTIONS"],
        ),
        Route(
            REVOCATION_PATH,
            _client_endpoint(RevocationHandler(server, authenticator).handle),
            methods=["POST", "OPTIONS"],
        ),
        Route(CALLBACK_PATH, server.consents.callback, methods=["GET"]),
        Route(CONSENT_PATH, _body_limited(request_response(server.consents.consent)), methods=["POST"]),
        Route(CONSENTS_PATH, server.consents.list_consents, methods=["GET"]),
        Route(CONSENTS_PATH + "/{consent_id}", server.consents.revoke_consent, methods=["DELETE"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
    ]


def _body_limited(app: ASGIApp) -> ASGIApp:
    return RequestBodyLimitMiddleware(app, DEFAULT_MAX_REQUEST_BODY_SIZE)


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    return CORSMiddleware(
        app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER]
    )


def _client_endpoint(handler: Any) -> ASGIApp:
    """Wrapped as the SDK wraps its own client endpoints: body size limit, then CORS."""
    return _cors(_body_limited(request_response(handler)), ["POST", "OPTIONS"])


class HashedSecretAuthenticator(ClientAuthenticator):
    """The SDK's client authentication, comparing SHA-256 digests of client secrets."""

    def __init__(self, server: GatewayAuthorizationServer) -> None:
        super().__init__(server)  # type: ignore[arg-type]
        self.server = server

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        candidates = [value for value in (form.get("client_secret"),) if isinstance(value, str)]
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode("utf-8")
                candidates.append(unquote(decoded.split(":", 1)[1]))
            except (ValueError, UnicodeDecodeError, IndexError):
                pass  # the SDK reports the malformed header
        return await ClientAuthenticator(_PresentedSecret(self.server, candidates)).authenticate_request(
            request
        )  # type: ignore[arg-type]


class _PresentedSecret:
    """Looks clients up for one request: the stored digest is swapped for the presented secret when
    they match (and for a random value when not), so the SDK's constant-time comparison decides."""

    def __init__(self, server: GatewayAuthorizationServer, candidates: list[str]) -> None:
        self.server = server
        self.candidates = candidates

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        client = await self.server.get_client(client_id)
        if client is None or not client.client_secret:
            return client
        stored = client.client_secret
        match = next(
            (value for value in self.candidates if hmac.compare_digest(token_hash(value), stored)),
            secrets.token_hex(32),
        )
        return client.model_copy(update={"client_secret": match})

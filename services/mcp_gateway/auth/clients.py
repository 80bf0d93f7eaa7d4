"""Which OAuth clients the gateway's authorization server accepts, and what they may say about
themselves.

* Dynamic registration (RFC 7591) is open, so what a registration may contain is bounded here: the
  whole document (``REGISTRATION_MAX_BYTES``), every string (``MAX_STRING``, ``MAX_NAME`` for the
  name shown to users) and every list (``MAX_ITEMS``). Redirect URIs follow RFC 8252 and the MCP
  authorization spec: ``https``, ``http`` on a loopback address only, or a private-use scheme for a
  native app; never a fragment, nor a scheme a browser would execute or read locally.
* Client ID Metadata Documents (the MCP authorization spec's recommended way for a client to
  identify itself): a ``client_id`` that is an https URL names a JSON document the client publishes
  there. It is fetched only from a public address (never loopback, private, link-local or
  reserved: the gateway must not become a way to reach the network behind it), without redirects,
  within ``DOCUMENT_MAX_BYTES`` and ``DOCUMENT_TIMEOUT_SECONDS``, and its ``client_id`` must be that
  URL. Such clients are public (PKCE, no secret).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2 as httpx
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import ValidationError

from tagcompliance.cache import Cache

from .scopes import ALL_SCOPES

logger = logging.getLogger("tagcompliance.gateway.auth")

REGISTRATION_MAX_BYTES = 16 * 1024
MAX_STRING = 2048
MAX_NAME = 100
MAX_ITEMS = 10
DOCUMENT_MAX_BYTES = 5 * 1024
DOCUMENT_TIMEOUT_SECONDS = 5.0
DOCUMENT_CACHE_SECONDS = 300

# Schemes a browser executes, reads locally or hands to another program: never a redirect target.
REFUSED_SCHEMES = frozenset(
    {
        "javascript",
        "data",
        "file",
        "vbscript",
        "blob",
        "about",
        "filesystem",
        "view-source",
        "ftp",
        "ws",
        "wss",
    }
    | {"mailto", "tel", "sms", "chrome", "chrome-extension", "intent", "jar"}
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class ClientPolicyError(Exception):
    """A registration or metadata document the gateway refuses; ``error`` is the RFC 7591 code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str) -> None:
    """Raise ClientPolicyError unless ``uri`` is an acceptable redirect URI."""
    if len(uri) > MAX_STRING:
        raise ClientPolicyError(
            "invalid_redirect_uri", f"a redirect URI is longer than {MAX_STRING} characters"
        )
    if _CONTROL.search(uri) or any(char.isspace() for char in uri):
        raise ClientPolicyError(
            "invalid_redirect_uri", "a redirect URI holds whitespace or control characters"
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        raise ClientPolicyError("invalid_redirect_uri", "a redirect URI does not parse") from None
    scheme = parts.scheme.lower()
    shown = uri[:80]
    if "#" in uri:
        raise ClientPolicyError("invalid_redirect_uri", f"{shown}: a redirect URI must not have a fragment")
    if not _SCHEME.fullmatch(scheme):
        raise ClientPolicyError("invalid_redirect_uri", f"{shown}: a redirect URI needs a scheme")
    if scheme in REFUSED_SCHEMES:
        raise ClientPolicyError("invalid_redirect_uri", f"{shown}: the {scheme}: scheme is not allowed")
    if parts.username is not None or parts.password is not None:
        raise ClientPolicyError("invalid_redirect_uri", f"{shown}: a redirect URI must not hold credentials")
    if scheme == "https":
        if not host:
            raise ClientPolicyError("invalid_redirect_uri", f"{shown}: an https redirect URI needs a host")
    elif scheme == "http":
        if not is_loopback(host):
            raise ClientPolicyError(
                "invalid_redirect_uri",
                f"{shown}: http is allowed on a loopback address only (127.0.0.1, [::1], localhost); "
                "use https",
            )
    elif "." not in scheme and not parts.path.startswith("/"):
        # RFC 8252 §7.1: a private-use scheme names the app (reverse domain), and the URI has a path
        raise ClientPolicyError(
            "invalid_redirect_uri",
            f"{shown}: a native app's private-use scheme needs a path (com.example.app:/callback)",
        )


def check_client_metadata(document: dict[str, Any]) -> None:
    """Caps on every field of a registration or metadata document, and the redirect URI policy."""
    for key, value in document.items():
        if len(key) > 64:
            raise ClientPolicyError("invalid_client_metadata", "a metadata field name is too long")
        if isinstance(value, str):
            limit = MAX_NAME if key == "client_name" else MAX_STRING
            if len(value) > limit:
                raise ClientPolicyError("invalid_client_metadata", f"{key} is longer than {limit} characters")
            if _CONTROL.search(value):
                raise ClientPolicyError("invalid_client_metadata", f"{key} holds control characters")
        elif isinstance(value, list):
            if len(value) > MAX_ITEMS:
                raise ClientPolicyError("invalid_client_metadata", f"{key} has more than {MAX_ITEMS} entries")
            for item in value:
                if key == "redirect_uris" and isinstance(item, str):
                    continue  # check_redirect_uri below, with the specific error
                if not isinstance(item, str) or len(item) > MAX_STRING or _CONTROL.search(item):
                    raise ClientPolicyError(
                        "invalid_client_metadata",
                        f"each entry of {key} must be a string of at most {MAX_STRING} characters",
                    )
        elif isinstance(value, dict):
            raise ClientPolicyError("invalid_client_metadata", f"{key}: objects are not accepted")
    redirect_uris = document.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        raise ClientPolicyError("invalid_redirect_uri", "redirect_uris must list at least one URI")
    for uri in redirect_uris:
        check_redirect_uri(uri)


def _json_object(body: bytes, max_bytes: int, error: str, what: str) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise ClientPolicyError(error, f"{what} is larger than {max_bytes} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise ClientPolicyError(error, f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise ClientPolicyError(error, f"{what} must be a JSON object")
    return document


def check_registration(body: bytes) -> None:
    """The policy for ``POST /register``, before the SDK reads the registration."""
    check_client_metadata(
        _json_object(body, REGISTRATION_MAX_BYTES, "invalid_client_metadata", "the registration")
    )


# -- Client ID Metadata Documents ------------------------------------------------------------------


def is_metadata_document_id(client_id: str) -> bool:
    return client_id.startswith("https://")


def check_metadata_document_url(url: str) -> str:
    """The URL's host, or ClientPolicyError when the URL cannot be a client ID."""
    if len(url) > MAX_STRING:
        raise ClientPolicyError("invalid_client", "the client ID URL is too long")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ClientPolicyError("invalid_client", "the client ID URL does not parse") from None
    if parts.scheme != "https" or not host:
        raise ClientPolicyError("invalid_client", "a client ID URL must be https with a host")
    if parts.fragment or "#" in url or parts.username is not None or parts.password is not None:
        raise ClientPolicyError("invalid_client", "a client ID URL has no fragment and no credentials")
    segments = parts.path.split("/")
    if parts.path in ("", "/") or "." in segments or ".." in segments:
        raise ClientPolicyError("invalid_client", "a client ID URL needs a path without dot segments")
    return host


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def public_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; ClientPolicyError if any is not a public one."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ClientPolicyError("invalid_client", f"the client ID host {host} does not resolve") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses or any(_refused_address(address) for address in addresses):
        raise ClientPolicyError(
            "invalid_client", f"the client ID host {host} is not on a public address: not fetched"
        )
    return addresses


async def fetch_public_https(url: str) -> bytes:
    """GET a metadata document from a public https address: no redirects, at most
    DOCUMENT_MAX_BYTES, within DOCUMENT_TIMEOUT_SECONDS.

    The address check happens before the request; a DNS answer that changes between the check and
    the connection (rebinding) is not prevented here."""
    host = check_metadata_document_url(url)
    await public_addresses(host, urlsplit(url).port or 443)
    body = bytearray()
    try:
        with anyio.fail_after(DOCUMENT_TIMEOUT_SECONDS):
            async with (
                httpx.AsyncClient(timeout=DOCUMENT_TIMEOUT_SECONDS, follow_redirects=False) as http,
                http.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ClientPolicyError(
                        "invalid_client", f"the client metadata document answered {response.status_code}"
                    )
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > DOCUMENT_MAX_BYTES:
                        raise ClientPolicyError(
                            "invalid_client",
                            f"the client metadata document is larger than {DOCUMENT_MAX_BYTES} bytes",
                        )
    except TimeoutError:
        raise ClientPolicyError("invalid_client", "the client metadata document took too long") from None
    except httpx.HTTPError as error:
        raise ClientPolicyError(
            "invalid_client", f"cannot fetch the client metadata document ({type(error).__name__})"
        ) from None
    return bytes(body)


def parse_metadata_document(url: str, body: bytes) -> OAuthClientInformationFull:
    """The client a fetched metadata document describes, or ClientPolicyError."""
    document = _json_object(body, DOCUMENT_MAX_BYTES, "invalid_client", "the client metadata document")
    if document.get("client_id") != url:
        raise ClientPolicyError("invalid_client", "the client metadata document names another client_id")
    if any(key.startswith("client_secret") for key in document):
        raise ClientPolicyError("invalid_client", "a client metadata document must not hold a secret")
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise ClientPolicyError(
            "invalid_client",
            f"token_endpoint_auth_method {method!r}: only public clients (none) are supported",
        )
    try:
        check_client_metadata(document)
    except ClientPolicyError as error:
        raise ClientPolicyError("invalid_client", error.description) from None
    try:
        return OAuthClientInformationFull.model_validate(
            {
                **document,
                "token_endpoint_auth_method": "none",
                "grant_types": document.get("grant_types") or ["authorization_code", "refresh_token"],
                "scope": " ".join(ALL_SCOPES),  # what a login gets is decided per user (ScopePolicy)
            }
        )
    except ValidationError as error:
        raise ClientPolicyError(
            "invalid_client", f"the client metadata document is invalid ({error.error_count()} errors)"
        ) from None


class MetadataDocumentClients:
    """Clients identified by a metadata document URL, fetched once per DOCUMENT_CACHE_SECONDS."""

    def __init__(self, cache: Cache, fetch: Callable[[str], Awaitable[bytes]] | None = None) -> None:
        self.cache = cache
        self.fetch = fetch or fetch_public_https

    async def get(self, url: str) -> OAuthClientInformationFull | None:
        """The client, or None (the reason logged) when its document cannot be used."""
        key = "oauth:client-metadata:" + hashlib.sha256(url.encode()).hexdigest()
        cached = await anyio.to_thread.run_sync(self.cache.get, key)
        if isinstance(cached, dict):
            return OAuthClientInformationFull.model_validate(cached)
        try:
            check_metadata_document_url(url)
            client = parse_metadata_document(url, await self.fetch(url))
        except ClientPolicyError as error:
            logger.info("client metadata document %r refused: %s", url[:200], error.description)
            return None
        await anyio.to_thread.run_sync(
            self.cache.set, key, client.model_dump(mode="json", exclude_none=True), DOCUMENT_CACHE_SECONDS
        )
        return client

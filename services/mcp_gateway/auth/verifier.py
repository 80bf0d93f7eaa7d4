"""Bearer-JWT verification against an issuer's JWKS (the gateway as an OAuth resource server).

The key set is discovered from the issuer's metadata (OIDC discovery, then RFC 8414), cached, and
fetched again when a token names an unknown ``kid`` - at most once per ``min_refresh_seconds`` so a
stream of forged kids cannot turn the gateway into a request amplifier against the IdP.
Only asymmetric algorithms are accepted (RS256/ES256 by default): never ``none`` nor HS*, so a
public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx2 as httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.server.auth.provider import AccessToken

logger = logging.getLogger("tagcompliance.gateway.auth")
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})


class TokenRejected(Exception):
    """Why a token was refused (logged at debug level, never returned to the caller)."""


class JwtTokenVerifier:
    """``mcp.server.auth.provider.TokenVerifier`` for JWT access tokens (RFC 9068 style)."""

    def __init__(
        self,
        issuer: str,
        audiences: Sequence[str],
        *,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway_seconds: int = 30,
        jwks_url: str | None = None,
        min_refresh_seconds: float = 30.0,
        http_timeout_seconds: float = 5.0,
        key_set: KeySet | None = None,
        session_check: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """``key_set`` fixes the keys (the gateway's own, when it is the authorization server) instead
        of fetching the issuer's JWKS; ``session_check`` must also accept a token whose signature and
        claims are valid (the gateway's revocation check against ``oauth_sessions``)."""
        bad = set(algorithms) - ALLOWED_ALGORITHMS
        if bad or not algorithms:
            raise ValueError(f"unsupported token algorithms {sorted(bad)}: only asymmetric ones are allowed")
        if not audiences:
            raise ValueError("at least one accepted audience (the resource URL) is required")
        self.issuer = issuer
        self.audiences = [str(audience) for audience in audiences]
        self.algorithms = list(algorithms)
        self.leeway_seconds = leeway_seconds
        self.jwks_url = jwks_url
        self.min_refresh_seconds = min_refresh_seconds
        self.http_timeout_seconds = http_timeout_seconds
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()
        self._static = key_set is not None
        self.session_check = session_check
        if key_set is not None:
            self._keys = key_set
            self._kids = {str(key.kid) for key in key_set.keys if key.kid}
            self._fetched_at = time.monotonic()

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self._verify(token)
        except TokenRejected as reason:
            logger.info("bearer token rejected: %s", reason)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            logger.info("bearer token rejected: %s", type(error).__name__)
        except httpx.HTTPError as error:
            logger.warning("cannot fetch the issuer's signing keys: %s", error)
        return None

    async def _verify(self, token: str) -> AccessToken:
        header = _unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise TokenRejected(f"algorithm {alg!r} is not allowed")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("no kid in the token header")
        keys = await self._key_set(kid)
        decoded = jwt.decode(token, keys, algorithms=self.algorithms)
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=self.leeway_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": self.audiences},
            exp={"essential": True},
            sub={"essential": True},
        )
        registry.validate(claims)
        scopes = _scopes(claims)
        audience = claims["aud"]
        resource = next(
            (
                value
                for value in ([audience] if isinstance(audience, str) else audience)
                if value in self.audiences
            ),
            None,
        )
        if self.session_check is not None:
            try:
                live = await self.session_check(token)
            except Exception as error:  # the store is down: refuse, say why in the log (not the token)
                logger.warning("cannot check the token's session: %s", type(error).__name__)
                live = False
            if not live:
                raise TokenRejected("no live session for this token (revoked, expired or never issued)")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("cid") or "unknown"),
            scopes=scopes,
            # exp plus the leeway already allowed above: the SDK's bearer middleware checks
            # expires_at again against the bare clock, which would ignore AUTH_LEEWAY_SECONDS
            expires_at=int(claims["exp"]) + self.leeway_seconds,
            resource=resource,
            subject=str(claims["sub"]),
            claims={"iss": claims["iss"], "jti": claims.get("jti")},
        )

    async def _key_set(self, kid: str) -> KeySet:
        async with self._lock:
            now = time.monotonic()
            stale = not self._static and (
                self._fetched_at is None
                or (kid not in self._kids and now - self._fetched_at >= self.min_refresh_seconds)
            )
            if stale:
                await self._refresh()
            if kid not in self._kids or self._keys is None:
                raise TokenRejected(f"unknown kid {kid!r}")
            return self._keys

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        async with httpx.AsyncClient(timeout=self.http_timeout_seconds, follow_redirects=False) as client:
            jwks_url = self.jwks_url or await self._discover_jwks_url(client)
            response = await client.get(jwks_url)
            response.raise_for_status()
            document = response.json()
        keys = [key for key in document.get("keys", []) if key.get("kty") in ("RSA", "EC") and key.get("kid")]
        self._keys = KeySet.import_key_set({"keys": keys})
        self._kids = {key["kid"] for key in keys}
        logger.info("loaded %d signing keys from %s", len(keys), jwks_url)

    async def _discover_jwks_url(self, client: httpx.AsyncClient) -> str:
        base = self.issuer.rstrip("/")
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            response = await client.get(base + path)
            if response.status_code != 200:
                continue
            metadata = response.json()
            if metadata.get("issuer") != self.issuer:
                raise TokenRejected(f"issuer metadata names {metadata.get('issuer')!r}, not {self.issuer!r}")
            if metadata.get("jwks_uri"):
                self.jwks_url = str(metadata["jwks_uri"])
                return self.jwks_url
        raise TokenRejected(f"{self.issuer} publishes no jwks_uri")


def _unverified_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("not a compact JWS")
    padded = parts[0] + "=" * (-len(parts[0]) % 4)
    header = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(header, dict):
        raise TokenRejected("malformed header")
    return header


def _scopes(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(item) for item in raw]
    return []

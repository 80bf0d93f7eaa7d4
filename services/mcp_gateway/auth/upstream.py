"""The company IdP, as an OpenID Connect relying party: users log in there, never here.

Discovery from ``{issuer}/.well-known/openid-configuration`` (its ``issuer`` must match), the
authorization-code flow with PKCE S256 and a nonce, the code exchanged at the token endpoint with
the client secret, and the ID token verified with joserfc against the IdP's JWKS: signature (the
asymmetric algorithms only), ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat`` and ``nonce``.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import httpx2 as httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, ValidationError

logger = logging.getLogger("tagcompliance.gateway.auth")
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class UpstreamLoginError(Exception):
    """The IdP login could not be completed; the message names why (never a token or secret)."""


class OidcMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_endpoint_auth_methods_supported: list[str] | None = None
    id_token_signing_alg_values_supported: list[str] | None = None


class UserIdentity(BaseModel):
    """Who logged in at the IdP, as the gateway records them."""

    user_id: str
    subject: str
    email: str | None = None
    groups: list[str] = []


class OidcUpstream:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: list[str],
        user_claim: str = "email",
        leeway_seconds: int = 30,
        http_timeout_seconds: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = ["openid", *[scope for scope in scopes if scope != "openid"]]
        self.user_claim = user_claim
        self.leeway_seconds = leeway_seconds
        self.http_timeout_seconds = http_timeout_seconds
        self._metadata: OidcMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at = 0.0
        self._kids: set[str] = set()
        self._lock = anyio.Lock()

    def __repr__(self) -> str:  # never shows the secret
        return f"OidcUpstream(issuer={self.issuer!r}, client_id={self.client_id!r})"

    async def metadata(self) -> OidcMetadata:
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=self.http_timeout_seconds) as http:
                    response = await http.get(url)
                response.raise_for_status()
                metadata = OidcMetadata.model_validate(response.json())
            except (httpx.HTTPError, ValueError, ValidationError) as error:
                raise UpstreamLoginError(
                    f"cannot read the IdP's OIDC discovery document {url}: {error}"
                ) from None
            if metadata.issuer != self.issuer:
                raise UpstreamLoginError(
                    f"the IdP's metadata names issuer {metadata.issuer!r}, not {self.issuer!r}"
                )
            self._metadata = metadata
        return self._metadata

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_challenge: str) -> str:
        metadata = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def complete_login(
        self, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> UserIdentity:
        """Exchange the IdP's code and verify the ID token; the user it names."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        methods = metadata.token_endpoint_auth_methods_supported or ["client_secret_basic"]
        auth: tuple[str, str] | None = None
        if "client_secret_basic" in methods:
            # RFC 6749 2.3.1: both are form-urlencoded before going into the Basic header
            auth = (quote(self.client_id, safe=""), quote(self._client_secret, safe=""))
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout_seconds) as http:
                response = await http.post(metadata.token_endpoint, data=form, auth=auth)
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise UpstreamLoginError(f"the IdP's token endpoint failed: {type(error).__name__}") from None
        if response.status_code != 200 or not isinstance(body, dict):
            error_code = body.get("error") if isinstance(body, dict) else None
            raise UpstreamLoginError(
                f"the IdP refused the code exchange ({response.status_code} {error_code})"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamLoginError("the IdP's token response has no id_token")
        claims = await self.verify_id_token(id_token, nonce)
        return self._identity(claims)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        algorithms = [
            alg
            for alg in (metadata.id_token_signing_alg_values_supported or ["RS256"])
            if alg in ID_TOKEN_ALGORITHMS
        ] or ["RS256"]
        try:
            kid = _unverified_kid(id_token)
            keys = await self._key_set(refresh=False)
            if kid is not None and kid not in self._kids:  # the IdP rotated its keys
                keys = await self._key_set(refresh=True)
            claims = jwt.decode(id_token, keys, algorithms=algorithms).claims
            jwt.JWTClaimsRegistry(
                leeway=self.leeway_seconds,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
            raise UpstreamLoginError(
                f"the IdP's ID token is invalid ({type(error).__name__}: {error})"
            ) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise UpstreamLoginError(
                "the IdP's ID token names several audiences and another authorized party"
            )
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise UpstreamLoginError("the IdP's ID token nonce does not match this login")
        return claims

    def _identity(self, claims: dict[str, Any]) -> UserIdentity:
        subject = str(claims["sub"])
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        chosen = claims.get(self.user_claim)
        user_id = str(chosen) if isinstance(chosen, str) and chosen else subject
        raw_groups = claims.get("groups", claims.get("cognito:groups", []))
        groups = [str(group) for group in raw_groups] if isinstance(raw_groups, list) else []
        return UserIdentity(user_id=user_id[:255], subject=subject, email=email, groups=groups)

    async def _key_set(self, *, refresh: bool) -> KeySet:
        async with self._lock:
            stale = self._keys is None or (refresh and time.monotonic() - self._keys_fetched_at > 30)
            if stale:
                metadata = await self.metadata()
                try:
                    async with httpx.AsyncClient(timeout=self.http_timeout_seconds) as http:
                        response = await http.get(metadata.jwks_uri)
                    response.raise_for_status()
                    keys = [key for key in response.json().get("keys", []) if key.get("kty") in ("RSA", "EC")]
                except (httpx.HTTPError, ValueError, AttributeError) as error:
                    raise UpstreamLoginError(f"cannot read the IdP's signing keys: {error}") from None
                self._keys = KeySet.import_key_set({"keys": keys})
                self._kids = {str(key["kid"]) for key in keys if key.get("kid")}
                self._keys_fetched_at = time.monotonic()
            assert self._keys is not None
            return self._keys


def _unverified_kid(token: str) -> str | None:
    header_part = token.split(".", 1)[0]
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None

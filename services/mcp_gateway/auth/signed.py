"""Login states and consent requests, signed by the gateway so that any gateway task can finish them.

The request an MCP client made to ``/authorize`` travels through the IdP and back in ``state`` as a
short-lived JWT signed with the gateway's key (``STATE_TYPE``, audience the callback URL); the
consent page carries the request the user answers the same way (``CONSENT_TYPE``, audience the
consent URL). Both live ``LOGIN_SECONDS``; a token of the other type, audience or issuer is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

LOGIN_SECONDS = 600
STATE_TYPE = "oauth-login+jwt"
CONSENT_TYPE = "oauth-consent+jwt"


@dataclass(frozen=True, slots=True)
class SignedRequests:
    """Signs and reads the login states and consent requests of one issuer."""

    issuer: str
    key: RSAKey

    def sign(self, typ: str, audience: str, request_id: str, claims: dict[str, Any]) -> str:
        """A login state or consent request: signed by this server, valid for LOGIN_SECONDS."""
        now = int(time.time())
        registered = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + LOGIN_SECONDS,
            "jti": request_id,
        }
        return jwt.encode(
            {"alg": "RS256", "kid": self.key.kid, "typ": typ}, {**registered, **claims}, self.key
        )

    def read(self, token: str | None, typ: str, audience: str, *essential: str) -> dict[str, Any] | None:
        """The claims of a login state or consent request this server signed, or None."""
        if not token or len(token) > 8192:
            return None
        try:
            decoded = jwt.decode(token, self.key, algorithms=["RS256"])
            if decoded.header.get("typ") != typ:
                return None
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                jti={"essential": True},
                **{name: {"essential": True} for name in essential},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None
        return decoded.claims

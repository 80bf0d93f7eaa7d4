"""How the authorization server keeps secrets and checks PKCE: SHA-256 digests, base64url-encoded
where they travel (RFC 7636 S256)."""

from __future__ import annotations

import base64
import hashlib


def token_hash(value: str) -> str:
    """How every token, code and client secret is stored: its SHA-256 hex digest."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256_challenge(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier."""
    return b64url(hashlib.sha256(verifier.encode()).digest())

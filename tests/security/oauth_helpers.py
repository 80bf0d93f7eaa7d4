"""Helpers of the OAuth tests of the security suite (the gateway fixtures are in ``conftest.py``)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from tests.auth.conftest import AuthStack


def register(gateway: AuthStack, redirect_uris: list[str], **metadata: Any) -> httpx.Response:
    """``POST /register`` as any client may: open dynamic registration (RFC 7591)."""
    return httpx.post(
        f"{gateway.issuer}/register",
        json={
            "client_name": "security-tests",
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "tag:read admin",
            **metadata,
        },
        timeout=30,
    )

"""The OAuth authorization server's records and their store port (``OAuthStore``).

Only the gateway's authorization server (``services/mcp_gateway/auth``) uses them, but they stay in
the core: the SQL store builds and reads these records, and the core never imports ``services/``.
Tokens, codes and secrets are kept as SHA-256 hex digests only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OAuthClientRecord:
    """An OAuth client registered with the gateway's authorization server (``oauth_clients``)."""

    client_id: str
    client_secret_hash: str | None  # SHA-256 hex of the secret; None for public clients
    metadata: dict[str, Any]  # the RFC 7591 registration, without the secret
    created_at: datetime
    last_used_at: datetime | None = None  # its first code exchange; unused clients are removed


@dataclass(frozen=True, slots=True)
class OAuthCodeRecord:
    """An authorization code (``oauth_authorization_codes``), kept as its SHA-256 hex digest."""

    code_hash: str
    grant_id: str  # the grant its exchange starts (revoked if the code is replayed)
    client_id: str
    user_id: str
    scopes: list[str]
    code_challenge: str  # PKCE S256 challenge
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    resource: str | None
    expires_at: datetime
    created_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OAuthSessionRecord:
    """One issued access/refresh token pair (the spec's ``oauth_sessions`` row), hashes only."""

    grant_id: str
    client_id: str
    user_id: str
    access_token_hash: str  # SHA-256 hex
    refresh_token_hash: str | None  # SHA-256 hex
    scopes: list[str]
    expires_at: datetime  # of the access token
    refresh_expires_at: datetime | None
    resource: str | None
    created_at: datetime
    rotated_at: datetime | None = None  # its refresh token was exchanged for the next pair
    revoked_at: datetime | None = None
    id: int | None = None  # assigned by the store


@dataclass(frozen=True, slots=True)
class OAuthConsentRecord:
    """A user's consent (``oauth_consents``): this client may receive codes at this redirect URI for
    exactly these scopes, without asking again, until ``expires_at``."""

    consent_id: str
    user_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime


class OAuthStore(Protocol):
    """Clients, authorization codes, token pairs (sessions) and consents; hashes only."""

    def save_oauth_client(self, record: OAuthClientRecord) -> None:
        """Register a client; StoreError if the id is taken."""
        ...

    def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None: ...

    def save_oauth_code(self, record: OAuthCodeRecord) -> None: ...

    def get_oauth_code(self, code_hash: str) -> OAuthCodeRecord | None:
        """The code, used or not (a used one lets the caller detect a replay)."""
        ...

    def consume_oauth_code(self, code_hash: str, now: datetime) -> bool:
        """Mark the code used: True for exactly one caller, and only before it expires."""
        ...

    def create_oauth_session(self, record: OAuthSessionRecord) -> None: ...

    def find_oauth_session(
        self, *, access_token_hash: str | None = None, refresh_token_hash: str | None = None
    ) -> OAuthSessionRecord | None:
        """The row holding that access or refresh token hash (exactly one of the two)."""
        ...

    def rotate_oauth_session(
        self, refresh_token_hash: str, successor: OAuthSessionRecord, now: datetime
    ) -> bool:
        """Atomically mark the row of ``refresh_token_hash`` rotated and insert ``successor``.

        False, and nothing written, when that row is unknown, already rotated or revoked.
        """
        ...

    def revoke_oauth_grant(self, grant_id: str, now: datetime) -> int:
        """Revoke every token pair of the grant; the number of rows newly revoked."""
        ...

    def delete_expired_oauth(self, now: datetime) -> int:
        """Drop codes, token pairs and consents that can no longer be used; the number of rows deleted."""
        ...

    def mark_oauth_client_used(self, client_id: str, now: datetime) -> None:
        """Record the client's first use (a code exchange); later calls change nothing."""
        ...

    def delete_unused_oauth_clients(self, registered_before: datetime) -> int:
        """Remove clients registered before then that were never used; the number removed."""
        ...

    def save_oauth_consent(self, record: OAuthConsentRecord) -> None:
        """Remember a consent, replacing the user's earlier ones for the same client and redirect URI."""
        ...

    def find_oauth_consent(
        self, user_id: str, client_id: str, redirect_uri: str, scopes: list[str], now: datetime
    ) -> OAuthConsentRecord | None:
        """The user's live consent for exactly that client, redirect URI and set of scopes."""
        ...

    def list_oauth_consents(self, user_id: str, now: datetime) -> list[OAuthConsentRecord]:
        """The user's live consents, newest first."""
        ...

    def revoke_oauth_consent(self, user_id: str, consent_id: str, now: datetime) -> OAuthConsentRecord | None:
        """Delete one of the user's consents and revoke the user's token pairs of its client; the
        deleted consent, or None when the user has no consent of that id."""
        ...

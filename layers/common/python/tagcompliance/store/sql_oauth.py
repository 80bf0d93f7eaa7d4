"""The SQL store's OAuth state (``OAuthStore``): hashes only, never a raw token, code or secret."""

from __future__ import annotations

from datetime import datetime

from tagcompliance.errors import InvalidInputError

from .oauth import OAuthClientRecord, OAuthCodeRecord, OAuthConsentRecord, OAuthSessionRecord
from .sqlbase import SqlBase, Table, utc


class OAuthSql(SqlBase):
    """``OAuthStore`` over SQL."""

    _OAUTH_CLIENTS = Table(
        "oauth_clients",
        OAuthClientRecord,
        {"metadata": "json", "created_at": "datetime", "last_used_at": "datetime"},
    )
    _OAUTH_CONSENTS = Table(
        "oauth_consents",
        OAuthConsentRecord,
        {"scopes": "text_array", "created_at": "datetime", "expires_at": "datetime"},
    )
    _OAUTH_CODES = Table(
        "oauth_authorization_codes",
        OAuthCodeRecord,
        {
            "scopes": "text_array",
            "redirect_uri_provided_explicitly": "bool",
            "expires_at": "datetime",
            "created_at": "datetime",
            "used_at": "datetime",
        },
    )
    _OAUTH_SESSIONS = Table(
        "oauth_sessions",
        OAuthSessionRecord,
        {
            "scopes": "text_array",
            "expires_at": "datetime",
            "refresh_expires_at": "datetime",
            "created_at": "datetime",
            "rotated_at": "datetime",
            "revoked_at": "datetime",
        },
        generated=frozenset({"id"}),
    )

    def save_oauth_client(self, record: OAuthClientRecord) -> None:
        row = self._encode(self._OAUTH_CLIENTS, record)
        with (
            self._errors(f"register OAuth client {record.client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_CLIENTS.insert_sql, row)

    def get_oauth_client(self, client_id: str) -> OAuthClientRecord | None:
        sql = f"{self._OAUTH_CLIENTS.select_sql} WHERE client_id = ?"
        with self._errors("read an OAuth client"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (client_id,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_CLIENTS, row)

    def save_oauth_code(self, record: OAuthCodeRecord) -> None:
        row = self._encode(self._OAUTH_CODES, record)
        with (
            self._errors("save an OAuth authorization code"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_CODES.insert_sql, row)

    def get_oauth_code(self, code_hash: str) -> OAuthCodeRecord | None:
        sql = f"{self._OAUTH_CODES.select_sql} WHERE code_hash = ?"
        with self._errors("read an OAuth authorization code"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (code_hash,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_CODES, row)

    def consume_oauth_code(self, code_hash: str, now: datetime) -> bool:
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        sql = (
            "UPDATE oauth_authorization_codes SET used_at = ? "
            "WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?"
        )
        with (
            self._errors("use an OAuth authorization code"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return bool(self._execute(conn, sql, (stamp, code_hash, stamp)).rowcount == 1)

    def create_oauth_session(self, record: OAuthSessionRecord) -> None:
        row = self._encode(self._OAUTH_SESSIONS, record)
        with (
            self._errors(f"save an OAuth session of grant {record.grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, self._OAUTH_SESSIONS.insert_sql, row)

    def find_oauth_session(
        self, *, access_token_hash: str | None = None, refresh_token_hash: str | None = None
    ) -> OAuthSessionRecord | None:
        if (access_token_hash is None) == (refresh_token_hash is None):
            raise InvalidInputError(
                "find_oauth_session needs exactly one of access_token_hash and refresh_token_hash"
            )
        column = "access_token_hash" if access_token_hash is not None else "refresh_token_hash"
        sql = f"{self._OAUTH_SESSIONS.select_sql} WHERE {column} = ?"
        with self._errors("read an OAuth session"), self._dialect.connection() as conn:
            row = self._execute(conn, sql, (access_token_hash or refresh_token_hash,)).fetchone()
        return None if row is None else self._decode(self._OAUTH_SESSIONS, row)

    def rotate_oauth_session(
        self, refresh_token_hash: str, successor: OAuthSessionRecord, now: datetime
    ) -> bool:
        # The conditional UPDATE decides: of concurrent refreshes with one token exactly one wins.
        sql = (
            "UPDATE oauth_sessions SET rotated_at = ? "
            "WHERE refresh_token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL AND grant_id = ?"
        )
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        row = self._encode(self._OAUTH_SESSIONS, successor)
        with (
            self._errors(f"rotate an OAuth session of grant {successor.grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            if self._execute(conn, sql, (stamp, refresh_token_hash, successor.grant_id)).rowcount != 1:
                return False
            self._execute(conn, self._OAUTH_SESSIONS.insert_sql, row)
            return True

    def revoke_oauth_grant(self, grant_id: str, now: datetime) -> int:
        sql = "UPDATE oauth_sessions SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL"
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        with (
            self._errors(f"revoke OAuth grant {grant_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return int(self._execute(conn, sql, (stamp, grant_id)).rowcount)

    def delete_expired_oauth(self, now: datetime) -> int:
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        with (
            self._errors("delete expired OAuth codes and sessions"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            codes = self._execute(
                conn, "DELETE FROM oauth_authorization_codes WHERE expires_at <= ?", (stamp,)
            )
            sessions = self._execute(
                conn,
                "DELETE FROM oauth_sessions WHERE expires_at <= ? AND (refresh_expires_at IS NULL "
                "OR refresh_expires_at <= ? OR rotated_at IS NOT NULL OR revoked_at IS NOT NULL)",
                (stamp, stamp),
            )
            consents = self._execute(conn, "DELETE FROM oauth_consents WHERE expires_at <= ?", (stamp,))
            return int(codes.rowcount) + int(sessions.rowcount) + int(consents.rowcount)

    def mark_oauth_client_used(self, client_id: str, now: datetime) -> None:
        sql = "UPDATE oauth_clients SET last_used_at = ? WHERE client_id = ? AND last_used_at IS NULL"
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        with (
            self._errors(f"record the use of OAuth client {client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(conn, sql, (stamp, client_id))

    def delete_unused_oauth_clients(self, registered_before: datetime) -> int:
        sql = "DELETE FROM oauth_clients WHERE last_used_at IS NULL AND created_at <= ?"
        stamp = self._dialect.encode_datetime(utc(registered_before, "registered_before"))
        with (
            self._errors("delete unused OAuth clients"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            return int(self._execute(conn, sql, (stamp,)).rowcount)

    def save_oauth_consent(self, record: OAuthConsentRecord) -> None:
        row = self._encode(self._OAUTH_CONSENTS, record)
        with (
            self._errors(f"save the consent of {record.user_id} for OAuth client {record.client_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            self._execute(
                conn,
                "DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ? AND redirect_uri = ?",
                (record.user_id, record.client_id, record.redirect_uri),
            )
            self._execute(conn, self._OAUTH_CONSENTS.insert_sql, row)

    def find_oauth_consent(
        self, user_id: str, client_id: str, redirect_uri: str, scopes: list[str], now: datetime
    ) -> OAuthConsentRecord | None:
        sql = (
            f"{self._OAUTH_CONSENTS.select_sql} WHERE user_id = ? AND client_id = ? AND redirect_uri = ? "
            "AND expires_at > ?"
        )
        params = (user_id, client_id, redirect_uri, self._dialect.encode_datetime(utc(now, "now")))
        with self._errors("read an OAuth consent"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        # Scopes are compared as sets in Python: the two dialects store arrays differently.
        wanted = set(scopes)
        return next(
            (
                record
                for record in (self._decode(self._OAUTH_CONSENTS, row) for row in rows)
                if set(record.scopes) == wanted
            ),
            None,
        )

    def list_oauth_consents(self, user_id: str, now: datetime) -> list[OAuthConsentRecord]:
        sql = (
            f"{self._OAUTH_CONSENTS.select_sql} WHERE user_id = ? AND expires_at > ? "
            "ORDER BY created_at DESC, consent_id"
        )
        params = (user_id, self._dialect.encode_datetime(utc(now, "now")))
        with self._errors("list OAuth consents"), self._dialect.connection() as conn:
            rows = self._execute(conn, sql, params).fetchall()
        return [self._decode(self._OAUTH_CONSENTS, row) for row in rows]

    def revoke_oauth_consent(self, user_id: str, consent_id: str, now: datetime) -> OAuthConsentRecord | None:
        select = f"{self._OAUTH_CONSENTS.select_sql} WHERE consent_id = ? AND user_id = ?"
        stamp = self._dialect.encode_datetime(utc(now, "now"))
        with (
            self._errors(f"revoke OAuth consent {consent_id}"),
            self._dialect.connection() as conn,
            self._dialect.transaction(conn),
        ):
            row = self._execute(conn, select, (consent_id, user_id)).fetchone()
            if row is None:
                return None
            record: OAuthConsentRecord = self._decode(self._OAUTH_CONSENTS, row)
            self._execute(conn, "DELETE FROM oauth_consents WHERE consent_id = ?", (consent_id,))
            self._execute(
                conn,
                "UPDATE oauth_sessions SET revoked_at = ? "
                "WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
                (stamp, user_id, record.client_id),
            )
            return record

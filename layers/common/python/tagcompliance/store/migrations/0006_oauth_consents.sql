-- Consent and client hygiene for the gateway's OAuth authorization server (issue 13).

-- A user's consent for one client, one redirect URI and one set of scopes, until expires_at: while
-- it lives, a login of that user for the same client, redirect URI and scopes skips the consent page.
CREATE TABLE oauth_consents (
    consent_id VARCHAR(64) PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    client_id VARCHAR(2048) NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes {{TEXT_ARRAY}} NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    expires_at {{TIMESTAMPTZ}} NOT NULL
);

CREATE INDEX idx_oauth_consents_user ON oauth_consents (user_id, client_id);
CREATE INDEX idx_oauth_consents_expires_at ON oauth_consents (expires_at);

-- When a client first exchanged a code; a client still unused AUTH_UNUSED_CLIENT_HOURS after its
-- registration is removed.
ALTER TABLE oauth_clients ADD COLUMN last_used_at {{TIMESTAMPTZ}};
CREATE INDEX idx_oauth_clients_created_at ON oauth_clients (created_at);

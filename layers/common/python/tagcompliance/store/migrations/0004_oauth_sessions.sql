-- The gateway as the OAuth authorization server of the MCP flow (services/mcp_gateway/auth).
-- Every secret is stored as its SHA-256 hex digest only: access and refresh tokens, authorization
-- codes and client secrets. A raw token never reaches the database.

-- oauth_sessions (created in 0001 with the spec's columns): one row per issued token pair. A grant
-- (one user's consent for one client) starts with the pair issued for its authorization code; each
-- refresh marks the row rotated and adds the next pair under the same grant_id. Revoking a grant, or
-- presenting a rotated-out refresh token again, revokes every row of the grant.
ALTER TABLE oauth_sessions ADD COLUMN grant_id VARCHAR(64);
ALTER TABLE oauth_sessions ADD COLUMN client_id VARCHAR(255);
ALTER TABLE oauth_sessions ADD COLUMN resource TEXT;
ALTER TABLE oauth_sessions ADD COLUMN refresh_expires_at {{TIMESTAMPTZ}};
ALTER TABLE oauth_sessions ADD COLUMN rotated_at {{TIMESTAMPTZ}};
ALTER TABLE oauth_sessions ADD COLUMN revoked_at {{TIMESTAMPTZ}};

CREATE UNIQUE INDEX idx_oauth_sessions_access_token_hash ON oauth_sessions (access_token_hash);
CREATE UNIQUE INDEX idx_oauth_sessions_refresh_token_hash ON oauth_sessions (refresh_token_hash);
CREATE INDEX idx_oauth_sessions_grant_id ON oauth_sessions (grant_id);

-- Clients registered dynamically (RFC 7591); metadata is the registration minus the secret.
CREATE TABLE oauth_clients (
    client_id VARCHAR(255) PRIMARY KEY,
    client_secret_hash VARCHAR(64),
    metadata {{JSON}} NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}}
);

-- Authorization codes (single use, minutes long); used_at is set by the one exchange that wins.
CREATE TABLE oauth_authorization_codes (
    code_hash VARCHAR(64) PRIMARY KEY,
    grant_id VARCHAR(64) NOT NULL,
    client_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    scopes {{TEXT_ARRAY}} NOT NULL,
    code_challenge VARCHAR(128) NOT NULL,
    redirect_uri TEXT NOT NULL,
    redirect_uri_provided_explicitly BOOLEAN NOT NULL,
    resource TEXT,
    expires_at {{TIMESTAMPTZ}} NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    used_at {{TIMESTAMPTZ}}
);

CREATE INDEX idx_oauth_authorization_codes_expires_at ON oauth_authorization_codes (expires_at);

-- One schema for both backends: double-brace tokens are replaced per dialect (see store/sql.py):
-- BIGSERIAL_PK, SERIAL_PK, JSON, TIMESTAMPTZ, TIME, TEXT_ARRAY, INET, NOW and ARN_TEXT.
-- Statements end with a semicolon at the end of a line.

-- Every MCP tool call (the spec's audit_logs, plus the OAuth client that made the call).
CREATE TABLE audit_logs (
    id {{BIGSERIAL_PK}},
    timestamp {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    user_id VARCHAR(255) NOT NULL,
    tool_name VARCHAR(100) NOT NULL,
    parameters {{JSON}},
    result_summary {{JSON}},
    duration_ms INTEGER,
    status VARCHAR(20),
    error_message TEXT,
    client_id VARCHAR(255),
    ip_address {{INET}},
    user_agent TEXT
);

CREATE INDEX idx_audit_logs_timestamp ON audit_logs (timestamp DESC);
CREATE INDEX idx_audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX idx_audit_logs_tool_name ON audit_logs (tool_name);

CREATE TABLE oauth_sessions (
    id {{SERIAL_PK}},
    user_id VARCHAR(255) NOT NULL,
    access_token_hash VARCHAR(64) NOT NULL,
    refresh_token_hash VARCHAR(64),
    scopes {{TEXT_ARRAY}} NOT NULL,
    expires_at {{TIMESTAMPTZ}} NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}}
);

CREATE INDEX idx_oauth_sessions_user_id ON oauth_sessions (user_id);
CREATE INDEX idx_oauth_sessions_expires_at ON oauth_sessions (expires_at);

-- The spec's columns plus a cron form and the scan scope of each scheduled audit.
CREATE TABLE scheduled_audits (
    id {{SERIAL_PK}},
    schedule_id VARCHAR(50) UNIQUE NOT NULL,
    schedule_type VARCHAR(20) NOT NULL,
    time {{TIME}} NOT NULL,
    timezone VARCHAR(50) NOT NULL,
    recipients {{TEXT_ARRAY}} NOT NULL,
    format VARCHAR(20) NOT NULL,
    next_run {{TIMESTAMPTZ}} NOT NULL,
    status VARCHAR(20) NOT NULL,
    created_by VARCHAR(255) NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    cron_expression VARCHAR(100),
    resource_types {{JSON}} NOT NULL DEFAULT '[]',
    regions {{JSON}} NOT NULL DEFAULT '[]',
    last_run {{TIMESTAMPTZ}},
    updated_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}}
);

-- One row per compliance check; written once, never updated.
CREATE TABLE compliance_snapshots (
    snapshot_id TEXT PRIMARY KEY,
    created_at {{TIMESTAMPTZ}} NOT NULL,
    account_id TEXT NOT NULL,
    regions {{JSON}} NOT NULL,
    resource_types {{JSON}} NOT NULL,
    policy_digest TEXT NOT NULL,
    policy {{JSON}} NOT NULL,
    total_resources INTEGER NOT NULL,
    scanned_resources INTEGER NOT NULL,
    compliant_resources INTEGER NOT NULL,
    compliance_score DOUBLE PRECISION,
    violation_count INTEGER NOT NULL,
    counts_by_type {{JSON}} NOT NULL,
    counts_by_region {{JSON}} NOT NULL,
    counts_by_violation {{JSON}} NOT NULL,
    failed_shards {{JSON}} NOT NULL,
    "trigger" TEXT NOT NULL DEFAULT 'manual',
    scheduled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX idx_compliance_snapshots_created_at ON compliance_snapshots (created_at);

-- Each resource's tags as one snapshot saw them; drift compares two snapshots by ARN.
CREATE TABLE resource_tag_state (
    snapshot_id TEXT NOT NULL REFERENCES compliance_snapshots (snapshot_id) ON DELETE CASCADE,
    resource_arn {{ARN_TEXT}} NOT NULL,
    resource_type TEXT NOT NULL,
    region TEXT NOT NULL,
    account_id TEXT NOT NULL,
    tags {{JSON}} NOT NULL,
    compliant BOOLEAN NOT NULL,
    name TEXT,
    vpc_id TEXT,
    PRIMARY KEY (snapshot_id, resource_arn)
);

CREATE INDEX idx_resource_tag_state_resource_arn ON resource_tag_state (resource_arn);

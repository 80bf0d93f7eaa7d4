-- Agent safety (see tagcompliance.safety): single-use confirmation tokens bound to an intent
-- commit, the intent belief log, and the regret warnings shown with what users did next (the
-- corrections the regret rules learn from). Tokens are stored as SHA-256 hashes only.

CREATE TABLE safety_confirmations (
    token_hash VARCHAR(64) PRIMARY KEY,
    organization VARCHAR(100) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    client_id VARCHAR(255),
    operation VARCHAR(100) NOT NULL,
    parameters {{JSON}} NOT NULL,
    parameters_digest VARCHAR(64) NOT NULL,
    estimate {{JSON}} NOT NULL,
    belief_id VARCHAR(64),
    created_at {{TIMESTAMPTZ}} NOT NULL,
    expires_at {{TIMESTAMPTZ}} NOT NULL,
    used_at {{TIMESTAMPTZ}}
);

CREATE INDEX idx_safety_confirmations_expires_at ON safety_confirmations (expires_at);

CREATE TABLE safety_beliefs (
    belief_id VARCHAR(64) PRIMARY KEY,
    created_at {{TIMESTAMPTZ}} NOT NULL,
    organization VARCHAR(100) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    client_id VARCHAR(255),
    tool_name VARCHAR(100) NOT NULL,
    stage VARCHAR(30) NOT NULL,
    understood {{JSON}} NOT NULL,
    assumptions {{JSON}} NOT NULL,
    alternatives {{JSON}} NOT NULL,
    estimate {{JSON}} NOT NULL,
    warnings {{JSON}} NOT NULL,
    outcome {{JSON}},
    outcome_matched BOOLEAN,
    outcome_notes TEXT,
    resolved_at {{TIMESTAMPTZ}}
);

CREATE INDEX idx_safety_beliefs_org_created ON safety_beliefs (organization, created_at);
CREATE INDEX idx_safety_beliefs_caller ON safety_beliefs (user_id, tool_name, created_at);

CREATE TABLE safety_regret_events (
    id {{BIGSERIAL_PK}},
    created_at {{TIMESTAMPTZ}} NOT NULL,
    organization VARCHAR(100) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    tool_name VARCHAR(100) NOT NULL,
    rule_id VARCHAR(64) NOT NULL,
    parameter VARCHAR(64) NOT NULL,
    value {{JSON}},
    status VARCHAR(20) NOT NULL CHECK (status IN ('shown', 'corrected', 'kept')),
    resolved_at {{TIMESTAMPTZ}}
);

CREATE INDEX idx_safety_regret_events_rule ON safety_regret_events (organization, rule_id, status);
CREATE INDEX idx_safety_regret_events_caller ON safety_regret_events (user_id, tool_name, status);

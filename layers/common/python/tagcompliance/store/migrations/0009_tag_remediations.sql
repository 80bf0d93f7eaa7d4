-- The tag remediation journal (issue 17): apply_tag_remediation and undo_tag_remediation write one
-- remediation row and one item per resource BEFORE any tag is written to AWS, then each item's
-- outcome. A run that died mid-way leaves items still 'pending': the journal says what was done
-- (applied, unchanged, failed) and what was not, and undo reconciles the pending ones with AWS.

-- One run: who asked (user, client), what kind (an apply, or the undo of an earlier apply) and how
-- it ended. owner is host:pid of the process writing, so a run whose process died can be told from
-- one still in progress.
CREATE TABLE tag_remediations (
    remediation_id VARCHAR(64) PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    undoes VARCHAR(64),
    status VARCHAR(16) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    client_id VARCHAR(2048),
    account_id VARCHAR(12) NOT NULL,
    owner VARCHAR(300) NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL,
    updated_at {{TIMESTAMPTZ}} NOT NULL,
    finished_at {{TIMESTAMPTZ}},
    summary {{JSON}} NOT NULL
);

CREATE INDEX idx_tag_remediations_created_at ON tag_remediations (created_at);
CREATE INDEX idx_tag_remediations_undoes ON tag_remediations (undoes);

-- One resource of a run: its tags before, the intended change, the tags after, and the outcome
-- (pending until written; then applied, unchanged, failed, skipped or unknown).
CREATE TABLE tag_remediation_items (
    remediation_id VARCHAR(64) NOT NULL REFERENCES tag_remediations (remediation_id),
    resource_arn {{ARN_TEXT}} NOT NULL,
    resource_type VARCHAR(64) NOT NULL,
    region VARCHAR(32) NOT NULL,
    before_tags {{JSON}} NOT NULL,
    set_tags {{JSON}} NOT NULL,
    remove_keys {{JSON}} NOT NULL,
    after_tags {{JSON}} NOT NULL,
    status VARCHAR(16) NOT NULL,
    error TEXT,
    updated_at {{TIMESTAMPTZ}} NOT NULL,
    PRIMARY KEY (remediation_id, resource_arn)
);

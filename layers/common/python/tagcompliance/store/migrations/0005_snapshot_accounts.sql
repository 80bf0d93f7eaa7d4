-- Accounts first-class in snapshots (see SnapshotRecord in store/base.py).
--
-- accounts: the accounts whose resources the snapshot covers, sorted (a JSON list, like regions
-- and resource_types). account_id keeps one account id: the account whose credentials ran the scan.
-- counts_by_account: account -> {"total", "compliant", "violations"}, the shape of counts_by_type.
--
-- Existing rows: accounts is account_id split on its commas (multi-account snapshots used to store
-- the sorted account ids joined by commas; their account_id is left as written, because the
-- account that ran those scans was not recorded). counts_by_account is derived from the snapshot's
-- resource_tag_state rows (grouped by account) when every one of them is in the snapshot's single
-- account: total and compliant are counted, and all of the snapshot's violations are that
-- account's. A multi-account snapshot cannot be split that way (per-account violation counts need
-- the policy evaluated again), nor can a snapshot without resource states: those get {}.

ALTER TABLE compliance_snapshots ADD COLUMN accounts {{JSON}} NOT NULL DEFAULT '[]';
ALTER TABLE compliance_snapshots ADD COLUMN counts_by_account {{JSON}} NOT NULL DEFAULT '{}';

-- Account ids are digits; quotes and backslashes are escaped anyway so the JSON is always valid.
UPDATE compliance_snapshots
SET accounts = CAST(
    '["' || REPLACE(REPLACE(REPLACE(account_id, '\', '\\'), '"', '\"'), ',', '","') || '"]'
    AS {{JSON}}
)
WHERE account_id <> '';

UPDATE compliance_snapshots
SET counts_by_account = CAST(
    '{"' || REPLACE(REPLACE(account_id, '\', '\\'), '"', '\"') || '": {"total": '
    || CAST((
        SELECT COUNT(*) FROM resource_tag_state AS state
        WHERE state.snapshot_id = compliance_snapshots.snapshot_id
    ) AS TEXT)
    || ', "compliant": '
    || CAST((
        SELECT COUNT(*) FROM resource_tag_state AS state
        WHERE state.snapshot_id = compliance_snapshots.snapshot_id AND state.compliant
    ) AS TEXT)
    || ', "violations": ' || CAST(violation_count AS TEXT) || '}}'
    AS {{JSON}}
)
WHERE account_id <> ''
    AND account_id NOT LIKE '%,%'
    AND EXISTS (
        SELECT 1 FROM resource_tag_state AS state
        WHERE state.snapshot_id = compliance_snapshots.snapshot_id
    )
    AND NOT EXISTS (
        SELECT 1 FROM resource_tag_state AS state
        WHERE state.snapshot_id = compliance_snapshots.snapshot_id
            AND state.account_id <> compliance_snapshots.account_id
    );

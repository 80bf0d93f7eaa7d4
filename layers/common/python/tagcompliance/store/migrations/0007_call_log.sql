-- The log of tool calls is the call log (issue 14): "audit" names the compliance audit runs only
-- (scheduled_audits, get_audit_status). The table is renamed in place, so every row keeps its id.
-- Index names follow the table; PostgreSQL's own names (the id sequence, the primary key) keep
-- the old prefix: nothing refers to them by name (the store migration finds the sequence with
-- pg_get_serial_sequence).

ALTER TABLE audit_logs RENAME TO call_log;

DROP INDEX idx_audit_logs_timestamp;
DROP INDEX idx_audit_logs_user_id;
DROP INDEX idx_audit_logs_tool_name;
CREATE INDEX idx_call_log_timestamp ON call_log (timestamp DESC);
CREATE INDEX idx_call_log_user_id ON call_log (user_id);
CREATE INDEX idx_call_log_tool_name ON call_log (tool_name);

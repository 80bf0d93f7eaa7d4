-- One id per tool call in the call log (issue 15, durability). A row that could not be written
-- during a database outage waits in the gateway's local spool and is written when the database is
-- back; the unique call_id makes that replay idempotent (a row already written, for instance by an
-- INSERT whose acknowledgement was lost, is not written twice). Rows from before have none (NULLs
-- never collide in a unique index).
ALTER TABLE audit_logs ADD COLUMN call_id VARCHAR(64);
CREATE UNIQUE INDEX idx_audit_logs_call_id ON audit_logs (call_id);

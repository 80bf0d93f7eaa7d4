-- One id per tool call in the call log (issue 15, durability). A row that could not be written
-- during a database outage waits in the gateway's local spool and is written when the database is
-- back; the unique call_id makes that replay idempotent (a row already written, for instance by an
-- INSERT whose acknowledgement was lost, is not written twice). Rows from before have none (NULLs
-- never collide in a unique index).
ALTER TABLE call_log ADD COLUMN call_id VARCHAR(64);
CREATE UNIQUE INDEX idx_call_log_call_id ON call_log (call_id);

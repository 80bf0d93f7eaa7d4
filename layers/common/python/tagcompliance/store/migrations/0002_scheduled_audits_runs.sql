-- scheduled_audits, rebuilt for the scheduler: "time" becomes optional (cron schedules have none),
-- weekly and monthly schedules name their day, runs are claimed by compare-and-set on next_run and
-- their outcome kept, edits are checked against a revision, and the EventBridge Scheduler schedule
-- is remembered. Rebuilt rather than altered because SQLite cannot drop a NOT NULL constraint;
-- the rows (none before this migration's code existed) are copied across.

CREATE TABLE scheduled_audits_v2 (
    id {{SERIAL_PK}},
    schedule_id VARCHAR(50) UNIQUE NOT NULL,
    schedule_type VARCHAR(20) NOT NULL CHECK (schedule_type IN ('daily', 'weekly', 'monthly', 'cron')),
    "time" {{TIME}},
    timezone VARCHAR(64) NOT NULL,
    recipients {{TEXT_ARRAY}} NOT NULL,
    format VARCHAR(20) NOT NULL CHECK (format IN ('email', 'slack', 'both')),
    next_run {{TIMESTAMPTZ}} NOT NULL,
    status VARCHAR(20) NOT NULL CHECK (status IN ('active', 'paused', 'deleted')),
    created_by VARCHAR(255) NOT NULL,
    created_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    updated_at {{TIMESTAMPTZ}} NOT NULL DEFAULT {{NOW}},
    cron_expression VARCHAR(255),
    day_of_week VARCHAR(9),
    day_of_month INTEGER CHECK (day_of_month BETWEEN 1 AND 31),
    resource_types {{JSON}} NOT NULL DEFAULT '[]',
    regions {{JSON}} NOT NULL DEFAULT '[]',
    last_run {{TIMESTAMPTZ}},
    last_run_status VARCHAR(20),
    last_snapshot_id TEXT,
    last_error TEXT,
    external_id TEXT,
    revision INTEGER NOT NULL DEFAULT 0
);

INSERT INTO scheduled_audits_v2 (
    schedule_id, schedule_type, "time", timezone, recipients, format, next_run, status, created_by,
    created_at, updated_at, cron_expression, resource_types, regions, last_run
)
SELECT
    schedule_id, schedule_type, "time", timezone, recipients, format, next_run, status, created_by,
    created_at, updated_at, cron_expression, resource_types, regions, last_run
FROM scheduled_audits
ORDER BY id;

DROP TABLE scheduled_audits;

ALTER TABLE scheduled_audits_v2 RENAME TO scheduled_audits;

-- What the scheduler loop asks on every tick: active schedules that are due.
CREATE INDEX idx_scheduled_audits_status_next_run ON scheduled_audits (status, next_run);

-- Several instances may share one database: a job belongs to the instance
-- that queued it (`owner`) for as long as its lease is renewed; a dead
-- instance's unfinished jobs are taken over once the lease expires.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER; -- Unix milliseconds, UTC
-- At most one unfinished job per machine and model type.
CREATE UNIQUE INDEX jobs_one_unfinished ON jobs (machine_id, model_type) WHERE status IN ('queued', 'running');

-- Scheduled runs claimed by one instance: the first to insert (name, slot)
-- runs it.
CREATE TABLE scheduled_runs (
    name       TEXT    NOT NULL,
    slot       INTEGER NOT NULL,
    owner      TEXT    NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (name, slot)
);

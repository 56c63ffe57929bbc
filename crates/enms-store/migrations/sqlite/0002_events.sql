-- The durable event log: every event but metric_updated, keyed by its
-- ordered id (<ms>-<seq>), so clients resume from any id after a restart.
CREATE TABLE events (
    ms         INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    ts         INTEGER NOT NULL, -- Unix milliseconds, UTC
    data       TEXT    NOT NULL, -- JSON payload
    PRIMARY KEY (ms, seq)
) WITHOUT ROWID;

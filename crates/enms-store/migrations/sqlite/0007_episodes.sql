-- Anomaly episodes: consecutive flagged readings of one machine and type
-- (docs/analytics.md#episodes). The id is derived from machine, type and
-- start, so batch and streaming detection of the same episode, and re-runs
-- over the same window, update one row.
CREATE TABLE episodes (
    id            TEXT    PRIMARY KEY,
    machine_id    TEXT    NOT NULL,
    anomaly_type  TEXT    NOT NULL,
    severity      TEXT    NOT NULL,
    start_ts      INTEGER NOT NULL,
    end_ts        INTEGER NOT NULL,
    peak_ts       INTEGER NOT NULL,
    peak_score    REAL    NOT NULL,
    signal        TEXT    NOT NULL,
    peak_value    REAL    NOT NULL,
    peak_expected REAL    NOT NULL,
    count         INTEGER NOT NULL,
    actual_kwh    REAL,
    expected_kwh  REAL,
    open          INTEGER NOT NULL,
    source        TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX episodes_machine_start ON episodes (machine_id, start_ts);
CREATE INDEX episodes_start ON episodes (start_ts);

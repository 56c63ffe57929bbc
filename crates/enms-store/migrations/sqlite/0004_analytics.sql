-- Trained models, versioned per machine and type; at most one active each.
CREATE TABLE models (
    id          TEXT    PRIMARY KEY,
    machine_id  TEXT    NOT NULL,
    model_type  TEXT    NOT NULL,          -- baseline | anomaly
    version     INTEGER NOT NULL,
    active      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,          -- Unix milliseconds, UTC
    job_id      TEXT,
    metrics     TEXT    NOT NULL,          -- JSON: what the model list shows
    body        TEXT    NOT NULL,          -- JSON: the fitted model itself
    UNIQUE (machine_id, model_type, version)
);
CREATE UNIQUE INDEX models_one_active ON models (machine_id, model_type) WHERE active = 1;

-- Background jobs; their state survives restarts.
CREATE TABLE jobs (
    id            TEXT    PRIMARY KEY,
    machine_id    TEXT    NOT NULL,
    model_type    TEXT    NOT NULL,
    trigger_type  TEXT    NOT NULL,
    reason        TEXT,
    status        TEXT    NOT NULL,        -- queued | running | completed | failed | cancelled
    progress_pct  REAL    NOT NULL DEFAULT 0,
    message       TEXT    NOT NULL DEFAULT '',
    params        TEXT    NOT NULL,        -- JSON request
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    error_message TEXT,
    model_id      TEXT,
    metrics       TEXT
);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_status ON jobs (status);

-- Detected anomalies: one per machine, reading and metric, so re-running
-- detection over an overlapping window adds nothing twice.
CREATE TABLE anomalies (
    id              TEXT    PRIMARY KEY,
    machine_id      TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    metric          TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    anomaly_type    TEXT    NOT NULL,
    value           REAL    NOT NULL,
    expected_value  REAL    NOT NULL,
    anomaly_score   REAL    NOT NULL,
    deviation       REAL    NOT NULL,      -- (value − expected) / σ
    source          TEXT    NOT NULL,      -- batch | stream
    model_id        TEXT,
    detected_at     INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    note            TEXT,
    UNIQUE (machine_id, ts, metric)
);
CREATE INDEX anomalies_detected ON anomalies (detected_at);
CREATE INDEX anomalies_machine_ts ON anomalies (machine_id, ts);

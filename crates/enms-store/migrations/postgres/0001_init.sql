-- The PostgreSQL schema: the same model as the SQLite one, with native
-- types (UUID, TIMESTAMPTZ, JSONB) so the tables read well from psql and
-- Grafana.

-- Readings reference a machine by a 4-byte key rather than its UUID.
CREATE TABLE machines (
    key             INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              UUID        NOT NULL UNIQUE,
    name            TEXT        NOT NULL,
    machine_type    TEXT        NOT NULL,
    location        TEXT        NOT NULL DEFAULT '',
    rated_power_kw  DOUBLE PRECISION,
    created_at      TIMESTAMPTZ NOT NULL,
    last_reading_at TIMESTAMPTZ
);
-- Names are unique regardless of case, as in SQLite (COLLATE NOCASE).
CREATE UNIQUE INDEX machines_name_key ON machines (lower(name));

-- One row per machine and timestamp (re-sending replaces it). The primary
-- key is the index every time-range query uses.
CREATE TABLE readings (
    machine_key      INTEGER          NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    ts               TIMESTAMPTZ      NOT NULL,
    power_kw         DOUBLE PRECISION NOT NULL,
    energy_kwh       DOUBLE PRECISION NOT NULL,
    production_units DOUBLE PRECISION,
    outdoor_temp_c   DOUBLE PRECISION,
    extra            JSONB,
    PRIMARY KEY (machine_key, ts)
);

CREATE TABLE demo_injected (
    id          UUID             PRIMARY KEY,
    machine_id  UUID             NOT NULL,
    kind        TEXT             NOT NULL,
    start_ts    TIMESTAMPTZ      NOT NULL,
    end_ts      TIMESTAMPTZ      NOT NULL,
    magnitude   DOUBLE PRECISION NOT NULL,
    description TEXT             NOT NULL
);
CREATE INDEX demo_injected_start ON demo_injected (start_ts);

-- The durable event log, keyed by the ordered id <ms>-<seq>.
CREATE TABLE events (
    ms         BIGINT      NOT NULL,
    seq        BIGINT      NOT NULL,
    event_type TEXT        NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    data       JSONB       NOT NULL,
    PRIMARY KEY (ms, seq)
);

CREATE TABLE event_log_floor (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    ms       BIGINT NOT NULL,
    seq      BIGINT NOT NULL
);

CREATE TABLE models (
    id          UUID        PRIMARY KEY,
    machine_id  UUID        NOT NULL,
    model_type  TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    active      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    job_id      UUID,
    metrics     JSONB       NOT NULL,
    body        JSONB       NOT NULL,
    UNIQUE (machine_id, model_type, version)
);
CREATE UNIQUE INDEX models_one_active ON models (machine_id, model_type) WHERE active;

-- Jobs. `owner` is the instance that queued or runs the job and
-- `lease_until` how long that claim holds without renewal: when an instance
-- dies, another takes its unfinished jobs over once the lease has expired.
CREATE TABLE jobs (
    id            UUID             PRIMARY KEY,
    machine_id    UUID             NOT NULL,
    model_type    TEXT             NOT NULL,
    trigger_type  TEXT             NOT NULL,
    reason        TEXT,
    status        TEXT             NOT NULL,
    progress_pct  DOUBLE PRECISION NOT NULL DEFAULT 0,
    message       TEXT             NOT NULL DEFAULT '',
    params        JSONB            NOT NULL,
    created_at    TIMESTAMPTZ      NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    error_message TEXT,
    model_id      UUID,
    metrics       JSONB,
    owner         TEXT,
    lease_until   TIMESTAMPTZ
);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_status ON jobs (status);
-- At most one unfinished job per machine and model type, across instances.
CREATE UNIQUE INDEX jobs_one_unfinished ON jobs (machine_id, model_type) WHERE status IN ('queued', 'running');

CREATE TABLE anomalies (
    id              UUID             PRIMARY KEY,
    machine_id      UUID             NOT NULL,
    ts              TIMESTAMPTZ      NOT NULL,
    metric          TEXT             NOT NULL,
    severity        TEXT             NOT NULL,
    anomaly_type    TEXT             NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    expected_value  DOUBLE PRECISION NOT NULL,
    anomaly_score   DOUBLE PRECISION NOT NULL,
    deviation       DOUBLE PRECISION NOT NULL,
    source          TEXT             NOT NULL,
    model_id        UUID,
    detected_at     TIMESTAMPTZ      NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    note            TEXT,
    UNIQUE (machine_id, ts, metric)
);
CREATE INDEX anomalies_detected ON anomalies (detected_at);

-- Scheduled runs claimed by one instance: the first to insert (name, slot)
-- runs it, the others skip.
CREATE TABLE scheduled_runs (
    name       TEXT        NOT NULL,
    slot       TIMESTAMPTZ NOT NULL,
    owner      TEXT        NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, slot)
);

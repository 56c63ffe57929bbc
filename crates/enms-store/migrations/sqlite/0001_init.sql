-- Machines keep a compact integer key so that readings reference 8 bytes
-- instead of a 36-byte UUID string.
CREATE TABLE machines (
    key             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    machine_type    TEXT    NOT NULL,
    location        TEXT    NOT NULL DEFAULT '',
    rated_power_kw  REAL,
    created_at      INTEGER NOT NULL, -- Unix milliseconds, UTC
    last_reading_at INTEGER           -- Unix milliseconds, UTC
);

-- One row per machine and timestamp: re-sending a reading replaces it, so
-- ingest is idempotent. WITHOUT ROWID clusters rows by (machine, time), which
-- is the order every range query reads them in.
CREATE TABLE readings (
    machine_key      INTEGER NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    ts               INTEGER NOT NULL, -- Unix milliseconds, UTC, end of the interval
    power_kw         REAL    NOT NULL,
    energy_kwh       REAL    NOT NULL,
    production_units REAL,
    outdoor_temp_c   REAL,
    extra            TEXT,             -- JSON object of named values, NULL when empty
    PRIMARY KEY (machine_key, ts)
) WITHOUT ROWID;

-- Anomalies the demo factory injected, so detection can be scored.
CREATE TABLE demo_injected (
    id          TEXT    PRIMARY KEY,
    machine_id  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    start_ts    INTEGER NOT NULL,
    end_ts      INTEGER NOT NULL,
    magnitude   REAL    NOT NULL,
    description TEXT    NOT NULL
);
CREATE INDEX demo_injected_start ON demo_injected (start_ts);

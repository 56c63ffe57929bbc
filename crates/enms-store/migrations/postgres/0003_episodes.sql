-- Anomaly episodes (see the SQLite migration of the same name).
CREATE TABLE episodes (
    id            UUID             PRIMARY KEY,
    machine_id    UUID             NOT NULL,
    anomaly_type  TEXT             NOT NULL,
    severity      TEXT             NOT NULL,
    start_ts      TIMESTAMPTZ      NOT NULL,
    end_ts        TIMESTAMPTZ      NOT NULL,
    peak_ts       TIMESTAMPTZ      NOT NULL,
    peak_score    DOUBLE PRECISION NOT NULL,
    signal        TEXT             NOT NULL,
    peak_value    DOUBLE PRECISION NOT NULL,
    peak_expected DOUBLE PRECISION NOT NULL,
    count         BIGINT           NOT NULL,
    actual_kwh    DOUBLE PRECISION,
    expected_kwh  DOUBLE PRECISION,
    open          BOOLEAN          NOT NULL,
    source        TEXT             NOT NULL,
    updated_at    TIMESTAMPTZ      NOT NULL
);
CREATE INDEX episodes_machine_start ON episodes (machine_id, start_ts);
CREATE INDEX episodes_start ON episodes (start_ts);

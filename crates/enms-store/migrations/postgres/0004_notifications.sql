-- The notifier (see the SQLite migration of the same name).
CREATE TABLE notify_alerts (
    id              TEXT        PRIMARY KEY,
    rule            TEXT        NOT NULL,
    subject         TEXT        NOT NULL,
    anomaly_id      UUID,
    machine_id      UUID,
    severity        TEXT        NOT NULL,
    title           TEXT        NOT NULL,
    opened_at       TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    resolved_at     TIMESTAMPTZ,
    data            JSONB       NOT NULL
);
CREATE INDEX notify_alerts_open ON notify_alerts (resolved_at, opened_at);

CREATE TABLE notifications (
    id              UUID        PRIMARY KEY,
    key             TEXT        NOT NULL UNIQUE,
    channel         TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    rule            TEXT,
    alert_id        TEXT,
    event_id        TEXT,
    title           TEXT        NOT NULL,
    body            JSONB       NOT NULL,
    status          TEXT        NOT NULL,
    attempts        BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT,
    claimed_by      TEXT,
    claimed_until   TIMESTAMPTZ
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE notification_attempts (
    notification_id UUID        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         BIGINT      NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    duration_ms     BIGINT      NOT NULL,
    ok              BOOLEAN     NOT NULL,
    status_code     BIGINT,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt)
);

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

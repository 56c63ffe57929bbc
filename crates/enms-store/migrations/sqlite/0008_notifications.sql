-- The notifier (docs/notifications.md): alerts followed for escalation,
-- the durable outbox, its delivery attempts, and cursors into the event log.
CREATE TABLE notify_alerts (
    id              TEXT    PRIMARY KEY,
    rule            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    anomaly_id      TEXT,
    machine_id      TEXT,
    severity        TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    opened_at       INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at     INTEGER,
    data            TEXT    NOT NULL
);
CREATE INDEX notify_alerts_open ON notify_alerts (resolved_at, opened_at);

CREATE TABLE notifications (
    id              TEXT    PRIMARY KEY,
    key             TEXT    NOT NULL UNIQUE,
    channel         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    rule            TEXT,
    alert_id        TEXT,
    event_id        TEXT,
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    claimed_by      TEXT,
    claimed_until   INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE notification_attempts (
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt)
);

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

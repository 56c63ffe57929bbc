-- Incidents (docs/incidents.md): anomaly episodes of one machine and kind
-- gathered while open, with a lifecycle and a timeline.
CREATE TABLE incidents (
    id               TEXT    PRIMARY KEY,
    machine_id       TEXT    NOT NULL,
    anomaly_type     TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    assignee         TEXT,
    opened_at        INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    resolved_at      INTEGER,
    resolved_by      TEXT,
    resolution       TEXT,
    episode_count    INTEGER NOT NULL,
    open_episodes    TEXT    NOT NULL,
    last_activity_at INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
);
-- One unresolved incident per machine and kind, whoever tries to open a second.
CREATE UNIQUE INDEX incidents_one_unresolved ON incidents (machine_id, anomaly_type) WHERE state <> 'resolved';
CREATE INDEX incidents_opened ON incidents (opened_at);

CREATE TABLE incident_entries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  TEXT    NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    text         TEXT,
    data         TEXT    NOT NULL,
    source_event TEXT,
    UNIQUE (incident_id, source_event)
);

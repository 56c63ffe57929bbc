-- Incidents (see the SQLite migration of the same name).
CREATE TABLE incidents (
    id               UUID        PRIMARY KEY,
    machine_id       UUID        NOT NULL,
    anomaly_type     TEXT        NOT NULL,
    state            TEXT        NOT NULL,
    severity         TEXT        NOT NULL,
    title            TEXT        NOT NULL,
    assignee         TEXT,
    opened_at        TIMESTAMPTZ NOT NULL,
    acknowledged_at  TIMESTAMPTZ,
    acknowledged_by  TEXT,
    resolved_at      TIMESTAMPTZ,
    resolved_by      TEXT,
    resolution       TEXT,
    episode_count    BIGINT      NOT NULL,
    open_episodes    JSONB       NOT NULL,
    last_activity_at TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    version          BIGINT      NOT NULL
);
CREATE UNIQUE INDEX incidents_one_unresolved ON incidents (machine_id, anomaly_type) WHERE state <> 'resolved';
CREATE INDEX incidents_opened ON incidents (opened_at);

CREATE TABLE incident_entries (
    seq          BIGSERIAL   PRIMARY KEY,
    incident_id  UUID        NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           TIMESTAMPTZ NOT NULL,
    kind         TEXT        NOT NULL,
    actor        TEXT        NOT NULL,
    text         TEXT,
    data         JSONB       NOT NULL,
    source_event TEXT,
    UNIQUE (incident_id, source_event)
);

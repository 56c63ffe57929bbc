-- Newest id pruned from the event log: a resume from an older position
-- cannot be complete. One row at most.
CREATE TABLE event_log_floor (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    ms   INTEGER NOT NULL,
    seq  INTEGER NOT NULL
);

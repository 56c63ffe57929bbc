-- Where retention pruned each level (raw, 1m, 1h, 1d): it holds everything
-- from `floor` (Unix ms, a UTC midnight) on. Only ever raised.
CREATE TABLE retention_floors (
    level TEXT    PRIMARY KEY,
    floor INTEGER NOT NULL
);

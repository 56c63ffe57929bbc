-- Hour cells (enms-analytics/src/cells.rs): per machine and UTC hour, the
-- readings whose interval's middle falls in it, interval-weighted — what
-- KPIs and the baseline's periods need. A reading's interval is the gap to
-- the machine's previous reading, capped at an hour (a reading with none
-- in the hour before it covers that hour). Kept in the readings'
-- transaction (src/sqlite/periods.rs); a machine's rows go with it.
CREATE TABLE period_1h (
    machine_key   INTEGER NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket        INTEGER NOT NULL, -- Unix ms of the hour
    readings      INTEGER NOT NULL,
    covered_h     REAL    NOT NULL,
    kwh           REAL    NOT NULL, -- Σ power × hours
    units         REAL    NOT NULL,
    operating_h   REAL    NOT NULL,
    temp_weighted REAL    NOT NULL, -- Σ temperature × hours
    temp_h        REAL    NOT NULL,
    peak_kw       REAL    NOT NULL,
    peak_at       INTEGER NOT NULL, -- the earliest reading at peak_kw
    PRIMARY KEY (machine_key, bucket)
) WITHOUT ROWID;

-- Readings stored before the cells existed.
INSERT INTO period_1h
WITH iv AS (
    SELECT machine_key, ts, power_kw, production_units AS u, outdoor_temp_c AS t,
           ts - COALESCE(LAG(ts) OVER (PARTITION BY machine_key ORDER BY ts), ts - 3600000) AS raw_gap
    FROM readings
), m AS (
    SELECT *, MIN(raw_gap, 3600000) AS gap FROM iv
), c AS (
    SELECT *, ((ts - gap / 2) / 3600000) * 3600000 AS bucket, gap / 3600000.0 AS h FROM m WHERE gap > 0
), p AS (
    SELECT *, MAX(power_kw) OVER (PARTITION BY machine_key, bucket) AS bmax FROM c
)
SELECT machine_key, bucket, COUNT(*), SUM(h), SUM(power_kw * h), SUM(COALESCE(u, 0)),
       SUM(CASE WHEN u > 0 THEN h ELSE 0 END), SUM(COALESCE(t * h, 0)), SUM(CASE WHEN t IS NOT NULL THEN h ELSE 0 END),
       MAX(power_kw), MIN(CASE WHEN power_kw = bmax THEN ts END)
FROM p GROUP BY machine_key, bucket;

-- Rollups (src/rollup.rs): per machine and 1-minute, 1-hour and 1-day
-- bucket (start, Unix ms UTC), the count, sums, minimum and maximum that
-- compose into any coarser bucket. Kept in the transaction that writes the
-- readings; a machine's rows go with it. n_units / n_temp count the
-- readings that had the value, so a mean skips the ones that did not.
CREATE TABLE rollup_1m (
    machine_key INTEGER NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    sum_kw      REAL    NOT NULL,
    min_kw      REAL    NOT NULL,
    max_kw      REAL    NOT NULL,
    sum_kwh     REAL    NOT NULL,
    sum_units   REAL,
    n_units     INTEGER NOT NULL,
    sum_temp    REAL,
    n_temp      INTEGER NOT NULL,
    PRIMARY KEY (machine_key, bucket)
) WITHOUT ROWID;
CREATE TABLE rollup_1h (
    machine_key INTEGER NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    sum_kw      REAL    NOT NULL,
    min_kw      REAL    NOT NULL,
    max_kw      REAL    NOT NULL,
    sum_kwh     REAL    NOT NULL,
    sum_units   REAL,
    n_units     INTEGER NOT NULL,
    sum_temp    REAL,
    n_temp      INTEGER NOT NULL,
    PRIMARY KEY (machine_key, bucket)
) WITHOUT ROWID;
CREATE TABLE rollup_1d (
    machine_key INTEGER NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    sum_kw      REAL    NOT NULL,
    min_kw      REAL    NOT NULL,
    max_kw      REAL    NOT NULL,
    sum_kwh     REAL    NOT NULL,
    sum_units   REAL,
    n_units     INTEGER NOT NULL,
    sum_temp    REAL,
    n_temp      INTEGER NOT NULL,
    PRIMARY KEY (machine_key, bucket)
) WITHOUT ROWID;

-- Readings stored before rollups existed.
INSERT INTO rollup_1m
SELECT machine_key, (ts / 60000) * 60000, COUNT(*), SUM(power_kw), MIN(power_kw), MAX(power_kw), SUM(energy_kwh),
       SUM(production_units), COUNT(production_units), SUM(outdoor_temp_c), COUNT(outdoor_temp_c)
FROM readings GROUP BY machine_key, (ts / 60000) * 60000;
INSERT INTO rollup_1h
SELECT machine_key, (bucket / 3600000) * 3600000, SUM(samples), SUM(sum_kw), MIN(min_kw), MAX(max_kw), SUM(sum_kwh),
       SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
FROM rollup_1m GROUP BY machine_key, (bucket / 3600000) * 3600000;
INSERT INTO rollup_1d
SELECT machine_key, (bucket / 86400000) * 86400000, SUM(samples), SUM(sum_kw), MIN(min_kw), MAX(max_kw), SUM(sum_kwh),
       SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
FROM rollup_1h GROUP BY machine_key, (bucket / 86400000) * 86400000;

-- Rollups (src/rollup.rs): per machine and 1-minute, 1-hour and 1-day
-- bucket (its start, aligned to the Unix epoch in UTC), the count, sums,
-- minimum and maximum that compose into any coarser bucket. Kept in the
-- transaction that writes the readings; a machine's rows go with it.
CREATE TABLE rollup_1m (
    machine_key INTEGER          NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      TIMESTAMPTZ      NOT NULL,
    samples     BIGINT           NOT NULL,
    sum_kw      DOUBLE PRECISION NOT NULL,
    min_kw      DOUBLE PRECISION NOT NULL,
    max_kw      DOUBLE PRECISION NOT NULL,
    sum_kwh     DOUBLE PRECISION NOT NULL,
    sum_units   DOUBLE PRECISION,
    n_units     BIGINT           NOT NULL,
    sum_temp    DOUBLE PRECISION,
    n_temp      BIGINT           NOT NULL,
    PRIMARY KEY (machine_key, bucket)
);
CREATE TABLE rollup_1h (
    machine_key INTEGER          NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      TIMESTAMPTZ      NOT NULL,
    samples     BIGINT           NOT NULL,
    sum_kw      DOUBLE PRECISION NOT NULL,
    min_kw      DOUBLE PRECISION NOT NULL,
    max_kw      DOUBLE PRECISION NOT NULL,
    sum_kwh     DOUBLE PRECISION NOT NULL,
    sum_units   DOUBLE PRECISION,
    n_units     BIGINT           NOT NULL,
    sum_temp    DOUBLE PRECISION,
    n_temp      BIGINT           NOT NULL,
    PRIMARY KEY (machine_key, bucket)
);
CREATE TABLE rollup_1d (
    machine_key INTEGER          NOT NULL REFERENCES machines (key) ON DELETE CASCADE,
    bucket      TIMESTAMPTZ      NOT NULL,
    samples     BIGINT           NOT NULL,
    sum_kw      DOUBLE PRECISION NOT NULL,
    min_kw      DOUBLE PRECISION NOT NULL,
    max_kw      DOUBLE PRECISION NOT NULL,
    sum_kwh     DOUBLE PRECISION NOT NULL,
    sum_units   DOUBLE PRECISION,
    n_units     BIGINT           NOT NULL,
    sum_temp    DOUBLE PRECISION,
    n_temp      BIGINT           NOT NULL,
    PRIMARY KEY (machine_key, bucket)
);

-- Readings stored before rollups existed.
INSERT INTO rollup_1m
SELECT machine_key, date_bin('1 minute', ts, TIMESTAMPTZ 'epoch'), COUNT(*), SUM(power_kw), MIN(power_kw),
       MAX(power_kw), SUM(energy_kwh), SUM(production_units), COUNT(production_units), SUM(outdoor_temp_c),
       COUNT(outdoor_temp_c)
FROM readings GROUP BY 1, 2;
INSERT INTO rollup_1h
SELECT machine_key, date_bin('1 hour', bucket, TIMESTAMPTZ 'epoch'), SUM(samples), SUM(sum_kw), MIN(min_kw),
       MAX(max_kw), SUM(sum_kwh), SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
FROM rollup_1m GROUP BY 1, 2;
INSERT INTO rollup_1d
SELECT machine_key, date_bin('1 day', bucket, TIMESTAMPTZ 'epoch'), SUM(samples), SUM(sum_kw), MIN(min_kw),
       MAX(max_kw), SUM(sum_kwh), SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
FROM rollup_1h GROUP BY 1, 2;

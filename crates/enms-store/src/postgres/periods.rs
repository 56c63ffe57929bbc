//! PostgreSQL's hour cells (`period_1h`; what they are: `crate::periods`):
//! recomputing the touched hours in the readings' transaction (under the
//! machine's ingest lock, like the rollups), and reading a window's cells.

use enms_core::timestamp::from_ms;
use sqlx::{PgConnection, Row};

use crate::Result;
use crate::periods::{PeriodCell, Point, appended, touched};

/// The cells of `[$2, $3)` (Unix ms) of machine `$1`, from the raw readings
/// of `[$2 − 1 h, $3 + 30 min)`.
const RECOMPUTE: &str = "
INSERT INTO period_1h
WITH iv AS (
    SELECT machine_key, ts, power_kw, production_units AS u, outdoor_temp_c AS t,
           (EXTRACT(EPOCH FROM ts) * 1000)::int8 AS ms,
           (EXTRACT(EPOCH FROM ts - COALESCE(LAG(ts) OVER (ORDER BY ts), ts - INTERVAL '1 hour')) * 1000)::int8
               AS raw_gap
    FROM readings
    WHERE machine_key = $1 AND ts >= to_timestamp(($2 - 3600000) / 1000.0)
      AND ts < to_timestamp(($3 + 1800000) / 1000.0)
), m AS (
    SELECT *, LEAST(raw_gap, 3600000) AS gap FROM iv
), c AS (
    SELECT *, ((ms - gap / 2) / 3600000) * 3600000 AS bucket_ms, gap::float8 / 3600000.0 AS h
    FROM m WHERE gap > 0 AND ms - gap / 2 >= $2 AND ms - gap / 2 < $3
), p AS (
    SELECT *, MAX(power_kw) OVER (PARTITION BY bucket_ms) AS bmax FROM c
)
SELECT $1, to_timestamp(bucket_ms / 1000.0), COUNT(*), SUM(h), SUM(power_kw * h), SUM(COALESCE(u, 0)),
       SUM(CASE WHEN u > 0 THEN h ELSE 0 END), SUM(COALESCE(t * h, 0)), SUM(CASE WHEN t IS NOT NULL THEN h ELSE 0 END),
       MAX(power_kw), MIN(CASE WHEN power_kw = bmax THEN ts END)
FROM p GROUP BY bucket_ms";

/// Brings one machine's cells up to date after writing `points`: added to
/// when they all come after `newest` (the machine's newest reading before),
/// else recomputed around them.
pub async fn update(conn: &mut PgConnection, key: i32, newest: Option<i64>, points: &[Point]) -> Result<()> {
    if points.iter().all(|p| newest.is_none_or(|n| p.ts > n)) {
        for c in appended(newest, points) {
            sqlx::query(
                "INSERT INTO period_1h (machine_key, bucket, readings, covered_h, kwh, units, operating_h,
                                        temp_weighted, temp_h, peak_kw, peak_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (machine_key, bucket) DO UPDATE SET
                     readings = period_1h.readings + excluded.readings,
                     covered_h = period_1h.covered_h + excluded.covered_h, kwh = period_1h.kwh + excluded.kwh,
                     units = period_1h.units + excluded.units,
                     operating_h = period_1h.operating_h + excluded.operating_h,
                     temp_weighted = period_1h.temp_weighted + excluded.temp_weighted,
                     temp_h = period_1h.temp_h + excluded.temp_h,
                     peak_at = CASE WHEN excluded.peak_kw > period_1h.peak_kw THEN excluded.peak_at
                                    ELSE period_1h.peak_at END,
                     peak_kw = GREATEST(period_1h.peak_kw, excluded.peak_kw)",
            )
            .bind(key)
            .bind(c.start)
            .bind(c.readings as i64)
            .bind(c.covered_h)
            .bind(c.kwh)
            .bind(c.units)
            .bind(c.operating_h)
            .bind(c.temp_weighted)
            .bind(c.temp_h)
            .bind(c.peak_kw)
            .bind(c.peak_at)
            .execute(&mut *conn)
            .await?;
        }
        return Ok(());
    }
    let timestamps: Vec<i64> = points.iter().map(|p| p.ts).collect();
    refresh(conn, key, &timestamps).await
}

/// Recomputes the hours around `timestamps` (Unix ms) for one machine.
async fn refresh(conn: &mut PgConnection, key: i32, timestamps: &[i64]) -> Result<()> {
    for (start, end) in touched(timestamps) {
        sqlx::query("DELETE FROM period_1h WHERE machine_key = $1 AND bucket >= $2 AND bucket < $3")
            .bind(key)
            .bind(from_ms(start))
            .bind(from_ms(end))
            .execute(&mut *conn)
            .await?;
        sqlx::query(RECOMPUTE).bind(key).bind(start).bind(end).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The cells of whole hours `[start, end)`, oldest first.
pub async fn cells(
    conn: &mut PgConnection,
    key: i32,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<PeriodCell>> {
    let rows = sqlx::query(
        "SELECT bucket, readings, covered_h, kwh, units, operating_h, temp_weighted, temp_h, peak_kw, peak_at
         FROM period_1h WHERE machine_key = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
    )
    .bind(key)
    .bind(start)
    .bind(end)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PeriodCell {
                start: r.try_get("bucket")?,
                readings: r.try_get::<i64, _>("readings")?.try_into().unwrap_or(0),
                covered_h: r.try_get("covered_h")?,
                kwh: r.try_get("kwh")?,
                units: r.try_get("units")?,
                operating_h: r.try_get("operating_h")?,
                temp_weighted: r.try_get("temp_weighted")?,
                temp_h: r.try_get("temp_h")?,
                peak_kw: r.try_get("peak_kw")?,
                peak_at: r.try_get("peak_at")?,
            })
        })
        .collect()
}

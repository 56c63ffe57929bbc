//! SQLite's hour cells (`period_1h`; what they are: `crate::periods`):
//! recomputing the touched hours in the readings' transaction, and reading
//! a window's cells.

use enms_core::timestamp::from_ms;
use sqlx::{Row, SqliteConnection};

use crate::Result;
use crate::periods::{HOUR_MS, PeriodCell, Point, appended, touched};

/// The cells of `[?2, ?3)` of machine `?1`, from the raw readings of
/// `[?2 − 1 h, ?3 + 30 min)` (LAG gives each reading its predecessor; the
/// first of the scan gets a full hour, and its middle falls before ?2).
const RECOMPUTE: &str = "
INSERT INTO period_1h
WITH iv AS (
    SELECT machine_key, ts, power_kw, production_units AS u, outdoor_temp_c AS t,
           ts - COALESCE(LAG(ts) OVER (ORDER BY ts), ts - 3600000) AS raw_gap
    FROM readings WHERE machine_key = ?1 AND ts >= ?2 - 3600000 AND ts < ?3 + 1800000
), m AS (
    SELECT *, MIN(raw_gap, 3600000) AS gap FROM iv
), c AS (
    SELECT *, ((ts - gap / 2) / 3600000) * 3600000 AS bucket, gap / 3600000.0 AS h
    FROM m WHERE gap > 0 AND ts - gap / 2 >= ?2 AND ts - gap / 2 < ?3
), p AS (
    SELECT *, MAX(power_kw) OVER (PARTITION BY bucket) AS bmax FROM c
)
SELECT machine_key, bucket, COUNT(*), SUM(h), SUM(power_kw * h), SUM(COALESCE(u, 0)),
       SUM(CASE WHEN u > 0 THEN h ELSE 0 END), SUM(COALESCE(t * h, 0)), SUM(CASE WHEN t IS NOT NULL THEN h ELSE 0 END),
       MAX(power_kw), MIN(CASE WHEN power_kw = bmax THEN ts END)
FROM p GROUP BY bucket";

/// Brings the cells of a batch's machines up to date: for a machine whose
/// readings all come after `newest` (its newest reading before), the new
/// intervals are added to their cells — for all such machines in one
/// statement; around the others the hours are recomputed.
pub async fn update(conn: &mut SqliteConnection, machines: &[(i64, Option<i64>, Vec<Point>)]) -> Result<()> {
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for (key, newest, points) in machines {
        if !points.iter().all(|p| newest.is_none_or(|n| p.ts > n)) {
            let timestamps: Vec<i64> = points.iter().map(|p| p.ts).collect();
            refresh(conn, *key, &timestamps).await?;
            continue;
        }
        for c in appended(*newest, points) {
            rows.push(serde_json::json!([
                key,
                c.start.timestamp_millis(),
                c.readings,
                c.covered_h,
                c.kwh,
                c.units,
                c.operating_h,
                c.temp_weighted,
                c.temp_h,
                c.peak_kw,
                c.peak_at.timestamp_millis()
            ]));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's.
    sqlx::query(
        "INSERT INTO period_1h (machine_key, bucket, readings, covered_h, kwh, units, operating_h,
                                temp_weighted, temp_h, peak_kw, peak_at)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6,
                value ->> 7, value ->> 8, value ->> 9, value ->> 10
         FROM json_each(?) WHERE true
         ON CONFLICT (machine_key, bucket) DO UPDATE SET
             readings = readings + excluded.readings, covered_h = covered_h + excluded.covered_h,
             kwh = kwh + excluded.kwh, units = units + excluded.units,
             operating_h = operating_h + excluded.operating_h,
             temp_weighted = temp_weighted + excluded.temp_weighted, temp_h = temp_h + excluded.temp_h,
             peak_at = CASE WHEN excluded.peak_kw > peak_kw THEN excluded.peak_at ELSE peak_at END,
             peak_kw = MAX(peak_kw, excluded.peak_kw)",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes the hours around `timestamps` (Unix ms) for one machine.
async fn refresh(conn: &mut SqliteConnection, key: i64, timestamps: &[i64]) -> Result<()> {
    for (start, end) in touched(timestamps) {
        sqlx::query("DELETE FROM period_1h WHERE machine_key = ? AND bucket >= ? AND bucket < ?")
            .bind(key)
            .bind(start)
            .bind(end)
            .execute(&mut *conn)
            .await?;
        sqlx::query(RECOMPUTE).bind(key).bind(start).bind(end).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The cells of whole hours `[start, end)` (Unix ms), oldest first.
pub async fn cells(conn: &mut SqliteConnection, key: i64, start: i64, end: i64) -> Result<Vec<PeriodCell>> {
    debug_assert!(start % HOUR_MS == 0 && end % HOUR_MS == 0);
    let rows = sqlx::query(
        "SELECT bucket, readings, covered_h, kwh, units, operating_h, temp_weighted, temp_h, peak_kw, peak_at
         FROM period_1h WHERE machine_key = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
    )
    .bind(key)
    .bind(start)
    .bind(end)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PeriodCell {
                start: from_ms(r.try_get("bucket")?),
                readings: r.try_get::<i64, _>("readings")?.try_into().unwrap_or(0),
                covered_h: r.try_get("covered_h")?,
                kwh: r.try_get("kwh")?,
                units: r.try_get("units")?,
                operating_h: r.try_get("operating_h")?,
                temp_weighted: r.try_get("temp_weighted")?,
                temp_h: r.try_get("temp_h")?,
                peak_kw: r.try_get("peak_kw")?,
                peak_at: from_ms(r.try_get("peak_at")?),
            })
        })
        .collect()
}

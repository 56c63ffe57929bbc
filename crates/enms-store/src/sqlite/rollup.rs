//! SQLite's rollup tables (`rollup_1m`, `rollup_1h`, `rollup_1d`; the plan
//! and the merge are in `crate::rollup`): recomputing the buckets a batch
//! touched inside its transaction, and answering one query segment from a
//! tier or from the raw rows.

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::Result;
use crate::rollup::{Partial, Segment, Source, Tier, affected, widen};

/// Recomputes, for every machine of a batch, each minute, hour and day
/// bucket that holds one of its `timestamps` (Unix ms): minutes from the
/// raw rows, hours from minutes, days from hours — one statement per tier
/// for all machines and ranges (they travel as a JSON array), so a batch
/// that interleaves a hundred machines costs three statements, not three
/// hundred.
pub async fn refresh(conn: &mut SqliteConnection, touched: &mut [(i64, Vec<i64>)]) -> Result<()> {
    let mut ranges: [Vec<(i64, i64, i64)>; 3] = Default::default();
    for (key, timestamps) in touched.iter_mut() {
        let minutes = affected(timestamps, Tier::Minute);
        let hours = widen(&minutes, Tier::Hour);
        let days = widen(&hours, Tier::Day);
        for (i, tier) in [minutes, hours, days].into_iter().enumerate() {
            ranges[i].extend(tier.into_iter().map(|(a, b)| (*key, a, b)));
        }
    }
    for (tier, ranges) in [Tier::Minute, Tier::Hour, Tier::Day].into_iter().zip(ranges) {
        if ranges.is_empty() {
            continue;
        }
        let json = serde_json::to_string(&ranges).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        sqlx::query(AssertSqlSafe(recompute_sql(tier))).bind(json).execute(&mut *conn).await?;
    }
    Ok(())
}

fn recompute_sql(tier: Tier) -> String {
    let w = tier.width_ms();
    // `g`: one [machine key, start, end) range per element of ?1.
    let ranges = "(SELECT value ->> 0 AS k, value ->> 1 AS a, value ->> 2 AS z FROM json_each(?1)) g";
    let select = match tier.finer() {
        None => format!(
            "SELECT r.machine_key, (r.ts / {w}) * {w}, COUNT(*), SUM(power_kw), MIN(power_kw), MAX(power_kw),
                    SUM(energy_kwh), SUM(production_units), COUNT(production_units), SUM(outdoor_temp_c),
                    COUNT(outdoor_temp_c)
             FROM {ranges} JOIN readings r ON r.machine_key = g.k AND r.ts >= g.a AND r.ts < g.z
             GROUP BY r.machine_key, (r.ts / {w}) * {w}"
        ),
        Some(finer) => format!(
            "SELECT f.machine_key, (f.bucket / {w}) * {w}, SUM(samples), SUM(sum_kw), MIN(min_kw), MAX(max_kw),
                    SUM(sum_kwh), SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
             FROM {ranges} JOIN {finer} f ON f.machine_key = g.k AND f.bucket >= g.a AND f.bucket < g.z
             GROUP BY f.machine_key, (f.bucket / {w}) * {w}",
            finer = finer.table()
        ),
    };
    format!(
        "INSERT OR REPLACE INTO {} (machine_key, bucket, samples, sum_kw, min_kw, max_kw, sum_kwh, sum_units,
                                     n_units, sum_temp, n_temp) {select}",
        tier.table()
    )
}

/// One segment's buckets of `width` ms, first `limit`, ordered.
pub async fn segment(
    conn: &mut SqliteConnection,
    key: i64,
    seg: Segment,
    width: i64,
    limit: u32,
) -> Result<Vec<Partial>> {
    let sql = match seg.source {
        Source::Raw => format!(
            "SELECT (ts / {width}) * {width} AS b, COUNT(*) AS n, SUM(power_kw) AS skw, MIN(power_kw) AS mn,
                    MAX(power_kw) AS mx, SUM(energy_kwh) AS skwh, SUM(production_units) AS su,
                    COUNT(production_units) AS nu, SUM(outdoor_temp_c) AS st, COUNT(outdoor_temp_c) AS nt
             FROM readings WHERE machine_key = ?1 AND ts >= ?2 AND ts < ?3
             GROUP BY b ORDER BY b LIMIT ?4"
        ),
        Source::Tier(tier) => format!(
            "SELECT (bucket / {width}) * {width} AS b, SUM(samples) AS n, SUM(sum_kw) AS skw, MIN(min_kw) AS mn,
                    MAX(max_kw) AS mx, SUM(sum_kwh) AS skwh, SUM(sum_units) AS su, SUM(n_units) AS nu,
                    SUM(sum_temp) AS st, SUM(n_temp) AS nt
             FROM {} WHERE machine_key = ?1 AND bucket >= ?2 AND bucket < ?3
             GROUP BY b ORDER BY b LIMIT ?4",
            tier.table()
        ),
    };
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(key)
        .bind(seg.start)
        .bind(seg.end)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(partial).collect()
}

fn partial(row: &SqliteRow) -> Result<Partial> {
    Ok(Partial {
        bucket: row.try_get("b")?,
        samples: row.try_get("n")?,
        sum_kw: row.try_get("skw")?,
        min_kw: row.try_get("mn")?,
        max_kw: row.try_get("mx")?,
        sum_kwh: row.try_get("skwh")?,
        sum_units: row.try_get("su")?,
        n_units: row.try_get("nu")?,
        sum_temp: row.try_get("st")?,
        n_temp: row.try_get("nt")?,
    })
}

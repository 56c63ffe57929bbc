//! SQLite's rollup tables (`rollup_1m`, `rollup_1h`, `rollup_1d`; the plan
//! and the merge are in `crate::rollup`): recomputing the buckets a batch
//! touched inside its transaction, and answering one query segment from a
//! tier or from the raw rows.

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::Result;
use crate::rollup::{Partial, Segment, Source, Tier, affected, widen};

/// Recomputes, for one machine, every minute, hour and day bucket that
/// holds one of `timestamps` (Unix ms): minutes from the raw rows, hours
/// from minutes, days from hours.
pub async fn refresh(conn: &mut SqliteConnection, key: i64, timestamps: &mut [i64]) -> Result<()> {
    let minutes = affected(timestamps, Tier::Minute);
    let hours = widen(&minutes, Tier::Hour);
    let days = widen(&hours, Tier::Day);
    for (tier, ranges) in [(Tier::Minute, minutes), (Tier::Hour, hours), (Tier::Day, days)] {
        let sql = recompute_sql(tier);
        for (start, end) in ranges {
            sqlx::query(AssertSqlSafe(sql.as_str())).bind(key).bind(start).bind(end).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

fn recompute_sql(tier: Tier) -> String {
    let w = tier.width_ms();
    let select = match tier.finer() {
        None => format!(
            "SELECT machine_key, (ts / {w}) * {w}, COUNT(*), SUM(power_kw), MIN(power_kw), MAX(power_kw),
                    SUM(energy_kwh), SUM(production_units), COUNT(production_units), SUM(outdoor_temp_c),
                    COUNT(outdoor_temp_c)
             FROM readings WHERE machine_key = ?1 AND ts >= ?2 AND ts < ?3
             GROUP BY (ts / {w}) * {w}"
        ),
        Some(finer) => format!(
            "SELECT machine_key, (bucket / {w}) * {w}, SUM(samples), SUM(sum_kw), MIN(min_kw), MAX(max_kw),
                    SUM(sum_kwh), SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
             FROM {finer} WHERE machine_key = ?1 AND bucket >= ?2 AND bucket < ?3
             GROUP BY (bucket / {w}) * {w}",
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

//! PostgreSQL's rollup tables (`rollup_1m`, `rollup_1h`, `rollup_1d`; the
//! plan and the merge are in `crate::rollup`): recomputing the buckets a
//! batch touched inside its transaction — one statement per tier for every
//! machine and range of the batch, the ranges travelling as arrays — and
//! answering one query segment from a tier or from the raw rows.
//!
//! Two instances writing the same machine at once would each recompute a
//! bucket from a snapshot without the other's rows, and the later commit
//! would overwrite the earlier's count. So a batch first takes a
//! transaction-scoped advisory lock per machine (in key order, so two
//! batches never wait on each other in a circle); every statement after it
//! sees what the previous holder committed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::Result;
use crate::rollup::{Partial, Segment, Source, Tier, affected, widen};

/// The advisory lock class of reading batches ("enms" in ASCII).
const LOCK_CLASS: i32 = 0x656e_6d73;

/// Serialises batches per machine until the transaction ends.
pub async fn lock(conn: &mut PgConnection, keys: &mut [i32]) -> Result<()> {
    keys.sort_unstable();
    for key in keys.iter() {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(LOCK_CLASS).bind(key).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Recomputes every minute, hour and day bucket that holds one of each
/// machine's `timestamps` (Unix ms): minutes from the raw rows, hours from
/// minutes, days from hours.
pub async fn refresh(conn: &mut PgConnection, touched: &mut HashMap<i32, Vec<i64>>) -> Result<()> {
    let mut minutes = Ranges::default();
    let mut hours = Ranges::default();
    let mut days = Ranges::default();
    for (key, timestamps) in touched.iter_mut() {
        let m = affected(timestamps, Tier::Minute);
        let h = widen(&m, Tier::Hour);
        let d = widen(&h, Tier::Day);
        minutes.push(*key, &m);
        hours.push(*key, &h);
        days.push(*key, &d);
    }
    for (tier, ranges) in [(Tier::Minute, minutes), (Tier::Hour, hours), (Tier::Day, days)] {
        sqlx::query(AssertSqlSafe(recompute_sql(tier)))
            .bind(ranges.keys)
            .bind(ranges.starts)
            .bind(ranges.ends)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[derive(Default)]
struct Ranges {
    keys: Vec<i32>,
    starts: Vec<DateTime<Utc>>,
    ends: Vec<DateTime<Utc>>,
}

impl Ranges {
    fn push(&mut self, key: i32, ranges: &[(i64, i64)]) {
        for &(a, b) in ranges {
            self.keys.push(key);
            self.starts.push(from_ms(a));
            self.ends.push(from_ms(b));
        }
    }
}

fn bin(tier: Tier, column: &str) -> String {
    format!("date_bin(make_interval(secs => {}), {column}, TIMESTAMPTZ 'epoch')", tier.width_ms() / 1000)
}

fn recompute_sql(tier: Tier) -> String {
    let select = match tier.finer() {
        None => format!(
            "SELECT r.machine_key, {b} AS b, COUNT(*), SUM(power_kw), MIN(power_kw), MAX(power_kw), SUM(energy_kwh),
                    SUM(production_units), COUNT(production_units), SUM(outdoor_temp_c), COUNT(outdoor_temp_c)
             FROM UNNEST($1::int4[], $2::timestamptz[], $3::timestamptz[]) AS g (k, a, z)
             JOIN readings r ON r.machine_key = g.k AND r.ts >= g.a AND r.ts < g.z
             GROUP BY r.machine_key, b",
            b = bin(tier, "r.ts")
        ),
        Some(finer) => format!(
            "SELECT f.machine_key, {b} AS b, SUM(samples), SUM(sum_kw), MIN(min_kw), MAX(max_kw), SUM(sum_kwh),
                    SUM(sum_units), SUM(n_units), SUM(sum_temp), SUM(n_temp)
             FROM UNNEST($1::int4[], $2::timestamptz[], $3::timestamptz[]) AS g (k, a, z)
             JOIN {table} f ON f.machine_key = g.k AND f.bucket >= g.a AND f.bucket < g.z
             GROUP BY f.machine_key, b",
            b = bin(tier, "f.bucket"),
            table = finer.table()
        ),
    };
    format!(
        "INSERT INTO {} (machine_key, bucket, samples, sum_kw, min_kw, max_kw, sum_kwh, sum_units, n_units,
                         sum_temp, n_temp) {select}
         ON CONFLICT (machine_key, bucket) DO UPDATE SET samples = excluded.samples, sum_kw = excluded.sum_kw,
             min_kw = excluded.min_kw, max_kw = excluded.max_kw, sum_kwh = excluded.sum_kwh,
             sum_units = excluded.sum_units, n_units = excluded.n_units, sum_temp = excluded.sum_temp,
             n_temp = excluded.n_temp",
        tier.table()
    )
}

/// One segment's buckets of `width` ms, first `limit`, ordered.
pub async fn segment(conn: &mut PgConnection, key: i32, seg: Segment, width: i64, limit: u32) -> Result<Vec<Partial>> {
    let secs = width as f64 / 1000.0;
    let sql = match seg.source {
        Source::Raw => "SELECT date_bin(make_interval(secs => $5), ts, TIMESTAMPTZ 'epoch') AS b, COUNT(*) AS n,
                    SUM(power_kw) AS skw, MIN(power_kw) AS mn, MAX(power_kw) AS mx, SUM(energy_kwh) AS skwh,
                    SUM(production_units) AS su, COUNT(production_units) AS nu, SUM(outdoor_temp_c) AS st,
                    COUNT(outdoor_temp_c) AS nt
             FROM readings WHERE machine_key = $1 AND ts >= $2 AND ts < $3
             GROUP BY b ORDER BY b LIMIT $4"
            .to_owned(),
        Source::Tier(tier) => format!(
            "SELECT date_bin(make_interval(secs => $5), bucket, TIMESTAMPTZ 'epoch') AS b, SUM(samples)::int8 AS n,
                    SUM(sum_kw) AS skw, MIN(min_kw) AS mn, MAX(max_kw) AS mx, SUM(sum_kwh) AS skwh,
                    SUM(sum_units) AS su, SUM(n_units)::int8 AS nu, SUM(sum_temp) AS st, SUM(n_temp)::int8 AS nt
             FROM {} WHERE machine_key = $1 AND bucket >= $2 AND bucket < $3
             GROUP BY b ORDER BY b LIMIT $4",
            tier.table()
        ),
    };
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(key)
        .bind(from_ms(seg.start))
        .bind(from_ms(seg.end))
        .bind(i64::from(limit))
        .bind(secs)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(partial).collect()
}

fn partial(row: &PgRow) -> Result<Partial> {
    Ok(Partial {
        bucket: to_ms(row.try_get("b")?),
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

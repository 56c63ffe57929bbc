//! Reading rows: bulk, idempotent ingest (with the rollups of the touched
//! buckets, in the same transaction) and time-range queries, raw or
//! aggregated — aggregates read from the coarsest rollup tier that answers
//! each part of the range exactly (`crate::rollup::plan`).
//!
//! A batch travels as one array per column into a single
//! `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO UPDATE` per chunk: one
//! round trip and one plan for thousands of rows, which is what makes ingest
//! fast without COPY (COPY cannot upsert).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use enms_core::Reading;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use super::{ms, rollup};
use crate::periods::Point;
use crate::{ReadingPoint, ReadingQuery, Result, StoreError};
use enms_core::timestamp::to_ms;

/// Rows per statement: large enough to amortise the round trip, small enough
/// to keep each statement's memory modest.
const CHUNK: usize = 10_000;

pub async fn insert(pool: &PgPool, batch: &[Reading]) -> Result<()> {
    let mut tx = pool.begin().await?;
    let keys = machine_keys(&mut tx, batch).await?;
    rollup::lock(&mut tx, &mut keys.values().map(|k| k.0).collect::<Vec<_>>()).await?;
    // Each machine's newest reading before this batch, read under the lock.
    let mut newest: HashMap<i32, Option<i64>> = HashMap::with_capacity(keys.len());
    let rows = sqlx::query("SELECT key, last_reading_at FROM machines WHERE key = ANY($1)")
        .bind(keys.values().map(|k| k.0).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    for row in rows {
        let at: Option<DateTime<Utc>> = row.try_get("last_reading_at")?;
        newest.insert(row.try_get("key")?, at.map(to_ms));
    }
    // Read after the locks: a pruning pass raises the floor before it
    // deletes under the same locks.
    if let Some(floor) = super::retention::floors(&mut tx).await?.raw.map(crate::retention::earliest_accepted)
        && let Some(old) = batch.iter().find(|r| to_ms(r.timestamp) < floor)
    {
        return Err(StoreError::PastRetention { at: old.timestamp, floor: enms_core::timestamp::from_ms(floor) });
    }
    // A statement may not update one row twice: the last reading of a
    // (machine, timestamp) wins, as it would row by row.
    let mut latest: HashMap<(i32, DateTime<Utc>), &Reading> = HashMap::with_capacity(batch.len());
    let mut order = Vec::with_capacity(batch.len());
    for r in batch {
        let key = (keys[&r.machine_id].0, ms(r.timestamp));
        if latest.insert(key, r).is_none() {
            order.push(key);
        }
    }
    for chunk in order.chunks(CHUNK) {
        let mut columns = Columns::with_capacity(chunk.len());
        for key in chunk {
            columns.push(*key, latest[key]);
        }
        columns.insert(&mut tx).await?;
    }
    let mut touched: HashMap<i32, Vec<i64>> = HashMap::with_capacity(keys.len());
    for (key, ts) in &order {
        touched.entry(*key).or_default().push(to_ms(*ts));
    }
    rollup::refresh(&mut tx, &mut touched).await?;
    // The hour cells: added to for readings after a machine's newest one,
    // recomputed around the others.
    let mut points: HashMap<i32, Vec<Point>> = HashMap::with_capacity(keys.len());
    for key in &order {
        let r = latest[key];
        points.entry(key.0).or_default().push(Point {
            ts: to_ms(key.1),
            power_kw: r.power_kw,
            units: r.production_units,
            temp: r.outdoor_temp_c,
        });
    }
    for (key, points) in &points {
        super::periods::update(&mut tx, *key, newest[key], points).await?;
    }
    for (key, newest) in keys.values() {
        sqlx::query("UPDATE machines SET last_reading_at = GREATEST(last_reading_at, $1) WHERE key = $2")
            .bind(newest)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Default)]
struct Columns {
    keys: Vec<i32>,
    ts: Vec<DateTime<Utc>>,
    power: Vec<f64>,
    energy: Vec<f64>,
    units: Vec<Option<f64>>,
    temp: Vec<Option<f64>>,
    extra: Vec<Option<String>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            power: Vec::with_capacity(n),
            energy: Vec::with_capacity(n),
            units: Vec::with_capacity(n),
            temp: Vec::with_capacity(n),
            extra: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, (key, ts): (i32, DateTime<Utc>), r: &Reading) {
        self.keys.push(key);
        self.ts.push(ts);
        self.power.push(r.power_kw);
        self.energy.push(r.energy_kwh);
        self.units.push(r.production_units);
        self.temp.push(r.outdoor_temp_c);
        self.extra.push(if r.extra.is_empty() { None } else { serde_json::to_string(&r.extra).ok() });
    }

    async fn insert(self, conn: &mut sqlx::PgConnection) -> Result<()> {
        sqlx::query(
            "INSERT INTO readings (machine_key, ts, power_kw, energy_kwh, production_units, outdoor_temp_c, extra)
             SELECT k, t, p, e, u, o, x::jsonb
             FROM UNNEST($1::int4[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                         $7::text[]) AS r (k, t, p, e, u, o, x)
             ON CONFLICT (machine_key, ts) DO UPDATE SET power_kw = excluded.power_kw,
                 energy_kwh = excluded.energy_kwh, production_units = excluded.production_units,
                 outdoor_temp_c = excluded.outdoor_temp_c, extra = excluded.extra",
        )
        .bind(self.keys)
        .bind(self.ts)
        .bind(self.power)
        .bind(self.energy)
        .bind(self.units)
        .bind(self.temp)
        .bind(self.extra)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Integer key and newest timestamp of every machine in the batch.
async fn machine_keys(conn: &mut sqlx::PgConnection, batch: &[Reading]) -> Result<HashMap<Uuid, (i32, DateTime<Utc>)>> {
    let mut newest: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for r in batch {
        let t = ms(r.timestamp);
        newest.entry(r.machine_id).and_modify(|n| *n = (*n).max(t)).or_insert(t);
    }
    let ids: Vec<Uuid> = newest.keys().copied().collect();
    let rows = sqlx::query("SELECT id, key FROM machines WHERE id = ANY($1)").bind(&ids).fetch_all(&mut *conn).await?;
    let mut keys = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        keys.insert(id, (row.try_get::<i32, _>("key")?, newest[&id]));
    }
    match ids.iter().find(|id| !keys.contains_key(id)) {
        Some(missing) => Err(StoreError::UnknownMachine(*missing)),
        None => Ok(keys),
    }
}

/// Raw rows, or buckets merged from the coarsest tier per part of the
/// range; where retention pruned a level, the levels that remain answer
/// (`rollup::regions`). One repeatable-read transaction: one snapshot.
pub async fn query(pool: &PgPool, q: &ReadingQuery) -> Result<Vec<ReadingPoint>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let key: Option<i32> = sqlx::query_scalar("SELECT key FROM machines WHERE id = $1")
        .bind(q.machine_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(key) = key else { return Ok(Vec::new()) };
    let floors = super::retention::floors(&mut tx).await?;
    let mut out: Vec<ReadingPoint> = Vec::new();
    for region in crate::rollup::regions(to_ms(q.start), to_ms(q.end), q.resolution.bucket_ms(), &floors) {
        let left = q.limit.saturating_sub(out.len().try_into().unwrap_or(u32::MAX));
        if left == 0 {
            break;
        }
        match region.width {
            None => {
                let rows = sqlx::query(
                    "SELECT ts AS bucket, power_kw AS avg_kw, power_kw AS max_kw, energy_kwh AS kwh,
                            production_units AS units, outdoor_temp_c AS temp, 1::int8 AS samples, extra
                     FROM readings WHERE machine_key = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
                )
                .bind(key)
                .bind(enms_core::timestamp::from_ms(region.start))
                .bind(enms_core::timestamp::from_ms(region.end))
                .bind(i64::from(left))
                .fetch_all(&mut *tx)
                .await?;
                for row in &rows {
                    out.push(point(row)?);
                }
            }
            Some(width) => {
                let mut parts = Vec::new();
                for seg in crate::rollup::plan_from(region.start, region.end, width, region.finest) {
                    parts.push(rollup::segment(&mut tx, key, seg, width, left).await?);
                }
                out.extend(crate::rollup::merge(parts, left));
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

fn point(row: &PgRow) -> Result<ReadingPoint> {
    Ok(ReadingPoint {
        timestamp: row.try_get("bucket")?,
        power_kw: row.try_get("avg_kw")?,
        max_power_kw: row.try_get("max_kw")?,
        energy_kwh: row.try_get("kwh")?,
        production_units: row.try_get("units")?,
        outdoor_temp_c: row.try_get("temp")?,
        samples: row.try_get::<i64, _>("samples")?.try_into().unwrap_or(u32::MAX),
        extra: row.try_get("extra")?,
    })
}

pub async fn count(pool: &PgPool, machine: Option<Uuid>) -> Result<u64> {
    let n: i64 = match machine {
        Some(id) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM readings WHERE machine_key = (SELECT key FROM machines WHERE id = $1)",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
        }
        None => sqlx::query_scalar("SELECT COUNT(*) FROM readings").fetch_one(pool).await?,
    };
    Ok(n.try_into().unwrap_or(0))
}

pub async fn extra_names(
    pool: &PgPool,
    machine: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT k FROM readings r, jsonb_object_keys(r.extra) AS k
         WHERE r.machine_key = (SELECT key FROM machines WHERE id = $1) AND r.ts >= $2 AND r.ts < $3
           AND r.extra IS NOT NULL
         ORDER BY k",
    )
    .bind(machine)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?)
}

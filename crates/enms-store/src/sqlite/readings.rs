//! Reading rows: batched, idempotent ingest (with the rollups of the
//! touched buckets, in the same transaction) and time-range queries, raw or
//! aggregated — aggregates read from the coarsest rollup tier that answers
//! each part of the range exactly (`crate::rollup::plan`).

use std::collections::HashMap;
use std::sync::LazyLock;

use enms_core::Reading;
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};
use uuid::Uuid;

use super::rollup;
use crate::periods::Point;
use crate::{ReadingPoint, ReadingQuery, Result, StoreError};

/// Rows per INSERT statement: 7 parameters each stays far below SQLite's
/// 32,766 variable limit while amortising statement overhead.
const CHUNK: usize = 500;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(160 + rows * 16);
    sql.push_str(
        "INSERT INTO readings (machine_key, ts, power_kw, energy_kwh, production_units, outdoor_temp_c, extra) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?,?,?,?)" } else { ",(?,?,?,?,?,?,?)" });
    }
    sql.push_str(
        " ON CONFLICT (machine_key, ts) DO UPDATE SET power_kw = excluded.power_kw, energy_kwh = excluded.energy_kwh, \
         production_units = excluded.production_units, outdoor_temp_c = excluded.outdoor_temp_c, extra = excluded.extra",
    );
    sql
}

/// The full-chunk statement is built once; sqlx caches its prepared form.
static INSERT_FULL: LazyLock<String> = LazyLock::new(|| insert_sql(CHUNK));

pub async fn insert(pool: &SqlitePool, batch: &[Reading]) -> Result<()> {
    let mut tx = pool.begin().await?;
    let keys = machine_keys(&mut tx, batch).await?;
    if let Some(floor) = super::retention::floors(&mut tx).await?.raw.map(crate::retention::earliest_accepted)
        && let Some(old) = batch.iter().find(|r| to_ms(r.timestamp) < floor)
    {
        return Err(StoreError::PastRetention { at: old.timestamp, floor: from_ms(floor) });
    }
    for chunk in batch.chunks(CHUNK) {
        let sql = if chunk.len() == CHUNK { INSERT_FULL.clone() } else { insert_sql(chunk.len()) };
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for r in chunk {
            let extra = if r.extra.is_empty() { None } else { serde_json::to_string(&r.extra).ok() };
            query = query
                .bind(keys[&r.machine_id].key)
                .bind(to_ms(r.timestamp))
                .bind(r.power_kw)
                .bind(r.energy_kwh)
                .bind(r.production_units)
                .bind(r.outdoor_temp_c)
                .bind(extra);
        }
        query.execute(&mut *tx).await?;
    }
    // Per machine, in batch order: the touched buckets and hour cells.
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(keys.len());
    let mut points: Vec<(i64, Option<i64>, Vec<Point>)> = Vec::with_capacity(keys.len());
    for r in batch {
        let m = &keys[&r.machine_id];
        let i = *index.entry(m.key).or_insert_with(|| {
            points.push((m.key, m.newest_before, Vec::new()));
            points.len() - 1
        });
        points[i].2.push(Point {
            ts: to_ms(r.timestamp),
            power_kw: r.power_kw,
            units: r.production_units,
            temp: r.outdoor_temp_c,
        });
    }
    let mut touched: Vec<(i64, Vec<i64>)> =
        points.iter().map(|(key, _, ps)| (*key, ps.iter().map(|p| p.ts).collect())).collect();
    rollup::refresh(&mut tx, &mut touched).await?;
    super::periods::update(&mut tx, &points).await?;
    let newest: Vec<(i64, i64)> = keys.values().map(|m| (m.key, m.newest_in_batch)).collect();
    sqlx::query(
        "UPDATE machines SET last_reading_at = MAX(COALESCE(last_reading_at, 0), j.value ->> 1)
         FROM json_each(?) j WHERE machines.key = j.value ->> 0",
    )
    .bind(serde_json::to_string(&newest).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A batch's machine: its key, its newest reading before the batch and
/// the newest in it.
struct BatchMachine {
    key: i64,
    newest_before: Option<i64>,
    newest_in_batch: i64,
}

/// Every machine of the batch, looked up in one statement.
async fn machine_keys(conn: &mut SqliteConnection, batch: &[Reading]) -> Result<HashMap<Uuid, BatchMachine>> {
    let mut newest: HashMap<Uuid, i64> = HashMap::new();
    for r in batch {
        let ts = to_ms(r.timestamp);
        newest.entry(r.machine_id).and_modify(|n| *n = (*n).max(ts)).or_insert(ts);
    }
    let ids: Vec<String> = newest.keys().map(Uuid::to_string).collect();
    let rows =
        sqlx::query("SELECT id, key, last_reading_at FROM machines WHERE id IN (SELECT value FROM json_each(?))")
            .bind(serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .fetch_all(&mut *conn)
            .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let id = Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("machine id {id:?}")))?;
        out.insert(
            id,
            BatchMachine {
                key: row.try_get("key")?,
                newest_before: row.try_get("last_reading_at")?,
                newest_in_batch: newest[&id],
            },
        );
    }
    // The first unknown machine in batch order, as before.
    match batch.iter().find(|r| !out.contains_key(&r.machine_id)) {
        Some(r) => Err(StoreError::UnknownMachine(r.machine_id)),
        None => Ok(out),
    }
}

/// Raw rows, or buckets merged from the coarsest tier per part of the
/// range; where retention pruned a level, the levels that remain answer
/// (`rollup::regions`). One read transaction: one snapshot for it all.
pub async fn query(pool: &SqlitePool, q: &ReadingQuery) -> Result<Vec<ReadingPoint>> {
    let mut tx = pool.begin().await?;
    let key: Option<i64> = sqlx::query_scalar("SELECT key FROM machines WHERE id = ?")
        .bind(q.machine_id.to_string())
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
                            production_units AS units, outdoor_temp_c AS temp, 1 AS samples, extra
                     FROM readings WHERE machine_key = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?",
                )
                .bind(key)
                .bind(region.start)
                .bind(region.end)
                .bind(left)
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

fn point(row: &SqliteRow) -> Result<ReadingPoint> {
    let extra: Option<String> = row.try_get("extra")?;
    Ok(ReadingPoint {
        timestamp: from_ms(row.try_get("bucket")?),
        power_kw: row.try_get("avg_kw")?,
        max_power_kw: row.try_get("max_kw")?,
        energy_kwh: row.try_get("kwh")?,
        production_units: row.try_get("units")?,
        outdoor_temp_c: row.try_get("temp")?,
        samples: row.try_get::<i64, _>("samples")?.try_into().unwrap_or(u32::MAX),
        extra: extra
            .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("extra {text:?}: {e}"))))
            .transpose()?,
    })
}

pub async fn count(pool: &SqlitePool, machine: Option<Uuid>) -> Result<u64> {
    let n: i64 = match machine {
        Some(id) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM readings WHERE machine_key = (SELECT key FROM machines WHERE id = ?)",
            )
            .bind(id.to_string())
            .fetch_one(pool)
            .await?
        }
        None => sqlx::query_scalar("SELECT COUNT(*) FROM readings").fetch_one(pool).await?,
    };
    Ok(n.try_into().unwrap_or(0))
}

pub async fn extra_names(
    pool: &SqlitePool,
    machine: Uuid,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT j.key FROM readings r, json_each(r.extra) j
         WHERE r.machine_key = (SELECT key FROM machines WHERE id = ?) AND r.ts >= ? AND r.ts < ?
           AND r.extra IS NOT NULL
         ORDER BY j.key",
    )
    .bind(machine.to_string())
    .bind(to_ms(start))
    .bind(to_ms(end))
    .fetch_all(pool)
    .await?)
}

//! The durable event log.

use enms_core::event::{Event, EventId, EventType};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::{Result, StoreError};

pub async fn append(pool: &SqlitePool, events: &[Event]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for e in events {
        sqlx::query("INSERT OR IGNORE INTO events (ms, seq, event_type, ts, data) VALUES (?, ?, ?, ?, ?)")
            .bind(e.id.ms as i64)
            .bind(e.id.seq as i64)
            .bind(e.event_type.as_str())
            .bind(to_ms(e.timestamp))
            .bind(e.data.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn after(pool: &SqlitePool, after: EventId, limit: u32) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT ms, seq, event_type, ts, data FROM events WHERE (ms, seq) > (?, ?) ORDER BY ms, seq LIMIT ?",
    )
    .bind(after.ms as i64)
    .bind(after.seq as i64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event).collect()
}

pub async fn before(pool: &SqlitePool, before: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
    let before = before.unwrap_or(EventId { ms: i64::MAX as u64, seq: i64::MAX as u64 });
    let rows = sqlx::query(
        "SELECT ms, seq, event_type, ts, data FROM events WHERE (ms, seq) < (?, ?) ORDER BY ms DESC, seq DESC LIMIT ?",
    )
    .bind(before.ms as i64)
    .bind(before.seq as i64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event).collect()
}

fn event(row: &sqlx::sqlite::SqliteRow) -> Result<Event> {
    let kind: String = row.try_get("event_type")?;
    let data: String = row.try_get("data")?;
    Ok(Event {
        id: EventId { ms: row.try_get::<i64, _>("ms")? as u64, seq: row.try_get::<i64, _>("seq")? as u64 },
        event_type: kind.parse::<EventType>().map_err(StoreError::Corrupt)?,
        timestamp: from_ms(row.try_get("ts")?),
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
    })
}

pub async fn last_id(pool: &SqlitePool) -> Result<Option<EventId>> {
    let row = sqlx::query("SELECT ms, seq FROM events ORDER BY ms DESC, seq DESC LIMIT 1").fetch_optional(pool).await?;
    row.map(|r| Ok(EventId { ms: r.try_get::<i64, _>("ms")? as u64, seq: r.try_get::<i64, _>("seq")? as u64 }))
        .transpose()
}

/// Deletes events older than `before` and raises the floor to the newest id
/// deleted, in one transaction.
pub async fn prune(pool: &SqlitePool, before: EventId) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let newest = sqlx::query("SELECT ms, seq FROM events WHERE (ms, seq) < (?, ?) ORDER BY ms DESC, seq DESC LIMIT 1")
        .bind(before.ms as i64)
        .bind(before.seq as i64)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(newest) = newest else { return Ok(0) };
    let (ms, seq): (i64, i64) = (newest.try_get("ms")?, newest.try_get("seq")?);
    let deleted =
        sqlx::query("DELETE FROM events WHERE (ms, seq) <= (?, ?)").bind(ms).bind(seq).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO event_log_floor (only, ms, seq) VALUES (1, ?, ?) \
         ON CONFLICT (only) DO UPDATE SET ms = excluded.ms, seq = excluded.seq",
    )
    .bind(ms)
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}

pub async fn floor(pool: &SqlitePool) -> Result<Option<EventId>> {
    let row = sqlx::query("SELECT ms, seq FROM event_log_floor WHERE only = 1").fetch_optional(pool).await?;
    row.map(|r| Ok(EventId { ms: r.try_get::<i64, _>("ms")? as u64, seq: r.try_get::<i64, _>("seq")? as u64 }))
        .transpose()
}

//! The durable event log.

use enms_core::event::{Event, EventId, EventType};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::ms;
use crate::{Result, StoreError};

/// One statement per batch: the columns travel as arrays.
pub async fn append(pool: &PgPool, events: &[Event]) -> Result<()> {
    let mut ids_ms = Vec::with_capacity(events.len());
    let mut seqs = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut stamps = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    for e in events {
        ids_ms.push(e.id.ms as i64);
        seqs.push(e.id.seq as i64);
        kinds.push(e.event_type.as_str());
        stamps.push(ms(e.timestamp));
        data.push(e.data.to_string());
    }
    sqlx::query(
        "INSERT INTO events (ms, seq, event_type, ts, data)
         SELECT m, s, k, t, d::jsonb FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::timestamptz[], $5::text[])
             AS u (m, s, k, t, d)
         ON CONFLICT (ms, seq) DO NOTHING",
    )
    .bind(ids_ms)
    .bind(seqs)
    .bind(kinds)
    .bind(stamps)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn after(pool: &PgPool, after: EventId, limit: u32) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT ms, seq, event_type, ts, data FROM events WHERE (ms, seq) > ($1, $2) ORDER BY ms, seq LIMIT $3",
    )
    .bind(after.ms as i64)
    .bind(after.seq as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(event).collect()
}

pub async fn before(pool: &PgPool, before: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
    let before = before.unwrap_or(EventId { ms: i64::MAX as u64, seq: i64::MAX as u64 });
    let rows = sqlx::query(
        "SELECT ms, seq, event_type, ts, data FROM events WHERE (ms, seq) < ($1, $2)
         ORDER BY ms DESC, seq DESC LIMIT $3",
    )
    .bind(before.ms as i64)
    .bind(before.seq as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(event).collect()
}

fn id(row: &PgRow) -> Result<EventId> {
    Ok(EventId { ms: row.try_get::<i64, _>("ms")? as u64, seq: row.try_get::<i64, _>("seq")? as u64 })
}

fn event(row: &PgRow) -> Result<Event> {
    let kind: String = row.try_get("event_type")?;
    Ok(Event {
        id: id(row)?,
        event_type: kind.parse::<EventType>().map_err(StoreError::Corrupt)?,
        timestamp: row.try_get("ts")?,
        data: row.try_get("data")?,
    })
}

pub async fn last_id(pool: &PgPool) -> Result<Option<EventId>> {
    let row = sqlx::query("SELECT ms, seq FROM events ORDER BY ms DESC, seq DESC LIMIT 1").fetch_optional(pool).await?;
    row.as_ref().map(id).transpose()
}

/// Deletes events older than `before` and raises the floor to the newest id
/// deleted, in one transaction.
pub async fn prune(pool: &PgPool, before: EventId) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let newest =
        sqlx::query("SELECT ms, seq FROM events WHERE (ms, seq) < ($1, $2) ORDER BY ms DESC, seq DESC LIMIT 1")
            .bind(before.ms as i64)
            .bind(before.seq as i64)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(newest) = newest else { return Ok(0) };
    let (ms, seq): (i64, i64) = (newest.try_get("ms")?, newest.try_get("seq")?);
    let deleted =
        sqlx::query("DELETE FROM events WHERE (ms, seq) <= ($1, $2)").bind(ms).bind(seq).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO event_log_floor (only_row, ms, seq) VALUES (TRUE, $1, $2)
         ON CONFLICT (only_row) DO UPDATE SET ms = excluded.ms, seq = excluded.seq
             WHERE (excluded.ms, excluded.seq) > (event_log_floor.ms, event_log_floor.seq)",
    )
    .bind(ms)
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}

pub async fn floor(pool: &PgPool) -> Result<Option<EventId>> {
    let row = sqlx::query("SELECT ms, seq FROM event_log_floor").fetch_optional(pool).await?;
    row.as_ref().map(id).transpose()
}

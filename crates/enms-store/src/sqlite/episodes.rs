//! Anomaly episodes in SQLite: upserted by id, listed by overlap with a window.

use enms_core::timestamp::{from_ms, to_ms};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::parse_uuid;
use crate::Result;
use crate::analytics::{EpisodeQuery, EpisodeRecord};

pub async fn upsert(pool: &SqlitePool, batch: &[EpisodeRecord]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for e in batch {
        sqlx::query(
            "INSERT INTO episodes (id, machine_id, anomaly_type, severity, start_ts, end_ts, peak_ts, peak_score,
                signal, peak_value, peak_expected, count, actual_kwh, expected_kwh, open, source, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET severity = excluded.severity, end_ts = excluded.end_ts,
                peak_ts = excluded.peak_ts, peak_score = excluded.peak_score, signal = excluded.signal,
                peak_value = excluded.peak_value, peak_expected = excluded.peak_expected, count = excluded.count,
                actual_kwh = excluded.actual_kwh, expected_kwh = excluded.expected_kwh, open = excluded.open,
                source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(e.id.to_string())
        .bind(e.machine_id.to_string())
        .bind(&e.anomaly_type)
        .bind(&e.severity)
        .bind(to_ms(e.start))
        .bind(to_ms(e.end))
        .bind(to_ms(e.peak_at))
        .bind(e.peak_score)
        .bind(&e.signal)
        .bind(e.peak_value)
        .bind(e.peak_expected)
        .bind(e.count)
        .bind(e.actual_kwh)
        .bind(e.expected_kwh)
        .bind(e.open)
        .bind(&e.source)
        .bind(to_ms(e.updated_at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn episode(row: &SqliteRow) -> Result<EpisodeRecord> {
    Ok(EpisodeRecord {
        id: parse_uuid(row.try_get("id")?)?,
        machine_id: parse_uuid(row.try_get("machine_id")?)?,
        anomaly_type: row.try_get("anomaly_type")?,
        severity: row.try_get("severity")?,
        start: from_ms(row.try_get("start_ts")?),
        end: from_ms(row.try_get("end_ts")?),
        peak_at: from_ms(row.try_get("peak_ts")?),
        peak_score: row.try_get("peak_score")?,
        signal: row.try_get("signal")?,
        peak_value: row.try_get("peak_value")?,
        peak_expected: row.try_get("peak_expected")?,
        count: row.try_get("count")?,
        actual_kwh: row.try_get("actual_kwh")?,
        expected_kwh: row.try_get("expected_kwh")?,
        open: row.try_get("open")?,
        source: row.try_get("source")?,
        updated_at: from_ms(row.try_get("updated_at")?),
    })
}

pub async fn list(pool: &SqlitePool, q: &EpisodeQuery) -> Result<Vec<EpisodeRecord>> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT * FROM episodes WHERE 1 = 1");
    if let Some(id) = q.id {
        b.push(" AND id = ").push_bind(id.to_string());
    }
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m.to_string());
    }
    if let Some(t) = q.since {
        b.push(" AND end_ts >= ").push_bind(to_ms(t));
    }
    if let Some(t) = q.until {
        b.push(" AND start_ts < ").push_bind(to_ms(t));
    }
    if let Some(open) = q.open {
        b.push(" AND open = ").push_bind(open);
    }
    if let Some(s) = &q.severity {
        b.push(" AND severity = ").push_bind(s.clone());
    }
    b.push(" ORDER BY start_ts DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(episode).collect()
}

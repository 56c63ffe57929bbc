//! The demo factory's labelled anomalies.

use enms_core::sim::{AnomalyKind, InjectedAnomaly};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::parse_uuid;
use crate::{Result, StoreError};

pub async fn record(pool: &SqlitePool, anomalies: &[InjectedAnomaly]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for a in anomalies {
        sqlx::query(
            "INSERT OR IGNORE INTO demo_injected (id, machine_id, kind, start_ts, end_ts, magnitude, description)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.id.to_string())
        .bind(a.machine_id.to_string())
        .bind(a.kind.as_str())
        .bind(to_ms(a.start))
        .bind(to_ms(a.end))
        .bind(a.magnitude)
        .bind(&a.description)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<InjectedAnomaly>> {
    let rows = sqlx::query(
        "SELECT id, machine_id, kind, start_ts, end_ts, magnitude, description FROM demo_injected ORDER BY start_ts, id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(InjectedAnomaly {
                id: parse_uuid(row.try_get("id")?)?,
                machine_id: parse_uuid(row.try_get("machine_id")?)?,
                kind: AnomalyKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("anomaly kind {kind:?}")))?,
                start: from_ms(row.try_get("start_ts")?),
                end: from_ms(row.try_get("end_ts")?),
                magnitude: row.try_get("magnitude")?,
                description: row.try_get("description")?,
            })
        })
        .collect()
}

//! The demo factory's labelled anomalies.

use enms_core::sim::{AnomalyKind, InjectedAnomaly};
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::ms;
use crate::{Result, StoreError};

pub async fn record(pool: &PgPool, anomalies: &[InjectedAnomaly]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for a in anomalies {
        sqlx::query(
            "INSERT INTO demo_injected (id, machine_id, kind, start_ts, end_ts, magnitude, description)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(a.id)
        .bind(a.machine_id)
        .bind(a.kind.as_str())
        .bind(ms(a.start))
        .bind(ms(a.end))
        .bind(a.magnitude)
        .bind(&a.description)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool) -> Result<Vec<InjectedAnomaly>> {
    let rows = sqlx::query(
        "SELECT id, machine_id, kind, start_ts, end_ts, magnitude, description FROM demo_injected ORDER BY start_ts, id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(InjectedAnomaly {
                id: row.try_get("id")?,
                machine_id: row.try_get("machine_id")?,
                kind: AnomalyKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("anomaly kind {kind:?}")))?,
                start: row.try_get("start_ts")?,
                end: row.try_get("end_ts")?,
                magnitude: row.try_get("magnitude")?,
                description: row.try_get("description")?,
            })
        })
        .collect()
}

//! Machine rows.

use enms_core::MachineRecord;
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use super::parse_uuid;
use crate::{Result, StoreError};

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, machine_type, location, rated_power_kw, created_at, last_reading_at FROM machines",
            $tail
        )
    };
}

fn record(row: &SqliteRow) -> Result<MachineRecord> {
    Ok(MachineRecord {
        id: parse_uuid(row.try_get("id")?)?,
        name: row.try_get("name")?,
        machine_type: row.try_get("machine_type")?,
        location: row.try_get("location")?,
        rated_power_kw: row.try_get("rated_power_kw")?,
        created_at: from_ms(row.try_get("created_at")?),
        last_reading_at: row.try_get::<Option<i64>, _>("last_reading_at")?.map(from_ms),
    })
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<MachineRecord>> {
    sqlx::query(select!(" ORDER BY name")).fetch_all(pool).await?.iter().map(record).collect()
}

pub async fn get(pool: &SqlitePool, id: Uuid) -> Result<Option<MachineRecord>> {
    sqlx::query(select!(" WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub async fn by_name(pool: &SqlitePool, name: &str) -> Result<Option<MachineRecord>> {
    sqlx::query(select!(" WHERE name = ?")).bind(name).fetch_optional(pool).await?.as_ref().map(record).transpose()
}

pub async fn create(pool: &SqlitePool, m: &MachineRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO machines (id, name, machine_type, location, rated_power_kw, created_at, last_reading_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(m.id.to_string())
    .bind(&m.name)
    .bind(&m.machine_type)
    .bind(&m.location)
    .bind(m.rated_power_kw)
    .bind(to_ms(m.created_at))
    .bind(m.last_reading_at.map(to_ms))
    .execute(pool)
    .await
    .map_err(|e| unique_violation(e, m))?;
    Ok(())
}

pub async fn update(pool: &SqlitePool, m: &MachineRecord) -> Result<bool> {
    let done =
        sqlx::query("UPDATE machines SET name = ?, machine_type = ?, location = ?, rated_power_kw = ? WHERE id = ?")
            .bind(&m.name)
            .bind(&m.machine_type)
            .bind(&m.location)
            .bind(m.rated_power_kw)
            .bind(m.id.to_string())
            .execute(pool)
            .await
            .map_err(|e| unique_violation(e, m))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(pool: &SqlitePool, id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM machines WHERE id = ?").bind(id.to_string()).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

fn unique_violation(e: sqlx::Error, m: &MachineRecord) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            if db.message().contains("machines.name") {
                StoreError::Conflict { field: "name", value: m.name.clone() }
            } else {
                StoreError::Conflict { field: "id", value: m.id.to_string() }
            }
        }
        _ => StoreError::Database(e),
    }
}

//! Machine rows.

use enms_core::MachineRecord;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use super::ms;
use crate::{Result, StoreError};

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, machine_type, location, rated_power_kw, created_at, last_reading_at FROM machines",
            $tail
        )
    };
}

fn record(row: &PgRow) -> Result<MachineRecord> {
    Ok(MachineRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        machine_type: row.try_get("machine_type")?,
        location: row.try_get("location")?,
        rated_power_kw: row.try_get("rated_power_kw")?,
        created_at: row.try_get("created_at")?,
        last_reading_at: row.try_get("last_reading_at")?,
    })
}

pub async fn list(pool: &PgPool) -> Result<Vec<MachineRecord>> {
    sqlx::query(select!(" ORDER BY name")).fetch_all(pool).await?.iter().map(record).collect()
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<MachineRecord>> {
    sqlx::query(select!(" WHERE id = $1")).bind(id).fetch_optional(pool).await?.as_ref().map(record).transpose()
}

pub async fn by_name(pool: &PgPool, name: &str) -> Result<Option<MachineRecord>> {
    sqlx::query(select!(" WHERE lower(name) = lower($1)"))
        .bind(name)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub async fn create(pool: &PgPool, m: &MachineRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO machines (id, name, machine_type, location, rated_power_kw, created_at, last_reading_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(m.id)
    .bind(&m.name)
    .bind(&m.machine_type)
    .bind(&m.location)
    .bind(m.rated_power_kw)
    .bind(ms(m.created_at))
    .bind(m.last_reading_at.map(ms))
    .execute(pool)
    .await
    .map_err(|e| unique_violation(e, m))?;
    Ok(())
}

pub async fn update(pool: &PgPool, m: &MachineRecord) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE machines SET name = $1, machine_type = $2, location = $3, rated_power_kw = $4 WHERE id = $5",
    )
    .bind(&m.name)
    .bind(&m.machine_type)
    .bind(&m.location)
    .bind(m.rated_power_kw)
    .bind(m.id)
    .execute(pool)
    .await
    .map_err(|e| unique_violation(e, m))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(pool: &PgPool, id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM machines WHERE id = $1").bind(id).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

fn unique_violation(e: sqlx::Error, m: &MachineRecord) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            if db.constraint() == Some("machines_name_key") {
                StoreError::Conflict { field: "name", value: m.name.clone() }
            } else {
                StoreError::Conflict { field: "id", value: m.id.to_string() }
            }
        }
        _ => StoreError::Database(e),
    }
}

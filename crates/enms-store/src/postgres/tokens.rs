//! API token rows.

use chrono::{DateTime, Utc};
use enms_core::access::TokenRecord;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use super::ms;
use crate::{Result, StoreError};

const SELECT: &str = "SELECT id, name, role, hash, created_at, revoked_at FROM api_tokens";

fn record(row: &PgRow) -> Result<TokenRecord> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub async fn create(pool: &PgPool, t: &TokenRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id)
    .bind(&t.name)
    .bind(t.role.as_str())
    .bind(&t.hash)
    .bind(ms(t.created_at))
    .bind(t.revoked_at.map(ms))
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some("api_tokens_name_key") => {
            StoreError::Conflict { field: "name", value: t.name.clone() }
        }
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

pub async fn list(pool: &PgPool) -> Result<Vec<TokenRecord>> {
    let sql = format!("{SELECT} ORDER BY created_at, name");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?.iter().map(record).collect()
}

pub async fn by_hash(pool: &PgPool, hash: &str) -> Result<Option<TokenRecord>> {
    let sql = format!("{SELECT} WHERE hash = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(pool).await?.as_ref().map(record).transpose()
}

pub async fn revoke(pool: &PgPool, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(ms(at))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

//! API token rows.

use chrono::{DateTime, Utc};
use enms_core::access::TokenRecord;
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use super::parse_uuid;
use crate::{Result, StoreError};

const SELECT: &str = "SELECT id, name, role, hash, created_at, revoked_at FROM api_tokens";

fn record(row: &SqliteRow) -> Result<TokenRecord> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: parse_uuid(row.try_get("id")?)?,
        name: row.try_get("name")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        hash: row.try_get("hash")?,
        created_at: from_ms(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
    })
}

pub async fn create(pool: &SqlitePool, t: &TokenRecord) -> Result<()> {
    sqlx::query("INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(&t.hash)
        .bind(to_ms(t.created_at))
        .bind(t.revoked_at.map(to_ms))
        .execute(pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains("api_tokens.name") => {
                StoreError::Conflict { field: "name", value: t.name.clone() }
            }
            _ => StoreError::Database(e),
        })?;
    Ok(())
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<TokenRecord>> {
    let sql = format!("{SELECT} ORDER BY created_at, name");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?.iter().map(record).collect()
}

pub async fn by_hash(pool: &SqlitePool, hash: &str) -> Result<Option<TokenRecord>> {
    let sql = format!("{SELECT} WHERE hash = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(pool).await?.as_ref().map(record).transpose()
}

pub async fn revoke(pool: &SqlitePool, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(to_ms(at))
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

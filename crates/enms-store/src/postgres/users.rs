//! Users and their sessions in PostgreSQL. Counting a failed sign-in is one
//! UPDATE (row-locked), so attempts racing on several instances all count;
//! starting a session clears the count in the same transaction.

use chrono::{DateTime, Utc};
use enms_core::access::{SessionRecord, UserRecord};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use uuid::Uuid;

use super::ms;
use crate::users::SESSIONS_KEPT;
use crate::{Result, StoreError};

const COLUMNS: &str =
    "id, name, role, password_hash, created_at, failed_logins, locked_until, last_login_at, disabled_at";
const SESSION: &str = "SELECT id, user_id, hash, created_at, expires_at, revoked_at FROM user_sessions";

fn user(row: &PgRow) -> Result<UserRecord> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        failed_logins: u32::try_from(row.try_get::<i32, _>("failed_logins")?).unwrap_or(0),
        locked_until: row.try_get("locked_until")?,
        last_login_at: row.try_get("last_login_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn session(row: &PgRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub async fn create(pool: &PgPool, u: &UserRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, name, role, password_hash, created_at, failed_logins, locked_until, last_login_at,
            disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(u.id)
    .bind(&u.name)
    .bind(u.role.as_str())
    .bind(&u.password_hash)
    .bind(ms(u.created_at))
    .bind(i32::try_from(u.failed_logins).unwrap_or(i32::MAX))
    .bind(u.locked_until.map(ms))
    .bind(u.last_login_at.map(ms))
    .bind(u.disabled_at.map(ms))
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some("users_name_key") => {
            StoreError::Conflict { field: "name", value: u.name.clone() }
        }
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

pub async fn list(pool: &PgPool) -> Result<Vec<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY lower(name)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?.iter().map(user).collect()
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?.as_ref().map(user).transpose()
}

pub async fn find(pool: &PgPool, name: &str) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(name) = lower($1)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await?.as_ref().map(user).transpose()
}

pub async fn update(pool: &PgPool, u: &UserRecord, end_sessions_at: Option<DateTime<Utc>>) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE users SET role = $1, password_hash = $2, disabled_at = $3 WHERE id = $4")
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(u.disabled_at.map(ms))
        .bind(u.id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(at) = end_sessions_at {
        sqlx::query("UPDATE user_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(u.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn failed_login(
    pool: &PgPool,
    id: Uuid,
    max_failures: u32,
    lock_until: DateTime<Utc>,
) -> Result<Option<UserRecord>> {
    // Both CASEs read the row's old count: the attempt that reaches the
    // limit locks the user and starts the count again.
    let sql = format!(
        "UPDATE users SET
            locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END,
            failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END
         WHERE id = $3
         RETURNING {COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i32::try_from(max_failures.max(1)).unwrap_or(i32::MAX))
        .bind(ms(lock_until))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

pub async fn start_session(pool: &PgPool, s: &SessionRecord) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2")
        .bind(ms(s.created_at))
        .bind(s.user_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Corrupt(format!("no user {} to start a session for", s.user_id)));
    }
    let cutoff = ms(s.created_at - SESSIONS_KEPT);
    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 AND (expires_at < $2 OR revoked_at < $2)")
        .bind(s.user_id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO user_sessions (id, user_id, hash, created_at, expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(&s.hash)
    .bind(ms(s.created_at))
    .bind(ms(s.expires_at))
    .bind(s.revoked_at.map(ms))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn find_session(pool: &PgPool, hash: &str) -> Result<Option<SessionRecord>> {
    let sql = format!("{SESSION} WHERE hash = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(pool).await?.as_ref().map(session).transpose()
}

pub async fn revoke_session(pool: &PgPool, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query("UPDATE user_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(ms(at))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

//! Users and their sessions in SQLite. Counting a failed sign-in is one
//! UPDATE, so attempts racing on several connections all count; starting a
//! session clears the count in the same transaction.

use chrono::{DateTime, Utc};
use enms_core::access::{SessionRecord, UserRecord};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use super::parse_uuid;
use crate::users::SESSIONS_KEPT;
use crate::{Result, StoreError};

const COLUMNS: &str =
    "id, name, role, password_hash, created_at, failed_logins, locked_until, last_login_at, disabled_at";
const SESSION: &str = "SELECT id, user_id, hash, created_at, expires_at, revoked_at FROM user_sessions";

fn user(row: &SqliteRow) -> Result<UserRecord> {
    let role: String = row.try_get("role")?;
    let at = |name: &str| -> Result<Option<DateTime<Utc>>> { Ok(row.try_get::<Option<i64>, _>(name)?.map(from_ms)) };
    Ok(UserRecord {
        id: parse_uuid(row.try_get("id")?)?,
        name: row.try_get("name")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_ms(row.try_get("created_at")?),
        failed_logins: u32::try_from(row.try_get::<i64, _>("failed_logins")?).unwrap_or(0),
        locked_until: at("locked_until")?,
        last_login_at: at("last_login_at")?,
        disabled_at: at("disabled_at")?,
    })
}

fn session(row: &SqliteRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: parse_uuid(row.try_get("id")?)?,
        user_id: parse_uuid(row.try_get("user_id")?)?,
        hash: row.try_get("hash")?,
        created_at: from_ms(row.try_get("created_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
    })
}

pub async fn create(pool: &SqlitePool, u: &UserRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, name, role, password_hash, created_at, failed_logins, locked_until, last_login_at,
            disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.id.to_string())
    .bind(&u.name)
    .bind(u.role.as_str())
    .bind(&u.password_hash)
    .bind(to_ms(u.created_at))
    .bind(i64::from(u.failed_logins))
    .bind(u.locked_until.map(to_ms))
    .bind(u.last_login_at.map(to_ms))
    .bind(u.disabled_at.map(to_ms))
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains("users.name") => {
            StoreError::Conflict { field: "name", value: u.name.clone() }
        }
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY name COLLATE NOCASE");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?.iter().map(user).collect()
}

pub async fn get(pool: &SqlitePool, id: Uuid) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

pub async fn find(pool: &SqlitePool, name: &str) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE name = ? COLLATE NOCASE");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await?.as_ref().map(user).transpose()
}

pub async fn update(pool: &SqlitePool, u: &UserRecord, end_sessions_at: Option<DateTime<Utc>>) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE users SET role = ?, password_hash = ?, disabled_at = ? WHERE id = ?")
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(u.disabled_at.map(to_ms))
        .bind(u.id.to_string())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(at) = end_sessions_at {
        sqlx::query("UPDATE user_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(to_ms(at))
            .bind(u.id.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn failed_login(
    pool: &SqlitePool,
    id: Uuid,
    max_failures: u32,
    lock_until: DateTime<Utc>,
) -> Result<Option<UserRecord>> {
    // Both CASEs read the row's old count: the attempt that reaches the
    // limit locks the user and starts the count again.
    let sql = format!(
        "UPDATE users SET
            locked_until = CASE WHEN failed_logins + 1 >= ?1 THEN ?2 ELSE locked_until END,
            failed_logins = CASE WHEN failed_logins + 1 >= ?1 THEN 0 ELSE failed_logins + 1 END
         WHERE id = ?3
         RETURNING {COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(max_failures.max(1)))
        .bind(to_ms(lock_until))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

pub async fn start_session(pool: &SqlitePool, s: &SessionRecord) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ? WHERE id = ?")
        .bind(to_ms(s.created_at))
        .bind(s.user_id.to_string())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Corrupt(format!("no user {} to start a session for", s.user_id)));
    }
    let cutoff = to_ms(s.created_at - SESSIONS_KEPT);
    sqlx::query("DELETE FROM user_sessions WHERE user_id = ? AND (expires_at < ? OR revoked_at < ?)")
        .bind(s.user_id.to_string())
        .bind(cutoff)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO user_sessions (id, user_id, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(s.id.to_string())
    .bind(s.user_id.to_string())
    .bind(&s.hash)
    .bind(to_ms(s.created_at))
    .bind(to_ms(s.expires_at))
    .bind(s.revoked_at.map(to_ms))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn find_session(pool: &SqlitePool, hash: &str) -> Result<Option<SessionRecord>> {
    let sql = format!("{SESSION} WHERE hash = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(pool).await?.as_ref().map(session).transpose()
}

pub async fn revoke_session(pool: &SqlitePool, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query("UPDATE user_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(to_ms(at))
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

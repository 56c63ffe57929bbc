//! The notifier's rows in PostgreSQL: alerts, the outbox with its claims
//! (`FOR UPDATE SKIP LOCKED`, so instances never claim one notification
//! twice) and attempts, and cursors.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::ms;
use crate::notify::{
    AlertRecord, AttemptResult, DeliveryAttempt, DeliveryStatus, NotificationQuery, NotificationRecord,
};
use crate::{Result, StoreError};

const ALERT: &str = "SELECT id, rule, subject, anomaly_id, machine_id, severity, title, opened_at, acknowledged_at,
    acknowledged_by, resolved_at, data FROM notify_alerts";

fn alert(row: &PgRow) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.try_get("id")?,
        rule: row.try_get("rule")?,
        subject: row.try_get("subject")?,
        anomaly_id: row.try_get("anomaly_id")?,
        machine_id: row.try_get("machine_id")?,
        severity: row.try_get("severity")?,
        title: row.try_get("title")?,
        opened_at: row.try_get("opened_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        data: row.try_get("data")?,
    })
}

pub async fn insert_alert(pool: &PgPool, a: &AlertRecord) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO notify_alerts (id, rule, subject, anomaly_id, machine_id, severity, title, opened_at,
            acknowledged_at, acknowledged_by, resolved_at, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&a.id)
    .bind(&a.rule)
    .bind(&a.subject)
    .bind(a.anomaly_id)
    .bind(a.machine_id)
    .bind(&a.severity)
    .bind(&a.title)
    .bind(ms(a.opened_at))
    .bind(a.acknowledged_at.map(ms))
    .bind(&a.acknowledged_by)
    .bind(a.resolved_at.map(ms))
    .bind(&a.data)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn update_alert(pool: &PgPool, a: &AlertRecord) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE notify_alerts SET anomaly_id = $1, severity = $2, title = $3, acknowledged_at = $4,
            acknowledged_by = $5, resolved_at = $6, data = $7 WHERE id = $8",
    )
    .bind(a.anomaly_id)
    .bind(&a.severity)
    .bind(&a.title)
    .bind(a.acknowledged_at.map(ms))
    .bind(&a.acknowledged_by)
    .bind(a.resolved_at.map(ms))
    .bind(&a.data)
    .bind(&a.id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_alert(pool: &PgPool, id: &str) -> Result<Option<AlertRecord>> {
    let sql = format!("{ALERT} WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?.as_ref().map(alert).transpose()
}

pub async fn list_alerts(pool: &PgPool, open_only: bool, limit: u32) -> Result<Vec<AlertRecord>> {
    let filter = if open_only { "WHERE resolved_at IS NULL" } else { "" };
    let sql = format!("{ALERT} {filter} ORDER BY opened_at DESC, id LIMIT $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(pool).await?.iter().map(alert).collect()
}

const COLUMNS: &str = "id, key, channel, kind, rule, alert_id, event_id, title, body, status, attempts,
    created_at, next_attempt_at, delivered_at, last_error";

fn notification(row: &PgRow) -> Result<NotificationRecord> {
    let status: String = row.try_get("status")?;
    Ok(NotificationRecord {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        channel: row.try_get("channel")?,
        kind: row.try_get("kind")?,
        rule: row.try_get("rule")?,
        alert_id: row.try_get("alert_id")?,
        event_id: row.try_get("event_id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("notification status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
        last_error: row.try_get("last_error")?,
    })
}

pub async fn enqueue(pool: &PgPool, batch: &[NotificationRecord]) -> Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let mut new = Vec::new();
    for n in batch {
        let done = sqlx::query(
            "INSERT INTO notifications (id, key, channel, kind, rule, alert_id, event_id, title, body, status,
                attempts, created_at, next_attempt_at, delivered_at, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (key) DO NOTHING",
        )
        .bind(n.id)
        .bind(&n.key)
        .bind(&n.channel)
        .bind(&n.kind)
        .bind(&n.rule)
        .bind(&n.alert_id)
        .bind(&n.event_id)
        .bind(&n.title)
        .bind(&n.body)
        .bind(n.status.as_str())
        .bind(n.attempts)
        .bind(ms(n.created_at))
        .bind(ms(n.next_attempt_at))
        .bind(n.delivered_at.map(ms))
        .bind(&n.last_error)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            new.push(n.id);
        }
    }
    tx.commit().await?;
    Ok(new)
}

pub async fn claim(
    pool: &PgPool,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<NotificationRecord>> {
    let sql = format!(
        "UPDATE notifications SET claimed_by = $1, claimed_until = $2
         WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= $3
            AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY next_attempt_at, created_at LIMIT $4
            FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(ms(until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    let mut claimed = rows.iter().map(notification).collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|n| (n.next_attempt_at, n.created_at));
    Ok(claimed)
}

pub async fn finish(pool: &PgPool, r: &AttemptResult) -> Result<()> {
    let a = &r.attempt;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, at, duration_ms, ok, status_code, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(a.notification_id)
    .bind(a.attempt)
    .bind(ms(a.at))
    .bind(a.duration_ms)
    .bind(a.ok)
    .bind(a.status_code)
    .bind(&a.error)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE notifications SET attempts = $1, status = $2, next_attempt_at = $3, last_error = $4,
            delivered_at = CASE WHEN $5 THEN $6 ELSE delivered_at END, claimed_by = NULL, claimed_until = NULL
         WHERE id = $7",
    )
    .bind(a.attempt)
    .bind(r.status.as_str())
    .bind(ms(r.next_attempt_at))
    .bind(&a.error)
    .bind(a.ok)
    .bind(ms(a.at))
    .bind(a.notification_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'")
        .fetch_one(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<NotificationRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?.as_ref().map(notification).transpose()
}

pub async fn list(pool: &PgPool, q: &NotificationQuery) -> Result<Vec<NotificationRecord>> {
    let mut b = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM notifications WHERE 1 = 1"));
    if let Some(s) = q.status {
        b.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(c) = &q.channel {
        b.push(" AND channel = ").push_bind(c.clone());
    }
    if let Some(a) = &q.alert_id {
        b.push(" AND alert_id = ").push_bind(a.clone());
    }
    b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(notification).collect()
}

pub async fn attempts(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<DeliveryAttempt>> {
    let rows = sqlx::query(
        "SELECT notification_id, attempt, at, duration_ms, ok, status_code, error FROM notification_attempts
         WHERE notification_id = ANY($1) ORDER BY notification_id, attempt",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryAttempt {
                notification_id: row.try_get("notification_id")?,
                attempt: row.try_get("attempt")?,
                at: row.try_get("at")?,
                duration_ms: row.try_get("duration_ms")?,
                ok: row.try_get("ok")?,
                status_code: row.try_get("status_code")?,
                error: row.try_get("error")?,
            })
        })
        .collect()
}

pub async fn cursor(pool: &PgPool, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1").bind(name).fetch_optional(pool).await?)
}

pub async fn set_cursor(pool: &PgPool, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

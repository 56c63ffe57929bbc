//! The notifier's rows in SQLite: alerts, the outbox with its claims and
//! attempts, and cursors.

use chrono::{DateTime, Utc};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::parse_uuid;
use crate::notify::{
    AlertRecord, AttemptResult, DeliveryAttempt, DeliveryStatus, NotificationQuery, NotificationRecord,
};
use crate::{Result, StoreError};

fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn uuid_opt(text: Option<String>) -> Result<Option<Uuid>> {
    text.as_deref().map(parse_uuid).transpose()
}

const ALERT: &str = "SELECT id, rule, subject, anomaly_id, machine_id, severity, title, opened_at, acknowledged_at,
    acknowledged_by, resolved_at, data FROM notify_alerts";

fn alert(row: &SqliteRow) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.try_get("id")?,
        rule: row.try_get("rule")?,
        subject: row.try_get("subject")?,
        anomaly_id: uuid_opt(row.try_get("anomaly_id")?)?,
        machine_id: uuid_opt(row.try_get("machine_id")?)?,
        severity: row.try_get("severity")?,
        title: row.try_get("title")?,
        opened_at: from_ms(row.try_get("opened_at")?),
        acknowledged_at: row.try_get::<Option<i64>, _>("acknowledged_at")?.map(from_ms),
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
        data: json(row.try_get("data")?, "alert data")?,
    })
}

pub async fn insert_alert(pool: &SqlitePool, a: &AlertRecord) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO notify_alerts (id, rule, subject, anomaly_id, machine_id, severity, title, opened_at,
            acknowledged_at, acknowledged_by, resolved_at, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&a.id)
    .bind(&a.rule)
    .bind(&a.subject)
    .bind(a.anomaly_id.map(|u| u.to_string()))
    .bind(a.machine_id.map(|u| u.to_string()))
    .bind(&a.severity)
    .bind(&a.title)
    .bind(to_ms(a.opened_at))
    .bind(a.acknowledged_at.map(to_ms))
    .bind(&a.acknowledged_by)
    .bind(a.resolved_at.map(to_ms))
    .bind(a.data.to_string())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn update_alert(pool: &SqlitePool, a: &AlertRecord) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE notify_alerts SET anomaly_id = ?, severity = ?, title = ?, acknowledged_at = ?, acknowledged_by = ?,
            resolved_at = ?, data = ? WHERE id = ?",
    )
    .bind(a.anomaly_id.map(|u| u.to_string()))
    .bind(&a.severity)
    .bind(&a.title)
    .bind(a.acknowledged_at.map(to_ms))
    .bind(&a.acknowledged_by)
    .bind(a.resolved_at.map(to_ms))
    .bind(a.data.to_string())
    .bind(&a.id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_alert(pool: &SqlitePool, id: &str) -> Result<Option<AlertRecord>> {
    let sql = format!("{ALERT} WHERE id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?.as_ref().map(alert).transpose()
}

pub async fn list_alerts(pool: &SqlitePool, open_only: bool, limit: u32) -> Result<Vec<AlertRecord>> {
    let filter = if open_only { "WHERE resolved_at IS NULL" } else { "" };
    let sql = format!("{ALERT} {filter} ORDER BY opened_at DESC, id LIMIT ?");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(pool).await?.iter().map(alert).collect()
}

const NOTIFICATION: &str = "SELECT id, key, channel, kind, rule, alert_id, event_id, title, body, status, attempts,
    created_at, next_attempt_at, delivered_at, last_error FROM notifications";

fn notification(row: &SqliteRow) -> Result<NotificationRecord> {
    let status: String = row.try_get("status")?;
    Ok(NotificationRecord {
        id: parse_uuid(row.try_get("id")?)?,
        key: row.try_get("key")?,
        channel: row.try_get("channel")?,
        kind: row.try_get("kind")?,
        rule: row.try_get("rule")?,
        alert_id: row.try_get("alert_id")?,
        event_id: row.try_get("event_id")?,
        title: row.try_get("title")?,
        body: json(row.try_get("body")?, "notification body")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("notification status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        created_at: from_ms(row.try_get("created_at")?),
        next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
        delivered_at: row.try_get::<Option<i64>, _>("delivered_at")?.map(from_ms),
        last_error: row.try_get("last_error")?,
    })
}

pub async fn enqueue(pool: &SqlitePool, batch: &[NotificationRecord]) -> Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let mut new = Vec::new();
    for n in batch {
        let done = sqlx::query(
            "INSERT INTO notifications (id, key, channel, kind, rule, alert_id, event_id, title, body, status,
                attempts, created_at, next_attempt_at, delivered_at, last_error)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(n.id.to_string())
        .bind(&n.key)
        .bind(&n.channel)
        .bind(&n.kind)
        .bind(&n.rule)
        .bind(&n.alert_id)
        .bind(&n.event_id)
        .bind(&n.title)
        .bind(n.body.to_string())
        .bind(n.status.as_str())
        .bind(n.attempts)
        .bind(to_ms(n.created_at))
        .bind(to_ms(n.next_attempt_at))
        .bind(n.delivered_at.map(to_ms))
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
    pool: &SqlitePool,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<NotificationRecord>> {
    let sql = "UPDATE notifications SET claimed_by = ?, claimed_until = ?
        WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?
            AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, created_at LIMIT ?)
        RETURNING id, key, channel, kind, rule, alert_id, event_id, title, body, status, attempts,
            created_at, next_attempt_at, delivered_at, last_error";
    let rows = sqlx::query(sql)
        .bind(owner)
        .bind(to_ms(until))
        .bind(to_ms(now))
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    let mut claimed = rows.iter().map(notification).collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|n| (n.next_attempt_at, n.created_at));
    Ok(claimed)
}

pub async fn finish(pool: &SqlitePool, r: &AttemptResult) -> Result<()> {
    let a = &r.attempt;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, at, duration_ms, ok, status_code, error)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(a.notification_id.to_string())
    .bind(a.attempt)
    .bind(to_ms(a.at))
    .bind(a.duration_ms)
    .bind(a.ok)
    .bind(a.status_code)
    .bind(&a.error)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE notifications SET attempts = ?, status = ?, next_attempt_at = ?, last_error = ?,
            delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END, claimed_by = NULL, claimed_until = NULL
         WHERE id = ?",
    )
    .bind(a.attempt)
    .bind(r.status.as_str())
    .bind(to_ms(r.next_attempt_at))
    .bind(&a.error)
    .bind(a.ok)
    .bind(to_ms(a.at))
    .bind(a.notification_id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn next_due(pool: &SqlitePool) -> Result<Option<DateTime<Utc>>> {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'")
            .fetch_one(pool)
            .await?;
    Ok(next.map(from_ms))
}

pub async fn get(pool: &SqlitePool, id: Uuid) -> Result<Option<NotificationRecord>> {
    let sql = format!("{NOTIFICATION} WHERE id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(pool).await?;
    row.as_ref().map(notification).transpose()
}

pub async fn list(pool: &SqlitePool, q: &NotificationQuery) -> Result<Vec<NotificationRecord>> {
    let mut b = QueryBuilder::<Sqlite>::new(NOTIFICATION);
    b.push(" WHERE 1 = 1");
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

pub async fn attempts(pool: &SqlitePool, ids: &[Uuid]) -> Result<Vec<DeliveryAttempt>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = QueryBuilder::<Sqlite>::new(
        "SELECT notification_id, attempt, at, duration_ms, ok, status_code, error FROM notification_attempts
         WHERE notification_id IN (",
    );
    let mut list = b.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    b.push(") ORDER BY notification_id, attempt");
    let rows = b.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryAttempt {
                notification_id: parse_uuid(row.try_get("notification_id")?)?,
                attempt: row.try_get("attempt")?,
                at: from_ms(row.try_get("at")?),
                duration_ms: row.try_get("duration_ms")?,
                ok: row.try_get("ok")?,
                status_code: row.try_get("status_code")?,
                error: row.try_get("error")?,
            })
        })
        .collect()
}

pub async fn cursor(pool: &SqlitePool, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM cursors WHERE name = ?").bind(name).fetch_optional(pool).await?)
}

pub async fn set_cursor(pool: &SqlitePool, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

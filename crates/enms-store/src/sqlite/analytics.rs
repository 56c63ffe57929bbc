//! Models, jobs and anomalies in SQLite.

use chrono::{DateTime, Utc};
use enms_core::timestamp::{from_ms, to_ms};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::parse_uuid;
use crate::analytics::{AnomalyQuery, AnomalyRecord, JobQuery, JobRecord, JobStatus, ModelRecord};
use crate::{Result, StoreError};

fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn opt_uuid(v: Option<String>) -> Result<Option<Uuid>> {
    v.as_deref().map(parse_uuid).transpose()
}

fn opt_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

const MODEL_COLUMNS: &str = "id, machine_id, model_type, version, active, created_at, job_id, metrics, body";

fn model(row: &SqliteRow) -> Result<ModelRecord> {
    Ok(ModelRecord {
        id: parse_uuid(row.try_get("id")?)?,
        machine_id: parse_uuid(row.try_get("machine_id")?)?,
        model_type: row.try_get("model_type")?,
        version: row.try_get("version")?,
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        job_id: opt_uuid(row.try_get("job_id")?)?,
        metrics: json(row.try_get("metrics")?, "model metrics")?,
        body: json(row.try_get("body")?, "model body")?,
    })
}

/// Inserts with the next version number; returns it.
pub async fn insert_model(pool: &SqlitePool, m: &ModelRecord) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE machine_id = ? AND model_type = ?")
            .bind(m.machine_id.to_string())
            .bind(&m.model_type)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO models (id, machine_id, model_type, version, active, created_at, job_id, metrics, body)
         VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
    )
    .bind(m.id.to_string())
    .bind(m.machine_id.to_string())
    .bind(&m.model_type)
    .bind(version)
    .bind(to_ms(m.created_at))
    .bind(m.job_id.map(|j| j.to_string()))
    .bind(m.metrics.to_string())
    .bind(m.body.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

pub async fn list_models(
    pool: &SqlitePool,
    machine: Option<Uuid>,
    model_type: Option<&str>,
) -> Result<Vec<ModelRecord>> {
    // The body can be large; the list carries metrics only.
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT id, machine_id, model_type, version, active, created_at, job_id, metrics, 'null' AS body FROM models WHERE 1 = 1",
    );
    if let Some(m) = machine {
        q.push(" AND machine_id = ").push_bind(m.to_string());
    }
    if let Some(t) = model_type {
        q.push(" AND model_type = ").push_bind(t.to_owned());
    }
    q.push(" ORDER BY machine_id, model_type, version DESC");
    q.build().fetch_all(pool).await?.iter().map(model).collect()
}

pub async fn get_model(pool: &SqlitePool, id: Uuid) -> Result<Option<ModelRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = ?")))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(model).transpose()
}

pub async fn active_model(pool: &SqlitePool, machine: Uuid, model_type: &str) -> Result<Option<ModelRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MODEL_COLUMNS} FROM models WHERE machine_id = ? AND model_type = ? AND active = 1"
    )))
    .bind(machine.to_string())
    .bind(model_type)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(model).transpose()
}

/// Makes `id` the one active model of its machine and type.
pub async fn activate_model(pool: &SqlitePool, id: Uuid) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query("SELECT machine_id, model_type FROM models WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let (machine, kind): (String, String) = (row.try_get("machine_id")?, row.try_get("model_type")?);
    sqlx::query("UPDATE models SET active = 0 WHERE machine_id = ? AND model_type = ? AND active = 1")
        .bind(&machine)
        .bind(&kind)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE models SET active = 1 WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

fn job(row: &SqliteRow) -> Result<JobRecord> {
    let status: String = row.try_get("status")?;
    let metrics: Option<String> = row.try_get("metrics")?;
    Ok(JobRecord {
        id: parse_uuid(row.try_get("id")?)?,
        machine_id: parse_uuid(row.try_get("machine_id")?)?,
        model_type: row.try_get("model_type")?,
        trigger_type: row.try_get("trigger_type")?,
        reason: row.try_get("reason")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        progress_pct: row.try_get("progress_pct")?,
        message: row.try_get("message")?,
        params: json(row.try_get("params")?, "job params")?,
        created_at: from_ms(row.try_get("created_at")?),
        started_at: opt_ms(row.try_get("started_at")?),
        finished_at: opt_ms(row.try_get("finished_at")?),
        error_message: row.try_get("error_message")?,
        model_id: opt_uuid(row.try_get("model_id")?)?,
        metrics: metrics.as_deref().map(|m| json(m, "job metrics")).transpose()?,
        owner: row.try_get("owner")?,
        lease_until: opt_ms(row.try_get("lease_until")?),
    })
}

/// Inserts or updates the whole row; the partial unique index refuses a
/// second unfinished job for the same machine and type.
pub async fn save_job(pool: &SqlitePool, j: &JobRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, machine_id, model_type, trigger_type, reason, status, progress_pct, message,
            params, created_at, started_at, finished_at, error_message, model_id, metrics, owner, lease_until)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, progress_pct = excluded.progress_pct,
            message = excluded.message, started_at = excluded.started_at, finished_at = excluded.finished_at,
            error_message = excluded.error_message, model_id = excluded.model_id, metrics = excluded.metrics,
            owner = excluded.owner, lease_until = excluded.lease_until",
    )
    .bind(j.id.to_string())
    .bind(j.machine_id.to_string())
    .bind(&j.model_type)
    .bind(&j.trigger_type)
    .bind(&j.reason)
    .bind(j.status.as_str())
    .bind(j.progress_pct)
    .bind(&j.message)
    .bind(j.params.to_string())
    .bind(to_ms(j.created_at))
    .bind(j.started_at.map(to_ms))
    .bind(j.finished_at.map(to_ms))
    .bind(&j.error_message)
    .bind(j.model_id.map(|m| m.to_string()))
    .bind(j.metrics.as_ref().map(|m| m.to_string()))
    .bind(&j.owner)
    .bind(j.lease_until.map(to_ms))
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains("jobs.machine_id") => {
            StoreError::JobConflict { machine_id: j.machine_id, model_type: j.model_type.clone() }
        }
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

pub async fn renew_leases(pool: &SqlitePool, owner: &str, until: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("UPDATE jobs SET lease_until = ? WHERE owner = ? AND status IN ('queued', 'running')")
        .bind(to_ms(until))
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// One statement, so it is atomic even when several processes share the file.
pub async fn claim_stale(
    pool: &SqlitePool,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<JobRecord>> {
    let rows = sqlx::query(
        "UPDATE jobs SET owner = ?, lease_until = ?
         WHERE status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < ?)
         RETURNING *",
    )
    .bind(owner)
    .bind(to_ms(until))
    .bind(to_ms(now))
    .fetch_all(pool)
    .await?;
    let mut jobs: Vec<JobRecord> = rows.iter().map(job).collect::<Result<_>>()?;
    jobs.sort_by_key(|j| j.created_at);
    Ok(jobs)
}

pub async fn claim_run(pool: &SqlitePool, name: &str, slot: DateTime<Utc>, owner: &str) -> Result<bool> {
    let done = sqlx::query("INSERT OR IGNORE INTO scheduled_runs (name, slot, owner, claimed_at) VALUES (?, ?, ?, ?)")
        .bind(name)
        .bind(to_ms(slot))
        .bind(owner)
        .bind(to_ms(Utc::now()))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_job(pool: &SqlitePool, id: Uuid) -> Result<Option<JobRecord>> {
    let row = sqlx::query("SELECT * FROM jobs WHERE id = ?").bind(id.to_string()).fetch_optional(pool).await?;
    row.as_ref().map(job).transpose()
}

pub async fn list_jobs(pool: &SqlitePool, q: &JobQuery) -> Result<Vec<JobRecord>> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT * FROM jobs WHERE 1 = 1");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m.to_string());
    }
    if let Some(s) = q.status {
        b.push(" AND status = ").push_bind(s.as_str());
    }
    b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(job).collect()
}

/// Inserts the anomalies not yet stored (same machine, timestamp and
/// metric); returns those actually inserted.
pub async fn insert_anomalies(pool: &SqlitePool, batch: &[AnomalyRecord]) -> Result<Vec<AnomalyRecord>> {
    let mut tx = pool.begin().await?;
    let mut inserted = Vec::new();
    for a in batch {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO anomalies (id, machine_id, ts, metric, severity, anomaly_type, value, expected_value,
                anomaly_score, deviation, source, model_id, detected_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.id.to_string())
        .bind(a.machine_id.to_string())
        .bind(to_ms(a.timestamp))
        .bind(&a.metric)
        .bind(&a.severity)
        .bind(&a.anomaly_type)
        .bind(a.value)
        .bind(a.expected_value)
        .bind(a.anomaly_score)
        .bind(a.deviation)
        .bind(&a.source)
        .bind(a.model_id.map(|m| m.to_string()))
        .bind(to_ms(a.detected_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            inserted.push(a.clone());
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

fn anomaly(row: &SqliteRow) -> Result<AnomalyRecord> {
    Ok(AnomalyRecord {
        id: parse_uuid(row.try_get("id")?)?,
        machine_id: parse_uuid(row.try_get("machine_id")?)?,
        timestamp: from_ms(row.try_get("ts")?),
        metric: row.try_get("metric")?,
        severity: row.try_get("severity")?,
        anomaly_type: row.try_get("anomaly_type")?,
        value: row.try_get("value")?,
        expected_value: row.try_get("expected_value")?,
        anomaly_score: row.try_get("anomaly_score")?,
        deviation: row.try_get("deviation")?,
        source: row.try_get("source")?,
        model_id: opt_uuid(row.try_get("model_id")?)?,
        detected_at: from_ms(row.try_get("detected_at")?),
        acknowledged_at: opt_ms(row.try_get("acknowledged_at")?),
        acknowledged_by: row.try_get("acknowledged_by")?,
        note: row.try_get("note")?,
    })
}

/// Newest readings first.
pub async fn list_anomalies(pool: &SqlitePool, q: &AnomalyQuery) -> Result<Vec<AnomalyRecord>> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT * FROM anomalies WHERE 1 = 1");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m.to_string());
    }
    if let Some(s) = &q.severity {
        b.push(" AND severity = ").push_bind(s.clone());
    }
    if let Some(t) = q.since {
        b.push(" AND ts >= ").push_bind(to_ms(t));
    }
    if let Some(t) = q.until {
        b.push(" AND ts < ").push_bind(to_ms(t));
    }
    match q.acknowledged {
        Some(true) => b.push(" AND acknowledged_at IS NOT NULL"),
        Some(false) => b.push(" AND acknowledged_at IS NULL"),
        None => &mut b,
    };
    b.push(" ORDER BY ts DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(anomaly).collect()
}

pub async fn get_anomaly(pool: &SqlitePool, id: Uuid) -> Result<Option<AnomalyRecord>> {
    let row = sqlx::query("SELECT * FROM anomalies WHERE id = ?").bind(id.to_string()).fetch_optional(pool).await?;
    row.as_ref().map(anomaly).transpose()
}

/// Marks an anomaly acknowledged (the first acknowledgement is kept).
pub async fn acknowledge(pool: &SqlitePool, id: Uuid, by: &str, note: Option<&str>, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE anomalies SET acknowledged_at = COALESCE(acknowledged_at, ?),
            acknowledged_by = COALESCE(acknowledged_by, ?), note = COALESCE(?, note) WHERE id = ?",
    )
    .bind(to_ms(at))
    .bind(by)
    .bind(note)
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

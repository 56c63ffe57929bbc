//! Models, jobs, anomalies and scheduled-run claims in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::ms;
use crate::analytics::{AnomalyQuery, AnomalyRecord, JobQuery, JobRecord, JobStatus, ModelRecord};
use crate::{Result, StoreError};

fn model(row: &PgRow) -> Result<ModelRecord> {
    Ok(ModelRecord {
        id: row.try_get("id")?,
        machine_id: row.try_get("machine_id")?,
        model_type: row.try_get("model_type")?,
        version: row.try_get("version")?,
        active: row.try_get("active")?,
        created_at: row.try_get("created_at")?,
        job_id: row.try_get("job_id")?,
        metrics: row.try_get("metrics")?,
        body: row.try_get("body")?,
    })
}

/// Inserts with the next version number; returns it. An advisory lock on
/// (machine, type) keeps two instances from taking the same version.
pub async fn insert_model(pool: &PgPool, m: &ModelRecord) -> Result<i64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("model:{}:{}", m.machine_id, m.model_type))
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE machine_id = $1 AND model_type = $2",
    )
    .bind(m.machine_id)
    .bind(&m.model_type)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO models (id, machine_id, model_type, version, active, created_at, job_id, metrics, body)
         VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8)",
    )
    .bind(m.id)
    .bind(m.machine_id)
    .bind(&m.model_type)
    .bind(version)
    .bind(ms(m.created_at))
    .bind(m.job_id)
    .bind(&m.metrics)
    .bind(&m.body)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}

pub async fn list_models(pool: &PgPool, machine: Option<Uuid>, model_type: Option<&str>) -> Result<Vec<ModelRecord>> {
    // The body can be large; the list carries metrics only.
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, machine_id, model_type, version, active, created_at, job_id, metrics, 'null'::jsonb AS body
         FROM models WHERE TRUE",
    );
    if let Some(m) = machine {
        q.push(" AND machine_id = ").push_bind(m);
    }
    if let Some(t) = model_type {
        q.push(" AND model_type = ").push_bind(t.to_owned());
    }
    q.push(" ORDER BY machine_id, model_type, version DESC");
    q.build().fetch_all(pool).await?.iter().map(model).collect()
}

pub async fn get_model(pool: &PgPool, id: Uuid) -> Result<Option<ModelRecord>> {
    let row = sqlx::query("SELECT * FROM models WHERE id = $1").bind(id).fetch_optional(pool).await?;
    row.as_ref().map(model).transpose()
}

pub async fn active_model(pool: &PgPool, machine: Uuid, model_type: &str) -> Result<Option<ModelRecord>> {
    let row = sqlx::query("SELECT * FROM models WHERE machine_id = $1 AND model_type = $2 AND active")
        .bind(machine)
        .bind(model_type)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(model).transpose()
}

/// Makes `id` the one active model of its machine and type. The row lock
/// on the chosen model serialises concurrent activations.
pub async fn activate_model(pool: &PgPool, id: Uuid) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query("SELECT machine_id, model_type FROM models WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let (machine, kind): (Uuid, String) = (row.try_get("machine_id")?, row.try_get("model_type")?);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("model:{machine}:{kind}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE models SET active = FALSE WHERE machine_id = $1 AND model_type = $2 AND active")
        .bind(machine)
        .bind(&kind)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE models SET active = TRUE WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

fn job(row: &PgRow) -> Result<JobRecord> {
    let status: String = row.try_get("status")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        machine_id: row.try_get("machine_id")?,
        model_type: row.try_get("model_type")?,
        trigger_type: row.try_get("trigger_type")?,
        reason: row.try_get("reason")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        progress_pct: row.try_get("progress_pct")?,
        message: row.try_get("message")?,
        params: row.try_get("params")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error_message: row.try_get("error_message")?,
        model_id: row.try_get("model_id")?,
        metrics: row.try_get("metrics")?,
        owner: row.try_get("owner")?,
        lease_until: row.try_get("lease_until")?,
    })
}

/// Inserts or updates the whole row; the partial unique index refuses a
/// second unfinished job for the same machine and type.
pub async fn save_job(pool: &PgPool, j: &JobRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, machine_id, model_type, trigger_type, reason, status, progress_pct, message,
            params, created_at, started_at, finished_at, error_message, model_id, metrics, owner, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, progress_pct = excluded.progress_pct,
            message = excluded.message, started_at = excluded.started_at, finished_at = excluded.finished_at,
            error_message = excluded.error_message, model_id = excluded.model_id, metrics = excluded.metrics,
            owner = excluded.owner, lease_until = excluded.lease_until",
    )
    .bind(j.id)
    .bind(j.machine_id)
    .bind(&j.model_type)
    .bind(&j.trigger_type)
    .bind(&j.reason)
    .bind(j.status.as_str())
    .bind(j.progress_pct)
    .bind(&j.message)
    .bind(&j.params)
    .bind(ms(j.created_at))
    .bind(j.started_at.map(ms))
    .bind(j.finished_at.map(ms))
    .bind(&j.error_message)
    .bind(j.model_id)
    .bind(&j.metrics)
    .bind(&j.owner)
    .bind(j.lease_until.map(ms))
    .execute(pool)
    .await
    .map_err(|e| job_conflict(e, j))?;
    Ok(())
}

fn job_conflict(e: sqlx::Error, j: &JobRecord) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("jobs_one_unfinished") => {
            StoreError::JobConflict { machine_id: j.machine_id, model_type: j.model_type.clone() }
        }
        _ => StoreError::Database(e),
    }
}

pub async fn renew_leases(pool: &PgPool, owner: &str, until: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE owner = $2 AND status IN ('queued', 'running')")
        .bind(ms(until))
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// `FOR UPDATE SKIP LOCKED` lets every instance sweep at once: each stale
/// job goes to exactly one of them.
pub async fn claim_stale(
    pool: &PgPool,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<JobRecord>> {
    let rows = sqlx::query(
        "UPDATE jobs SET owner = $1, lease_until = $2
         WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'running')
                        AND (lease_until IS NULL OR lease_until < $3)
                      FOR UPDATE SKIP LOCKED)
         RETURNING *",
    )
    .bind(owner)
    .bind(ms(until))
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut jobs: Vec<JobRecord> = rows.iter().map(job).collect::<Result<_>>()?;
    jobs.sort_by_key(|j| j.created_at);
    Ok(jobs)
}

pub async fn claim_run(pool: &PgPool, name: &str, slot: DateTime<Utc>, owner: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO scheduled_runs (name, slot, owner, claimed_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (name, slot) DO NOTHING",
    )
    .bind(name)
    .bind(ms(slot))
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_job(pool: &PgPool, id: Uuid) -> Result<Option<JobRecord>> {
    let row = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(pool).await?;
    row.as_ref().map(job).transpose()
}

pub async fn list_jobs(pool: &PgPool, q: &JobQuery) -> Result<Vec<JobRecord>> {
    let mut b = QueryBuilder::<Postgres>::new("SELECT * FROM jobs WHERE TRUE");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m);
    }
    if let Some(s) = q.status {
        b.push(" AND status = ").push_bind(s.as_str());
    }
    b.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(job).collect()
}

/// Inserts the anomalies not yet stored (same machine, timestamp and
/// metric); returns those actually inserted.
pub async fn insert_anomalies(pool: &PgPool, batch: &[AnomalyRecord]) -> Result<Vec<AnomalyRecord>> {
    let mut tx = pool.begin().await?;
    let mut inserted = Vec::new();
    for a in batch {
        let done = sqlx::query(
            "INSERT INTO anomalies (id, machine_id, ts, metric, severity, anomaly_type, value, expected_value,
                anomaly_score, deviation, source, model_id, detected_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
        )
        .bind(a.id)
        .bind(a.machine_id)
        .bind(ms(a.timestamp))
        .bind(&a.metric)
        .bind(&a.severity)
        .bind(&a.anomaly_type)
        .bind(a.value)
        .bind(a.expected_value)
        .bind(a.anomaly_score)
        .bind(a.deviation)
        .bind(&a.source)
        .bind(a.model_id)
        .bind(ms(a.detected_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            inserted.push(a.clone());
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

fn anomaly(row: &PgRow) -> Result<AnomalyRecord> {
    Ok(AnomalyRecord {
        id: row.try_get("id")?,
        machine_id: row.try_get("machine_id")?,
        timestamp: row.try_get("ts")?,
        metric: row.try_get("metric")?,
        severity: row.try_get("severity")?,
        anomaly_type: row.try_get("anomaly_type")?,
        value: row.try_get("value")?,
        expected_value: row.try_get("expected_value")?,
        anomaly_score: row.try_get("anomaly_score")?,
        deviation: row.try_get("deviation")?,
        source: row.try_get("source")?,
        model_id: row.try_get("model_id")?,
        detected_at: row.try_get("detected_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        note: row.try_get("note")?,
    })
}

/// Newest readings first.
pub async fn list_anomalies(pool: &PgPool, q: &AnomalyQuery) -> Result<Vec<AnomalyRecord>> {
    let mut b = QueryBuilder::<Postgres>::new("SELECT * FROM anomalies WHERE TRUE");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m);
    }
    if let Some(s) = &q.severity {
        b.push(" AND severity = ").push_bind(s.clone());
    }
    if let Some(t) = q.since {
        b.push(" AND ts >= ").push_bind(t);
    }
    if let Some(t) = q.until {
        b.push(" AND ts < ").push_bind(t);
    }
    match q.acknowledged {
        Some(true) => b.push(" AND acknowledged_at IS NOT NULL"),
        Some(false) => b.push(" AND acknowledged_at IS NULL"),
        None => &mut b,
    };
    b.push(" ORDER BY ts DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(anomaly).collect()
}

pub async fn get_anomaly(pool: &PgPool, id: Uuid) -> Result<Option<AnomalyRecord>> {
    let row = sqlx::query("SELECT * FROM anomalies WHERE id = $1").bind(id).fetch_optional(pool).await?;
    row.as_ref().map(anomaly).transpose()
}

/// Marks an anomaly acknowledged (the first acknowledgement is kept).
pub async fn acknowledge(pool: &PgPool, id: Uuid, by: &str, note: Option<&str>, at: DateTime<Utc>) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE anomalies SET acknowledged_at = COALESCE(acknowledged_at, $1),
            acknowledged_by = COALESCE(acknowledged_by, $2), note = COALESCE($3, note) WHERE id = $4",
    )
    .bind(ms(at))
    .bind(by)
    .bind(note)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

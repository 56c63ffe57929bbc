//! Incidents in PostgreSQL: a change is one transaction — the timeline entry
//! first (an event's entry already there makes it a duplicate), then the
//! incident row, inserted or updated at the version it was read.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::ms;
use crate::incidents::{IncidentEntry, IncidentQuery, IncidentRecord, Saved};
use crate::{Result, StoreError};

pub async fn save(pool: &PgPool, i: &IncidentRecord, entry: &IncidentEntry, expected: Option<i64>) -> Result<Saved> {
    let mut tx = pool.begin().await?;
    match expected {
        None => {
            insert(&mut tx, i).await?;
            if !add_entry(&mut tx, entry).await? {
                return Ok(Saved::Duplicate);
            }
        }
        Some(version) => {
            if !add_entry(&mut tx, entry).await? {
                return Ok(Saved::Duplicate);
            }
            if !update(&mut tx, i, version).await? {
                return Ok(Saved::Stale);
            }
        }
    }
    tx.commit().await?;
    Ok(Saved::Written)
}

/// The columns a change may write, in the order both the insert and the
/// update name them.
const CHANGING: &str = "state, severity, title, assignee, acknowledged_at, acknowledged_by, resolved_at, \
                        resolved_by, resolution, episode_count, open_episodes, last_activity_at, updated_at, version";

type Statement<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds [`CHANGING`], in its order.
fn bind_changing<'q>(q: Statement<'q>, i: &IncidentRecord) -> Statement<'q> {
    q.bind(i.state.clone())
        .bind(i.severity.clone())
        .bind(i.title.clone())
        .bind(i.assignee.clone())
        .bind(i.acknowledged_at.map(ms))
        .bind(i.acknowledged_by.clone())
        .bind(i.resolved_at.map(ms))
        .bind(i.resolved_by.clone())
        .bind(i.resolution.clone())
        .bind(i.episode_count)
        .bind(serde_json::to_value(&i.open_episodes).unwrap_or_default())
        .bind(ms(i.last_activity_at))
        .bind(ms(i.updated_at))
        .bind(i.version)
}

/// `$from, $from+1, …` for `n` parameters.
fn params(from: usize, n: usize) -> String {
    (from..from + n).map(|k| format!("${k}")).collect::<Vec<_>>().join(", ")
}

async fn insert(conn: &mut PgConnection, i: &IncidentRecord) -> Result<()> {
    let n = CHANGING.split(", ").count();
    let sql = format!(
        "INSERT INTO incidents (id, machine_id, anomaly_type, opened_at, {CHANGING}) VALUES ($1, $2, $3, $4, {})",
        params(5, n)
    );
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i.id)
        .bind(i.machine_id)
        .bind(i.anomaly_type.clone())
        .bind(ms(i.opened_at));
    bind_changing(q, i).execute(&mut *conn).await.map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { field: "anomaly_type", value: i.anomaly_type.clone() }
        }
        e => e.into(),
    })?;
    Ok(())
}

async fn update(conn: &mut PgConnection, i: &IncidentRecord, expected: i64) -> Result<bool> {
    let columns: Vec<&str> = CHANGING.split(", ").collect();
    let assignments =
        columns.iter().enumerate().map(|(k, c)| format!("{c} = ${}", k + 1)).collect::<Vec<_>>().join(", ");
    let n = columns.len();
    let sql = format!("UPDATE incidents SET {assignments} WHERE id = ${} AND version = ${}", n + 1, n + 2);
    let done =
        bind_changing(sqlx::query(sqlx::AssertSqlSafe(sql)), i).bind(i.id).bind(expected).execute(&mut *conn).await?;
    Ok(done.rows_affected() == 1)
}

/// `false` when the entry's event is already on the incident's timeline.
async fn add_entry(conn: &mut PgConnection, e: &IncidentEntry) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO incident_entries (incident_id, at, kind, actor, text, data, source_event)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (incident_id, source_event) DO NOTHING",
    )
    .bind(e.incident_id)
    .bind(ms(e.at))
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.text)
    .bind(&e.data)
    .bind(&e.source_event)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn incident(row: &PgRow) -> Result<IncidentRecord> {
    let open: serde_json::Value = row.try_get("open_episodes")?;
    Ok(IncidentRecord {
        id: row.try_get("id")?,
        machine_id: row.try_get("machine_id")?,
        anomaly_type: row.try_get("anomaly_type")?,
        state: row.try_get("state")?,
        severity: row.try_get("severity")?,
        title: row.try_get("title")?,
        assignee: row.try_get("assignee")?,
        opened_at: row.try_get("opened_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
        resolution: row.try_get("resolution")?,
        episode_count: row.try_get("episode_count")?,
        open_episodes: serde_json::from_value(open).map_err(|e| StoreError::Corrupt(format!("open_episodes: {e}")))?,
        last_activity_at: row.try_get("last_activity_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

pub async fn get(pool: &PgPool, id: uuid::Uuid) -> Result<Option<IncidentRecord>> {
    let row = sqlx::query("SELECT * FROM incidents WHERE id = $1").bind(id).fetch_optional(pool).await?;
    row.as_ref().map(incident).transpose()
}

pub async fn unresolved(pool: &PgPool, machine: uuid::Uuid, kind: &str) -> Result<Option<IncidentRecord>> {
    let row =
        sqlx::query("SELECT * FROM incidents WHERE machine_id = $1 AND anomaly_type = $2 AND state <> 'resolved'")
            .bind(machine)
            .bind(kind)
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(incident).transpose()
}

pub async fn list(pool: &PgPool, q: &IncidentQuery) -> Result<Vec<IncidentRecord>> {
    let mut b = QueryBuilder::<Postgres>::new("SELECT * FROM incidents WHERE TRUE");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m);
    }
    if !q.states.is_empty() {
        b.push(" AND state IN (");
        let mut list = b.separated(", ");
        for s in &q.states {
            list.push_bind(s.clone());
        }
        b.push(")");
    }
    if let Some(s) = &q.severity {
        b.push(" AND severity = ").push_bind(s.clone());
    }
    if let Some(a) = &q.assignee {
        b.push(" AND assignee = ").push_bind(a.clone());
    }
    if let Some(t) = q.since {
        b.push(" AND opened_at >= ").push_bind(ms(t));
    }
    b.push(" ORDER BY opened_at DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(incident).collect()
}

pub async fn entries(pool: &PgPool, id: uuid::Uuid) -> Result<Vec<IncidentEntry>> {
    let rows = sqlx::query("SELECT * FROM incident_entries WHERE incident_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(IncidentEntry {
                seq: row.try_get("seq")?,
                incident_id: row.try_get("incident_id")?,
                at: row.try_get("at")?,
                kind: row.try_get("kind")?,
                actor: row.try_get("actor")?,
                text: row.try_get("text")?,
                data: row.try_get("data")?,
                source_event: row.try_get("source_event")?,
            })
        })
        .collect()
}

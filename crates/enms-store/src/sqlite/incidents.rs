//! Incidents in SQLite: a change is one transaction — the timeline entry
//! first (an event's entry already there makes it a duplicate), then the
//! incident row, inserted or updated at the version it was read.

use enms_core::timestamp::{from_ms, to_ms};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::parse_uuid;
use crate::incidents::{IncidentEntry, IncidentQuery, IncidentRecord, Saved};
use crate::{Result, StoreError};

pub async fn save(
    pool: &SqlitePool,
    i: &IncidentRecord,
    entry: &IncidentEntry,
    expected: Option<i64>,
) -> Result<Saved> {
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

type Statement<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds [`CHANGING`], in its order.
fn bind_changing<'q>(q: Statement<'q>, i: &IncidentRecord) -> Statement<'q> {
    q.bind(i.state.clone())
        .bind(i.severity.clone())
        .bind(i.title.clone())
        .bind(i.assignee.clone())
        .bind(i.acknowledged_at.map(to_ms))
        .bind(i.acknowledged_by.clone())
        .bind(i.resolved_at.map(to_ms))
        .bind(i.resolved_by.clone())
        .bind(i.resolution.clone())
        .bind(i.episode_count)
        .bind(serde_json::to_string(&i.open_episodes).unwrap_or_else(|_| "[]".into()))
        .bind(to_ms(i.last_activity_at))
        .bind(to_ms(i.updated_at))
        .bind(i.version)
}

async fn insert(conn: &mut SqliteConnection, i: &IncidentRecord) -> Result<()> {
    let marks = vec!["?"; 4 + CHANGING.split(", ").count()].join(", ");
    let sql = format!("INSERT INTO incidents (id, machine_id, anomaly_type, opened_at, {CHANGING}) VALUES ({marks})");
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i.id.to_string())
        .bind(i.machine_id.to_string())
        .bind(i.anomaly_type.clone())
        .bind(to_ms(i.opened_at));
    bind_changing(q, i).execute(&mut *conn).await.map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { field: "anomaly_type", value: i.anomaly_type.clone() }
        }
        e => e.into(),
    })?;
    Ok(())
}

async fn update(conn: &mut SqliteConnection, i: &IncidentRecord, expected: i64) -> Result<bool> {
    let assignments = CHANGING.split(", ").map(|c| format!("{c} = ?")).collect::<Vec<_>>().join(", ");
    let sql = format!("UPDATE incidents SET {assignments} WHERE id = ? AND version = ?");
    let done = bind_changing(sqlx::query(sqlx::AssertSqlSafe(sql)), i)
        .bind(i.id.to_string())
        .bind(expected)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// `false` when the entry's event is already on the incident's timeline.
async fn add_entry(conn: &mut SqliteConnection, e: &IncidentEntry) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO incident_entries (incident_id, at, kind, actor, text, data, source_event)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, source_event) DO NOTHING",
    )
    .bind(e.incident_id.to_string())
    .bind(to_ms(e.at))
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.text)
    .bind(e.data.to_string())
    .bind(&e.source_event)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn incident(row: &SqliteRow) -> Result<IncidentRecord> {
    let open: String = row.try_get("open_episodes")?;
    Ok(IncidentRecord {
        id: parse_uuid(row.try_get("id")?)?,
        machine_id: parse_uuid(row.try_get("machine_id")?)?,
        anomaly_type: row.try_get("anomaly_type")?,
        state: row.try_get("state")?,
        severity: row.try_get("severity")?,
        title: row.try_get("title")?,
        assignee: row.try_get("assignee")?,
        opened_at: from_ms(row.try_get("opened_at")?),
        acknowledged_at: row.try_get::<Option<i64>, _>("acknowledged_at")?.map(from_ms),
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
        resolved_by: row.try_get("resolved_by")?,
        resolution: row.try_get("resolution")?,
        episode_count: row.try_get("episode_count")?,
        open_episodes: serde_json::from_str(&open).map_err(|e| StoreError::Corrupt(format!("open_episodes: {e}")))?,
        last_activity_at: from_ms(row.try_get("last_activity_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    })
}

pub async fn get(pool: &SqlitePool, id: uuid::Uuid) -> Result<Option<IncidentRecord>> {
    let row = sqlx::query("SELECT * FROM incidents WHERE id = ?").bind(id.to_string()).fetch_optional(pool).await?;
    row.as_ref().map(incident).transpose()
}

pub async fn unresolved(pool: &SqlitePool, machine: uuid::Uuid, kind: &str) -> Result<Option<IncidentRecord>> {
    let row = sqlx::query("SELECT * FROM incidents WHERE machine_id = ? AND anomaly_type = ? AND state <> 'resolved'")
        .bind(machine.to_string())
        .bind(kind)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(incident).transpose()
}

pub async fn list(pool: &SqlitePool, q: &IncidentQuery) -> Result<Vec<IncidentRecord>> {
    let mut b = QueryBuilder::<Sqlite>::new("SELECT * FROM incidents WHERE 1 = 1");
    if let Some(m) = q.machine_id {
        b.push(" AND machine_id = ").push_bind(m.to_string());
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
        b.push(" AND opened_at >= ").push_bind(to_ms(t));
    }
    b.push(" ORDER BY opened_at DESC, id LIMIT ").push_bind(i64::from(q.limit));
    b.build().fetch_all(pool).await?.iter().map(incident).collect()
}

pub async fn entries(pool: &SqlitePool, id: uuid::Uuid) -> Result<Vec<IncidentEntry>> {
    let rows = sqlx::query("SELECT * FROM incident_entries WHERE incident_id = ? ORDER BY seq")
        .bind(id.to_string())
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let data: String = row.try_get("data")?;
            Ok(IncidentEntry {
                seq: row.try_get("seq")?,
                incident_id: parse_uuid(row.try_get("incident_id")?)?,
                at: from_ms(row.try_get("at")?),
                kind: row.try_get("kind")?,
                actor: row.try_get("actor")?,
                text: row.try_get("text")?,
                data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("entry data: {e}")))?,
                source_event: row.try_get("source_event")?,
            })
        })
        .collect()
}

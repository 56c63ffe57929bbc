//! Incidents as stored: one row per incident (its state, severity, who
//! acknowledged, resolved or holds it, the episodes it gathers) and its
//! timeline, one entry per thing that happened to it.
//!
//! Writes are optimistic: a change names the version it read, and a
//! concurrent change makes it [`Saved::Stale`] (the service reads again
//! and retries). An entry made from an event carries the event's id, and a
//! change whose entry was already stored is [`Saved::Duplicate`] and writes
//! nothing — so an event read twice (after a crash, or by two instances)
//! changes an incident once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentRecord {
    pub id: Uuid,
    pub machine_id: Uuid,
    /// The kind of anomaly it gathers; one unresolved incident per machine
    /// and kind.
    pub anomaly_type: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// The highest severity of its episodes: `warning` or `critical`.
    pub severity: String,
    pub title: String,
    pub assignee: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// `auto` (normal long enough) or `manual`.
    pub resolution: Option<String>,
    pub episode_count: i64,
    /// Episodes still open (their ids).
    pub open_episodes: Vec<Uuid>,
    /// The end of its latest episode (or the latest anomaly without one):
    /// normal since then when no episode is open.
    pub last_activity_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Counts writes; a change names the version it read.
    pub version: i64,
}

/// One thing that happened to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentEntry {
    /// Order within the store (0 before it is stored).
    pub seq: i64,
    pub incident_id: Uuid,
    pub at: DateTime<Utc>,
    /// `opened`, `episode`, `escalated`, `episode_ended`, `acknowledged`,
    /// `comment`, `assigned`, `resolved`.
    pub kind: String,
    /// Who: a token's name, `anonymous` on an open server, or `system`.
    pub actor: String,
    pub text: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The event it was made from, if any.
    pub source_event: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub machine_id: Option<Uuid>,
    /// Any of these states (empty: all).
    pub states: Vec<String>,
    pub severity: Option<String>,
    pub assignee: Option<String>,
    /// Opened at or after.
    pub since: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// The entry's event was already applied: nothing written.
    Duplicate,
    /// The incident changed since it was read: nothing written.
    Stale,
}

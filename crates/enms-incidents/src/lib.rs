//! Incidents: the anomaly episodes of one machine and kind, gathered while
//! the incident is unresolved, with the lifecycle operators know from alarm
//! systems and a timeline of who did what (docs/incidents.md).
//!
//! - [`lifecycle`]: states and the actions each allows;
//! - [`intake`]: follows the durable events (`anomaly_detected`,
//!   `anomaly_updated`) after a stored cursor and applies each once to its
//!   incident — opening one, adding an episode, an escalation or an
//!   episode's end — and resolves incidents whose machine has been normal
//!   for `resolve_after`;
//! - this module: the [`Incidents`] service the HTTP routes call to
//!   acknowledge, comment, assign and resolve, and the writes they share.
//!
//! Every change is one store transaction (the incident at the version read,
//! plus its timeline entry) followed by `incident_opened`,
//! `incident_updated` or `incident_resolved` through an [`IncidentSink`]
//! (the server's bus): a concurrent change makes the write stale, and it
//! is retried on a fresh read. No HTTP, no bus of its own.

pub mod intake;
pub mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::event::EventType;
use enms_core::setting::InvalidSetting;
use enms_store::{IncidentEntry, IncidentQuery, IncidentRecord, Saved, Store, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub use lifecycle::{Action, State};

/// Attempts at a change that keeps meeting a concurrent one.
const ATTEMPTS: usize = 8;
const MAX_TEXT: usize = 2000;
const MAX_NAME: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentsConfig {
    /// An incident is resolved once its machine has had no open episode of
    /// its kind for this long [default: 30 min].
    pub resolve_after: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self { resolve_after: Duration::from_secs(30 * 60) }
    }
}

impl IncidentsConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.resolve_after < Duration::from_secs(1) || self.resolve_after > Duration::from_secs(30 * 86_400) {
            return Err(InvalidSetting::new(
                "incidents resolve_after",
                format!("{:?} must be between 1s and 30d", self.resolve_after),
            ));
        }
        Ok(())
    }
}

/// Where incident events go (the server publishes them on its bus).
#[async_trait::async_trait]
pub trait IncidentSink: Send + Sync + 'static {
    async fn publish(&self, kind: EventType, data: Value) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident with id {0}")]
    NotFound(Uuid),
    /// The incident's state does not allow the action (a 409).
    #[error("cannot {action} an incident that is {state}", action = .action.as_str(), state = .state.as_str())]
    Transition { action: Action, state: State },
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("the incident kept changing under this request; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An incident with its timeline, as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: IncidentRecord,
    pub machine_name: Option<String>,
    /// Oldest first.
    pub timeline: Vec<IncidentEntry>,
}

#[derive(Clone)]
pub struct Incidents {
    pub store: Arc<dyn Store>,
    sink: Arc<dyn IncidentSink>,
    pub config: IncidentsConfig,
}

/// What a change did, to announce.
struct Change {
    kind: EventType,
    what: &'static str,
    by: String,
    text: Option<String>,
}

impl Incidents {
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn IncidentSink>, config: IncidentsConfig) -> Self {
        Self { store, sink, config }
    }

    pub async fn get(&self, id: Uuid) -> Result<IncidentView, IncidentError> {
        let incident = self.store.get_incident(id).await?.ok_or(IncidentError::NotFound(id))?;
        self.view(incident).await
    }

    pub async fn list(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, IncidentError> {
        Ok(self.store.list_incidents(query).await?)
    }

    async fn view(&self, incident: IncidentRecord) -> Result<IncidentView, IncidentError> {
        let timeline = self.store.incident_entries(incident.id).await?;
        let machine_name = self.store.get_machine(incident.machine_id).await?.map(|m| m.name);
        Ok(IncidentView { incident, machine_name, timeline })
    }

    pub async fn acknowledge(&self, id: Uuid, by: &str, note: Option<String>) -> Result<IncidentView, IncidentError> {
        let note = optional_text("note", note)?;
        self.act(id, Action::Acknowledge, by, note, |i, now, by| {
            i.acknowledged_at = Some(now);
            i.acknowledged_by = Some(by.to_owned());
        })
        .await
    }

    pub async fn comment(&self, id: Uuid, by: &str, text: String) -> Result<IncidentView, IncidentError> {
        let text = optional_text("text", Some(text))?
            .ok_or_else(|| IncidentError::Invalid { field: "text", message: "text must not be empty".into() })?;
        self.act(id, Action::Comment, by, Some(text), |_, _, _| {}).await
    }

    /// `assignee: None` unassigns.
    pub async fn assign(&self, id: Uuid, by: &str, assignee: Option<String>) -> Result<IncidentView, IncidentError> {
        let assignee = match assignee {
            Some(a) => Some(
                enms_core::validation::text("assignee", &a, MAX_NAME, false)
                    .map_err(|e| IncidentError::Invalid { field: "assignee", message: e.message })?,
            ),
            None => None,
        };
        let text = Some(match &assignee {
            Some(a) => format!("assigned to {a}"),
            None => "unassigned".to_owned(),
        });
        self.act(id, Action::Assign, by, text, move |i, _, _| i.assignee = assignee.clone()).await
    }

    pub async fn resolve(&self, id: Uuid, by: &str, note: Option<String>) -> Result<IncidentView, IncidentError> {
        let note = optional_text("note", note)?;
        self.act(id, Action::Resolve, by, note, |i, now, by| resolve(i, now, by, "manual")).await
    }

    /// Reads, checks the transition, changes, writes at the version read;
    /// again on a concurrent change.
    async fn act(
        &self,
        id: Uuid,
        action: Action,
        by: &str,
        text: Option<String>,
        change: impl Fn(&mut IncidentRecord, DateTime<Utc>, &str),
    ) -> Result<IncidentView, IncidentError> {
        for _ in 0..ATTEMPTS {
            let read = self.store.get_incident(id).await?.ok_or(IncidentError::NotFound(id))?;
            let state = State::parse(&read.state).unwrap_or(State::Open);
            let to = lifecycle::next(state, action).ok_or(IncidentError::Transition { action, state })?;
            let now = Utc::now();
            let mut i = read.clone();
            change(&mut i, now, by);
            i.state = to.as_str().to_owned();
            let (kind, what) = match action {
                Action::Acknowledge => (EventType::IncidentUpdated, "acknowledged"),
                Action::Comment => (EventType::IncidentUpdated, "comment"),
                Action::Assign => (EventType::IncidentUpdated, "assigned"),
                Action::Resolve => (EventType::IncidentResolved, "resolved"),
            };
            let entry = entry(&i, now, what, by, text.clone(), json!({}), None);
            match self.write(&mut i, read.version, &entry).await? {
                Saved::Written => {
                    self.announce(&i, Change { kind, what, by: by.to_owned(), text: text.clone() }).await;
                    return self.view(i).await;
                }
                Saved::Stale | Saved::Duplicate => continue,
            }
        }
        Err(IncidentError::Contended)
    }

    /// Writes `i` (its version bumped) over `expected`.
    async fn write(&self, i: &mut IncidentRecord, expected: i64, entry: &IncidentEntry) -> Result<Saved, StoreError> {
        i.version = expected + 1;
        i.updated_at = entry.at;
        self.store.save_incident(i, entry, Some(expected)).await
    }

    async fn announce(&self, i: &IncidentRecord, change: Change) {
        let machine_name = self.store.get_machine(i.machine_id).await.ok().flatten().map(|m| m.name);
        let data = json!({
            "incident_id": i.id,
            "machine_id": i.machine_id,
            "machine_name": machine_name,
            "anomaly_type": i.anomaly_type,
            "severity": i.severity,
            "state": i.state,
            "title": i.title,
            "assignee": i.assignee,
            "change": change.what,
            "by": change.by,
            "text": change.text,
            "incident": i,
        });
        if let Err(e) = self.sink.publish(change.kind, data).await {
            tracing::warn!(error = %e, incident = %i.id, "incident event not published");
        }
    }

    /// Resolves every unresolved incident whose machine has had no open
    /// episode of its kind for `resolve_after`; answers how many.
    pub async fn auto_resolve(&self, now: DateTime<Utc>) -> Result<usize, IncidentError> {
        let quiet = chrono::Duration::from_std(self.config.resolve_after).unwrap_or(chrono::Duration::minutes(30));
        let query =
            IncidentQuery { states: vec!["open".into(), "acknowledged".into()], limit: 1000, ..Default::default() };
        let mut resolved = 0;
        for read in self.store.list_incidents(&query).await? {
            if !read.open_episodes.is_empty() || read.last_activity_at + quiet > now {
                continue;
            }
            let mut i = read.clone();
            resolve(&mut i, now, "system", "auto");
            let text = format!("normal for {}", human(self.config.resolve_after));
            let entry = entry(&i, now, "resolved", "system", Some(text.clone()), json!({"resolution": "auto"}), None);
            // Stale: an episode or a person got there first; the next tick
            // looks again.
            if self.write(&mut i, read.version, &entry).await? == Saved::Written {
                resolved += 1;
                let change = Change {
                    kind: EventType::IncidentResolved,
                    what: "resolved",
                    by: "system".into(),
                    text: Some(text),
                };
                self.announce(&i, change).await;
            }
        }
        Ok(resolved)
    }
}

fn resolve(i: &mut IncidentRecord, now: DateTime<Utc>, by: &str, how: &str) {
    i.state = State::Resolved.as_str().to_owned();
    i.resolved_at = Some(now);
    i.resolved_by = Some(by.to_owned());
    i.resolution = Some(how.to_owned());
}

fn entry(
    i: &IncidentRecord,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    text: Option<String>,
    data: Value,
    source_event: Option<String>,
) -> IncidentEntry {
    IncidentEntry {
        seq: 0,
        incident_id: i.id,
        at,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        text,
        data,
        source_event,
    }
}

fn optional_text(field: &'static str, v: Option<String>) -> Result<Option<String>, IncidentError> {
    match v {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(None),
        Some(t) => {
            if t.chars().count() > MAX_TEXT {
                return Err(IncidentError::Invalid {
                    field,
                    message: format!("{field} must be at most {MAX_TEXT} characters"),
                });
            }
            Ok(Some(t.trim().to_owned()))
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

//! Episodes in, incidents out: reads `anomaly_detected` and
//! `anomaly_updated` from the durable events after the stored cursor
//! `incidents` and applies each to the unresolved incident of its machine
//! and kind, and every [`tick`] resolves the incidents whose machine has
//! been normal long enough.
//!
//! What an event does:
//! - `anomaly_detected` of severity warning or critical: opens an incident
//!   when the machine has none unresolved of that kind; else adds the
//!   episode (a new one) or an escalation (one already gathered), raising
//!   the incident's severity to the highest seen;
//! - `anomaly_updated` (an episode ended): takes the episode off the
//!   incident's open list and marks when activity last was — normal from
//!   then on, for auto-resolution.
//!
//! Each change's timeline entry carries the event's id, so an event read
//! again (a crash before the cursor moved, two instances) changes nothing
//! the second time. Anomalies published without an episode (by a client,
//! through `POST /api/v1/events`) count as episodes that end at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::event::{EventId, EventType, Severity};
use enms_core::feed::EventSource;
use enms_store::follow::{Follow, Follower};
use enms_store::{IncidentRecord, Saved, StoreError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{ATTEMPTS, Change, Incidents, State, entry};

const CURSOR: &str = "incidents";
/// How soon a new episode reaches its incident.
const IDLE: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_secs(1);
const TYPES: [EventType; 2] = [EventType::AnomalyDetected, EventType::AnomalyUpdated];

/// How often unresolved incidents are checked for auto-resolution: a
/// quarter of `resolve_after`, between 250 ms and 30 s.
pub fn tick(resolve_after: Duration) -> Duration {
    (resolve_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
}

/// Follows the events until `stop` (`enms_store::follow`); `started`
/// bounds where a first start begins (events from before it were someone
/// else's to handle).
pub async fn run(incidents: Incidents, events: Arc<dyn EventSource>, started: DateTime<Utc>, stop: CancellationToken) {
    let follow = Follow { name: CURSOR, types: TYPES.to_vec(), idle: IDLE, retry: RETRY, started };
    let every = tick(incidents.config.resolve_after);
    let intake = Intake { incidents, every, next_check: Mutex::new(tokio::time::Instant::now()) };
    enms_store::follow::run(intake.incidents.store.as_ref(), &*events, &follow, &intake, &stop).await;
}

struct Intake {
    incidents: Incidents,
    every: Duration,
    next_check: Mutex<tokio::time::Instant>,
}

#[async_trait::async_trait]
impl Follower for Intake {
    async fn take(&self, id: EventId, kind: EventType, envelope: &[u8]) -> Result<(), String> {
        apply(&self.incidents, id, kind, envelope).await.map_err(|e| e.to_string())
    }

    async fn before_read(&self) {
        let now = tokio::time::Instant::now();
        {
            let mut next = self.next_check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if now < *next {
                return;
            }
            *next = now + self.every;
        }
        if let Err(e) = self.incidents.auto_resolve(Utc::now()).await {
            tracing::warn!(error = %e, "incidents: auto-resolution failed; trying again");
        }
    }

    async fn missed(&self, after: EventId) {
        tracing::warn!(after = %after, "incidents fell behind the event log; some episodes were not gathered");
    }
}

/// The facts of an anomaly event an incident needs.
struct Seen {
    machine: Uuid,
    machine_name: Option<String>,
    kind: String,
    severity: Severity,
    /// The episode, when the event comes from enms's detection.
    episode: Option<Uuid>,
    /// Still open (no `anomaly_updated` will come for an episode-less one).
    open: bool,
    escalated: bool,
    /// Its latest activity: the episode's end, or the anomaly's time.
    at: DateTime<Utc>,
    /// When it began: the episode's start, or the anomaly's time.
    began: DateTime<Utc>,
    data: Value,
}

fn read(kind: EventType, envelope: &[u8]) -> Option<Seen> {
    let v: Value = serde_json::from_slice(envelope).ok()?;
    let d = v.get("data")?;
    let machine = d.get("machine_id")?.as_str()?.parse().ok()?;
    let severity = d.get("severity").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(Severity::Warning);
    let episode = d.pointer("/details/episode");
    let time = |p: Option<&Value>| p.and_then(Value::as_str).and_then(enms_core::timestamp::parse);
    let at = time(episode.and_then(|e| e.get("end")))
        .or_else(|| time(d.get("timestamp")))
        .or_else(|| time(v.get("timestamp")))
        .unwrap_or_else(Utc::now);
    let began = time(episode.and_then(|e| e.get("start"))).unwrap_or(at).min(at);
    Some(Seen {
        began,
        machine,
        machine_name: d.get("machine_name").and_then(Value::as_str).map(str::to_owned),
        kind: d.get("anomaly_type").and_then(Value::as_str).unwrap_or("anomaly").to_owned(),
        severity,
        episode: episode.and_then(|e| e.get("id")).and_then(Value::as_str).and_then(|s| s.parse().ok()),
        open: kind == EventType::AnomalyDetected
            && episode.and_then(|e| e.get("open")).and_then(Value::as_bool).unwrap_or(false),
        escalated: d.pointer("/details/escalated").and_then(Value::as_bool).unwrap_or(false),
        at,
        data: json!({
            "anomaly_id": d.get("anomaly_id"),
            "severity": d.get("severity"),
            "metric": d.get("metric"),
            "value": d.get("value"),
            "expected_value": d.get("expected_value"),
            "episode": episode,
        }),
    })
}

fn rank(s: &str) -> Severity {
    s.parse().unwrap_or(Severity::Warning)
}

fn name(s: Severity) -> &'static str {
    if s >= Severity::Critical { "critical" } else { "warning" }
}

/// Applies one event to its incident (once, whatever happens around it).
pub async fn apply(incidents: &Incidents, id: EventId, kind: EventType, envelope: &[u8]) -> Result<(), StoreError> {
    let Some(mut seen) = read(kind, envelope) else { return Ok(()) };
    if seen.machine_name.is_none() {
        seen.machine_name = incidents.store.get_machine(seen.machine).await?.map(|m| m.name);
    }
    if kind == EventType::AnomalyDetected && seen.severity < Severity::Warning {
        return Ok(());
    }
    let source = Some(id.to_string());
    for _ in 0..ATTEMPTS {
        let current = incidents.store.unresolved_incident(seen.machine, &seen.kind).await?;
        let (i, expected, entry, change) = match (kind, current) {
            (EventType::AnomalyDetected, None) => {
                let i = opened(&seen);
                let text = Some(format!("{} {} anomaly", name(seen.severity), seen.kind));
                let e = entry(&i, seen.at, "opened", "system", text.clone(), seen.data.clone(), source.clone());
                (i, None, e, Change { kind: EventType::IncidentOpened, what: "opened", by: "system".into(), text })
            }
            (EventType::AnomalyDetected, Some(read)) => {
                let mut i = read.clone();
                let known = seen.episode.is_some_and(|e| i.open_episodes.contains(&e));
                let what = if known || seen.escalated { "escalated" } else { "episode" };
                if !known {
                    i.episode_count += 1;
                    if let (Some(e), true) = (seen.episode, seen.open) {
                        i.open_episodes.push(e);
                    }
                }
                i.severity = name(rank(&i.severity).max(seen.severity)).to_owned();
                i.last_activity_at = i.last_activity_at.max(seen.at);
                let text = Some(format!("{} {} anomaly", name(seen.severity), seen.kind));
                let e = entry(&i, seen.at, what, "system", text.clone(), seen.data.clone(), source.clone());
                (i, Some(read.version), e, Change { kind: EventType::IncidentUpdated, what, by: "system".into(), text })
            }
            (_, Some(read)) if seen.episode.is_some_and(|e| read.open_episodes.contains(&e)) => {
                let mut i = read.clone();
                i.open_episodes.retain(|e| Some(*e) != seen.episode);
                i.last_activity_at = i.last_activity_at.max(seen.at);
                let text = Some("episode ended".to_owned());
                let e = entry(&i, seen.at, "episode_ended", "system", text.clone(), seen.data.clone(), source.clone());
                (
                    i,
                    Some(read.version),
                    e,
                    Change { kind: EventType::IncidentUpdated, what: "episode_ended", by: "system".into(), text },
                )
            }
            // An end of an episode no unresolved incident holds.
            _ => return Ok(()),
        };
        let mut i = i;
        let saved = match expected {
            None => match incidents.store.save_incident(&i, &entry, None).await {
                Ok(s) => s,
                // Another instance opened it first: apply to theirs.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            },
            Some(v) => incidents.write(&mut i, v, &entry).await?,
        };
        match saved {
            Saved::Written => {
                incidents.announce(&i, change).await;
                return Ok(());
            }
            Saved::Duplicate => return Ok(()),
            Saved::Stale => continue,
        }
    }
    tracing::warn!(event = %id, "incidents: an event kept meeting concurrent changes; left");
    Ok(())
}

fn opened(seen: &Seen) -> IncidentRecord {
    let machine = seen.machine_name.clone().unwrap_or_else(|| seen.machine.to_string());
    IncidentRecord {
        id: Uuid::new_v4(),
        machine_id: seen.machine,
        anomaly_type: seen.kind.clone(),
        state: State::Open.as_str().to_owned(),
        severity: name(seen.severity).to_owned(),
        title: format!("{} on {machine}", seen.kind),
        assignee: None,
        opened_at: seen.began,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
        episode_count: 1,
        open_episodes: seen.episode.filter(|_| seen.open).into_iter().collect(),
        last_activity_at: seen.at,
        updated_at: Utc::now(),
        version: 1,
    }
}

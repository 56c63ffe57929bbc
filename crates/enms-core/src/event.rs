//! Events: the eight types pushed to dashboards and clients, their payload
//! schemas (the compatibility contract of the system we replace), ordered ids
//! and the envelope sent on the wire.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    AnomalyDetected,
    /// An anomaly episode ended (the machine was normal for its quiet stretch).
    AnomalyUpdated,
    MetricUpdated,
    TrainingStarted,
    TrainingProgress,
    TrainingCompleted,
    ModelUpdated,
    SystemAlert,
    /// An incident opened (the first episode of a machine and kind).
    IncidentOpened,
    /// An incident changed: an episode, an escalation, an acknowledgement,
    /// a comment, an assignment.
    IncidentUpdated,
    IncidentResolved,
    /// A machine's forecast was recomputed (a forecast job finished).
    ForecastUpdated,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        Self::AnomalyDetected,
        Self::AnomalyUpdated,
        Self::MetricUpdated,
        Self::TrainingStarted,
        Self::TrainingProgress,
        Self::TrainingCompleted,
        Self::ModelUpdated,
        Self::SystemAlert,
        Self::IncidentOpened,
        Self::IncidentUpdated,
        Self::IncidentResolved,
        Self::ForecastUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AnomalyDetected => "anomaly_detected",
            Self::AnomalyUpdated => "anomaly_updated",
            Self::MetricUpdated => "metric_updated",
            Self::TrainingStarted => "training_started",
            Self::TrainingProgress => "training_progress",
            Self::TrainingCompleted => "training_completed",
            Self::ModelUpdated => "model_updated",
            Self::SystemAlert => "system_alert",
            Self::IncidentOpened => "incident_opened",
            Self::IncidentUpdated => "incident_updated",
            Self::IncidentResolved => "incident_resolved",
            Self::ForecastUpdated => "forecast_updated",
        }
    }

    /// The seeds' Redis channel name, e.g. `anomaly.detected`.
    pub fn topic(self) -> &'static str {
        match self {
            Self::AnomalyDetected => "anomaly.detected",
            Self::AnomalyUpdated => "anomaly.updated",
            Self::MetricUpdated => "metric.updated",
            Self::TrainingStarted => "training.started",
            Self::TrainingProgress => "training.progress",
            Self::TrainingCompleted => "training.completed",
            Self::ModelUpdated => "model.updated",
            Self::SystemAlert => "system.alert",
            Self::IncidentOpened => "incident.opened",
            Self::IncidentUpdated => "incident.updated",
            Self::IncidentResolved => "incident.resolved",
            Self::ForecastUpdated => "forecast.updated",
        }
    }

    /// Durable events go to the event log; `metric_updated` is high-volume and
    /// superseded by the next value, so it lives only in the replay window.
    pub fn durable(self) -> bool {
        self != Self::MetricUpdated
    }
}

impl FromStr for EventType {
    type Err = String;
    /// Accepts the event name or the seeds' topic name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s || t.topic() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown event type {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordered event id, `<unix ms>-<sequence>` like a Redis Stream entry id,
/// so the same ids work when the bus moves to Redis Streams. Clients treat it
/// as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    pub ms: u64,
    pub seq: u64,
}

impl EventId {
    /// The next id after `self` at wall-clock `now_ms`; never goes backwards.
    pub fn next(self, now_ms: u64) -> Self {
        if now_ms > self.ms { Self { ms: now_ms, seq: 0 } } else { Self { ms: self.ms, seq: self.seq + 1 } }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The form [`EventId::from_str`] accepts, for the OpenAPI document: up to
/// 15 digits of milliseconds (past the year 30000) and 19 of sequence, so
/// both always fit in a u64.
pub const EVENT_ID_PATTERN: &str = r"^[0-9]{1,15}(-[0-9]{1,19})?$";

impl FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        let digits = |d: &str, max: usize| !d.is_empty() && d.len() <= max && d.bytes().all(|b| b.is_ascii_digit());
        match (digits(ms, 15) && digits(seq, 19)).then(|| (ms.parse(), seq.parse())) {
            Some((Ok(ms), Ok(seq))) => Ok(Self { ms, seq }),
            _ => Err(format!("{s:?} is not an event id such as 1763800000000-0")),
        }
    }
}

impl utoipa::PartialSchema for EventId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(EVENT_ID_PATTERN))
            .description(Some("Ordered event id `<unix ms>-<sequence>`; treat as opaque."))
            .examples([serde_json::json!("1763800000000-0")])
            .into()
    }
}

impl utoipa::ToSchema for EventId {}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Anomaly severity, ordered so `min_severity` filters compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Info,
    Warning,
    Critical,
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(format!("severity must be normal, info, warning or critical; got {s:?}")),
        }
    }
}

/// One event as delivered: `{"type", "id", "timestamp", "data"}` where `data`
/// repeats `event_type`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub id: EventId,
    pub timestamp: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    /// Machine the event concerns, for `machine_id` filters.
    pub fn machine_id(&self) -> Option<&str> {
        self.data.get("machine_id").and_then(Value::as_str)
    }

    pub fn severity(&self) -> Option<Severity> {
        self.data.get("severity").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::payload::validate_payload;

    #[test]
    fn ids_are_ordered_and_never_go_back() {
        let a = EventId { ms: 10, seq: 0 };
        assert_eq!(a.next(5), EventId { ms: 10, seq: 1 }, "clock went back");
        assert_eq!(a.next(11), EventId { ms: 11, seq: 0 });
        assert!(EventId { ms: 10, seq: 9 } < EventId { ms: 11, seq: 0 });
        assert_eq!("10-3".parse::<EventId>(), Ok(EventId { ms: 10, seq: 3 }));
        assert!("x-3".parse::<EventId>().is_err());
        for bad in ["", "-1", "1-", "+1-0", "1234567890123456-0", "347060246753201425758", "1-99999999999999999999"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
        assert_eq!("999999999999999-9999999999999999999".parse::<EventId>().map(|id| id.ms), Ok(999_999_999_999_999));
    }

    #[test]
    fn types_parse_from_names_and_seed_topics() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(t.topic().parse::<EventType>(), Ok(t));
        }
        assert!("anomaly".parse::<EventType>().is_err());
    }

    #[test]
    fn payloads_are_checked_and_normalised() {
        let now = Utc::now();
        let alert = json!({"alert_type": "disk", "message": "disk 91% full", "severity": "warning"});
        let v = validate_payload(EventType::SystemAlert, alert, now).expect("valid");
        assert_eq!(v["event_type"], "system_alert");
        let anomaly = json!({"machine_id": "c0000000-0000-0000-0000-000000000001", "severity": "critical",
                             "anomaly_type": "spike", "value": 120.5});
        let v = validate_payload(EventType::AnomalyDetected, anomaly, now).expect("valid");
        assert!(v["anomaly_id"].is_string() && v["timestamp"].is_string());

        let cases = [
            (EventType::SystemAlert, json!({"message": "x", "severity": "warning"}), "data.alert_type"),
            (EventType::SystemAlert, json!({"alert_type": "a", "message": "x", "severity": "loud"}), "data.severity"),
            (EventType::MetricUpdated, json!({"metric_name": "power_kw", "value": "hot"}), "data.value"),
            (
                EventType::TrainingProgress,
                json!({"job_id": "1", "status": "running", "progress_pct": 140}),
                "data.progress_pct",
            ),
            (
                EventType::SystemAlert,
                json!({"alert_type": "a", "message": "x", "severity": "info", "colour": 1}),
                "data.colour",
            ),
            (EventType::SystemAlert, json!({"event_type": "anomaly_detected"}), "data.event_type"),
            (EventType::SystemAlert, json!([1, 2]), "data"),
        ];
        for (t, data, field) in cases {
            let err = validate_payload(t, data.clone(), now).expect_err("invalid");
            assert_eq!(err.field, field, "{data}");
        }
    }
}

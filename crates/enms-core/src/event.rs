//! Events: the seven types pushed to dashboards and clients, their payload
//! schemas (the compatibility contract of the system we replace), ordered ids
//! and the envelope sent on the wire.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::validation::{FieldError, finite_in, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    AnomalyDetected,
    MetricUpdated,
    TrainingStarted,
    TrainingProgress,
    TrainingCompleted,
    ModelUpdated,
    SystemAlert,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::AnomalyDetected,
        Self::MetricUpdated,
        Self::TrainingStarted,
        Self::TrainingProgress,
        Self::TrainingCompleted,
        Self::ModelUpdated,
        Self::SystemAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AnomalyDetected => "anomaly_detected",
            Self::MetricUpdated => "metric_updated",
            Self::TrainingStarted => "training_started",
            Self::TrainingProgress => "training_progress",
            Self::TrainingCompleted => "training_completed",
            Self::ModelUpdated => "model_updated",
            Self::SystemAlert => "system_alert",
        }
    }

    /// The seeds' Redis channel name, e.g. `anomaly.detected`.
    pub fn topic(self) -> &'static str {
        match self {
            Self::AnomalyDetected => "anomaly.detected",
            Self::MetricUpdated => "metric.updated",
            Self::TrainingStarted => "training.started",
            Self::TrainingProgress => "training.progress",
            Self::TrainingCompleted => "training.completed",
            Self::ModelUpdated => "model.updated",
            Self::SystemAlert => "system.alert",
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

impl FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        match (ms.parse(), seq.parse()) {
            (Ok(ms), Ok(seq)) => Ok(Self { ms, seq }),
            _ => Err(format!("{s:?} is not an event id such as 1763800000000-0")),
        }
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Anomaly severity, ordered so `min_severity` filters compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Checks a payload against its type's schema and returns it normalised
/// (with `event_type`, and generated ids or timestamps where optional).
pub fn validate_payload(event_type: EventType, data: Value, now: DateTime<Utc>) -> Result<Value, FieldError> {
    let Value::Object(mut map) = data else {
        return Err(FieldError::new("invalid_type", "data", "data must be a JSON object"));
    };
    match map.remove("event_type") {
        None => {}
        Some(Value::String(t)) if t == event_type.as_str() => {}
        Some(other) => {
            return Err(FieldError::new(
                "type_mismatch",
                "data.event_type",
                format!("data.event_type {other} does not match type {event_type}"),
            ));
        }
    }
    let mut p = Payload { map, out: Map::new() };
    match event_type {
        EventType::AnomalyDetected => {
            p.uuid_or_new("anomaly_id")?;
            p.uuid("machine_id", true)?;
            p.string("machine_name", false, 100)?;
            p.severity("severity", true)?;
            p.string("anomaly_type", true, 100)?;
            p.string("metric", false, 100)?;
            p.number("value", false)?;
            p.number("expected_value", false)?;
            p.number("anomaly_score", false)?;
            p.timestamp_or_now("timestamp", now)?;
        }
        EventType::MetricUpdated => {
            p.uuid("machine_id", false)?;
            p.string("metric_name", true, 100)?;
            p.number("value", true)?;
            p.string("unit", false, 20)?;
            p.timestamp_or_now("timestamp", now)?;
        }
        EventType::TrainingStarted | EventType::TrainingProgress | EventType::TrainingCompleted => {
            p.string("job_id", true, 100)?;
            p.uuid("machine_id", false)?;
            p.string("model_type", false, 50)?;
            p.percent("progress_pct")?;
            p.string("status", event_type != EventType::TrainingStarted, 50)?;
            p.string("message", false, 1000)?;
            p.object("metrics")?;
            p.string("error_message", false, 2000)?;
        }
        EventType::ModelUpdated => {
            p.string("model_id", true, 100)?;
            p.uuid("machine_id", false)?;
            p.string("model_type", false, 50)?;
            p.number("version", false)?;
            p.object("metrics")?;
            p.string("message", false, 1000)?;
        }
        EventType::SystemAlert => {
            p.string("alert_type", true, 100)?;
            p.string("message", true, 2000)?;
            p.severity("severity", true)?;
            p.string("source", false, 100)?;
        }
    }
    p.object("details")?;
    if let Some(extra) = p.map.keys().next() {
        return Err(FieldError::new(
            "unknown_field",
            format!("data.{extra}"),
            format!("{event_type} has no field {extra:?}"),
        ));
    }
    let mut out = Map::with_capacity(p.out.len() + 1);
    out.insert("event_type".into(), Value::String(event_type.as_str().into()));
    out.extend(p.out);
    Ok(Value::Object(out))
}

/// Moves checked fields from the incoming map to the output.
struct Payload {
    map: Map<String, Value>,
    out: Map<String, Value>,
}

impl Payload {
    fn take(&mut self, key: &str, required: bool) -> Result<Option<Value>, FieldError> {
        match self.map.remove(key) {
            None | Some(Value::Null) if required => {
                Err(FieldError::new("required", format!("data.{key}"), format!("data.{key} is required")))
            }
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    }

    fn wrong(key: &str, expected: &str) -> FieldError {
        FieldError::new("invalid_type", format!("data.{key}"), format!("data.{key} must be {expected}"))
    }

    fn string(&mut self, key: &str, required: bool, max: usize) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, required)? {
            let s = v.as_str().ok_or_else(|| Self::wrong(key, "a string"))?;
            let s = text(&format!("data.{key}"), s, max, !required)?;
            self.out.insert(key.into(), Value::String(s));
        }
        Ok(())
    }

    fn uuid(&mut self, key: &str, required: bool) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, required)? {
            let id = v.as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| Self::wrong(key, "a UUID"))?;
            self.out.insert(key.into(), Value::String(id.to_string()));
        }
        Ok(())
    }

    fn uuid_or_new(&mut self, key: &str) -> Result<(), FieldError> {
        self.uuid(key, false)?;
        self.out.entry(key).or_insert_with(|| Value::String(Uuid::new_v4().to_string()));
        Ok(())
    }

    fn number(&mut self, key: &str, required: bool) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, required)? {
            let n = v.as_f64().ok_or_else(|| Self::wrong(key, "a number"))?;
            finite_in(&format!("data.{key}"), n, -1e15, 1e15)?;
            self.out.insert(key.into(), v);
        }
        Ok(())
    }

    fn percent(&mut self, key: &str) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, false)? {
            let n = v.as_f64().ok_or_else(|| Self::wrong(key, "a number"))?;
            finite_in(&format!("data.{key}"), n, 0.0, 100.0)?;
            self.out.insert(key.into(), v);
        }
        Ok(())
    }

    fn severity(&mut self, key: &str, required: bool) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, required)? {
            let s = v.as_str().ok_or_else(|| Self::wrong(key, "a string"))?;
            s.parse::<Severity>().map_err(|m| FieldError::new("invalid_value", format!("data.{key}"), m))?;
            self.out.insert(key.into(), v);
        }
        Ok(())
    }

    fn object(&mut self, key: &str) -> Result<(), FieldError> {
        if let Some(v) = self.take(key, false)? {
            if !v.is_object() {
                return Err(Self::wrong(key, "an object"));
            }
            self.out.insert(key.into(), v);
        }
        Ok(())
    }

    fn timestamp_or_now(&mut self, key: &str, now: DateTime<Utc>) -> Result<(), FieldError> {
        let t = match self.take(key, false)? {
            Some(v) => {
                v.as_str().and_then(crate::timestamp::parse).ok_or_else(|| Self::wrong(key, "an RFC 3339 timestamp"))?
            }
            None => now,
        };
        self.out.insert(key.into(), Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_ordered_and_never_go_back() {
        let a = EventId { ms: 10, seq: 0 };
        assert_eq!(a.next(5), EventId { ms: 10, seq: 1 }, "clock went back");
        assert_eq!(a.next(11), EventId { ms: 11, seq: 0 });
        assert!(EventId { ms: 10, seq: 9 } < EventId { ms: 11, seq: 0 });
        assert_eq!("10-3".parse::<EventId>(), Ok(EventId { ms: 10, seq: 3 }));
        assert!("x-3".parse::<EventId>().is_err());
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

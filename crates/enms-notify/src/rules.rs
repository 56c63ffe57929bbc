//! Which rules an event matches, the subject an alert follows, and when a
//! notification may go out under quiet hours.

use chrono::{DateTime, Duration as Span, FixedOffset, NaiveTime, TimeZone, Utc};
use enms_core::event::{EventType, Severity};
use serde_json::Value;
use uuid::Uuid;

use crate::config::{QuietHours, Rule};

/// What rules look at in an event.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub kind: EventType,
    pub data: &'a Value,
    pub machine_id: Option<Uuid>,
    pub machine_name: Option<String>,
    pub location: Option<String>,
}

impl Facts<'_> {
    pub fn severity(&self) -> Severity {
        self.data.get("severity").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(Severity::Info)
    }

    /// The episode an anomaly event belongs to.
    pub fn episode(&self) -> Option<Uuid> {
        self.data.pointer("/details/episode/id").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }

    /// Whether the episode had already ended when the event was made (a
    /// batch detection's episode).
    pub fn episode_closed(&self) -> bool {
        self.data.pointer("/details/episode/open").and_then(Value::as_bool) == Some(false)
    }

    /// When what the event tells of last happened: an episode's end, an
    /// anomaly's reading, or else `fallback` (the event's time).
    pub fn happened(&self, fallback: DateTime<Utc>) -> DateTime<Utc> {
        let at =
            |p: &str| self.data.pointer(p).and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        at("/details/episode/end").or_else(|| at("/timestamp")).map_or(fallback, |t| t.with_timezone(&Utc))
    }

    /// The incident an `incident_*` event tells of.
    pub fn incident(&self) -> Option<Uuid> {
        if !matches!(self.kind, EventType::IncidentOpened | EventType::IncidentUpdated | EventType::IncidentResolved) {
            return None;
        }
        self.data.get("incident_id").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }

    /// What an alert of this event follows until it ends: an anomaly's
    /// episode or an incident; `None` for an event that is its own end.
    pub fn subject(&self) -> Option<String> {
        self.episode().map(|e| format!("episode:{e}")).or_else(|| self.incident().map(|i| format!("incident:{i}")))
    }

    pub fn anomaly_id(&self) -> Option<Uuid> {
        self.data.get("anomaly_id").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }

    /// A one-line title, e.g. `Compressor-1: spike (critical)`.
    pub fn title(&self) -> String {
        let who = self.machine_name.clone().or_else(|| self.machine_id.map(|u| u.to_string()));
        let what = match self.kind {
            EventType::AnomalyDetected => {
                let kind = self.data.get("anomaly_type").and_then(Value::as_str).unwrap_or("anomaly");
                format!("{} anomaly", kind.replace('_', " "))
            }
            EventType::SystemAlert => {
                self.data.get("message").and_then(Value::as_str).unwrap_or("system alert").to_owned()
            }
            EventType::IncidentOpened | EventType::IncidentUpdated | EventType::IncidentResolved => {
                let kind = self.data.get("anomaly_type").and_then(Value::as_str).unwrap_or("anomaly");
                format!("{} incident", kind.replace('_', " "))
            }
            other => other.as_str().replace('_', " "),
        };
        let severity = self.severity();
        let severity =
            serde_json::to_value(severity).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        match who {
            Some(who) => format!("{who}: {what} ({severity})"),
            None => format!("{what} ({severity})"),
        }
    }
}

impl Rule {
    /// Whether the rule takes this event, `now` being the time it is read.
    pub fn matches(&self, facts: &Facts, event_time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if !self.events.iter().any(|e| e == facts.kind.as_str() || e.parse::<EventType>() == Ok(facts.kind)) {
            return false;
        }
        if self.min_severity.is_some_and(|min| facts.severity() < min) {
            return false;
        }
        if !self.machines.is_empty() {
            let named = |m: &String| {
                facts.machine_id.is_some_and(|id| m.parse::<Uuid>() == Ok(id))
                    || facts.machine_name.as_ref().is_some_and(|n| n.eq_ignore_ascii_case(m.trim()))
            };
            if !self.machines.iter().any(named) {
                return false;
            }
        }
        if !self.locations.is_empty() {
            let at = |l: &String| facts.location.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(l.trim()));
            if !self.locations.iter().any(at) {
                return false;
            }
        }
        let age = now - facts.happened(event_time);
        age.to_std().map_or(true, |age| age <= self.max_age)
    }

    /// The first time at or after `at` outside the rule's quiet hours.
    pub fn send_time(&self, at: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
        match self.quiet_hours.as_deref().map(QuietHours::parse) {
            Some(Ok(q)) => q.next_open(at, offset),
            _ => at,
        }
    }
}

impl QuietHours {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end { t >= self.start && t < self.end } else { t >= self.start || t < self.end }
    }

    /// `at` itself when outside quiet hours, else the end of them.
    pub fn next_open(&self, at: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
        let local = at.with_timezone(&offset);
        if !self.contains(local.time()) {
            return at;
        }
        let mut day = local.date_naive();
        if local.time() >= self.end {
            day += Span::days(1);
        }
        offset.from_local_datetime(&day.and_time(self.end)).single().map_or(at, |t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn rule(extra: &str) -> Rule {
        toml::from_str(&format!("name = \"r\"\nchannels = [\"ops\"]\n{extra}")).expect("rule")
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().expect("time")
    }

    #[test]
    fn rules_filter_by_type_severity_machine_location_and_age() {
        let data = json!({"severity": "warning", "anomaly_type": "spike", "timestamp": at(10, 0).to_rfc3339()});
        let facts = Facts {
            kind: EventType::AnomalyDetected,
            data: &data,
            machine_id: Some(Uuid::nil()),
            machine_name: Some("Compressor-1".into()),
            location: Some("Hall A".into()),
        };
        let now = at(10, 1);
        assert!(rule("").matches(&facts, now, now));
        assert!(!rule("min_severity = \"critical\"").matches(&facts, now, now));
        assert!(rule("machines = [\"compressor-1\"]").matches(&facts, now, now));
        assert!(rule(&format!("machines = [\"{}\"]", Uuid::nil())).matches(&facts, now, now));
        assert!(!rule("machines = [\"Furnace\"]").matches(&facts, now, now));
        assert!(rule("locations = [\"hall a\"]").matches(&facts, now, now));
        assert!(!rule("locations = [\"Hall B\"]").matches(&facts, now, now));
        assert!(!rule("events = [\"system_alert\"]").matches(&facts, now, now));
        assert!(!rule("max_age = \"30s\"").matches(&facts, now, now), "the reading is a minute old");
        assert_eq!(facts.title(), "Compressor-1: spike anomaly (warning)");
    }

    #[test]
    fn quiet_hours_defer_to_their_end_on_the_rules_clock() {
        let r = rule("quiet_hours = \"22:00-06:00\"");
        let utc = FixedOffset::east_opt(0).expect("utc");
        assert_eq!(r.send_time(at(12, 0), utc), at(12, 0));
        assert_eq!(r.send_time(at(23, 0), utc), at(6, 0) + Span::days(1));
        assert_eq!(r.send_time(at(3, 0), utc), at(6, 0));
        // 21:30 UTC is 22:30 at +01:00: quiet until 06:00 local, 05:00 UTC.
        let cet = FixedOffset::east_opt(3600).expect("cet");
        assert_eq!(r.send_time(at(21, 30), cet), at(5, 0) + Span::days(1));
        let day = rule("quiet_hours = \"12:00-13:00\"");
        assert_eq!(day.send_time(at(12, 30), utc), at(13, 0));
        assert_eq!(day.send_time(at(13, 0), utc), at(13, 0));
    }
}

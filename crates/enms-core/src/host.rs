//! Hosts as machines: the signals a host sample carries, the ranges that make
//! a sample possible, and the flat JSON the seed's monitor speaks.
//!
//! A host (a machine of type [`HOST_TYPE`]) sends ordinary readings: power
//! and energy like any machine, and its utilisation as named `extra`
//! values — `cpu_percent`, `memory_percent`, … — so one ingest path, one
//! store and one event stream serve hosts and compressors alike. This
//! module is the one place those names and their ranges are written down;
//! the sampler (`enms-host`), reading validation and the seed-compatible
//! routes all read them from here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::validation::FieldError;

/// The machine type of a host.
pub const HOST_TYPE: &str = "host";

/// Prefix of the per-mount disk usage signals (`disk_percent.var.lib`).
pub const DISK_MOUNT_PREFIX: &str = "disk_percent.";

/// Set to 1 on readings whose power is an estimate from utilisation rather
/// than a measurement from the host's energy counters.
pub const POWER_ESTIMATED: &str = "power_estimated";

/// A host signal with the range a real host can produce.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSignal {
    pub name: &'static str,
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
}

const PERCENT: (f64, f64) = (0.0, 100.0);
/// 1 TB/s: beyond any disk or network interface of a single host.
const RATE: (f64, f64) = (0.0, 1e12);
/// Load averages count runnable tasks; a million is no real host.
const LOAD: (f64, f64) = (0.0, 1e6);
const PROCESSES: (f64, f64) = (0.0, 1e7);

const fn signal(name: &'static str, unit: &'static str, range: (f64, f64)) -> HostSignal {
    HostSignal { name, unit, min: range.0, max: range.1 }
}

/// Every signal of a host sample, in the order the flat JSON lists them.
pub const SIGNALS: &[HostSignal] = &[
    signal("cpu_percent", "%", PERCENT),
    signal("memory_percent", "%", PERCENT),
    signal("swap_percent", "%", PERCENT),
    signal("disk_percent", "%", PERCENT),
    signal("disk_read_bytes_per_s", "B/s", RATE),
    signal("disk_write_bytes_per_s", "B/s", RATE),
    signal("network_recv_bytes_per_s", "B/s", RATE),
    signal("network_sent_bytes_per_s", "B/s", RATE),
    signal("load_1", "", LOAD),
    signal("load_5", "", LOAD),
    signal("load_15", "", LOAD),
    signal("process_count", "", PROCESSES),
    signal(POWER_ESTIMATED, "", (0.0, 1.0)),
];

/// The range a named value must lie in, when the name is a host signal.
/// Any machine may send these names, and they mean the same everywhere, so
/// the ranges hold for every reading, not only a host's.
pub fn range_of(name: &str) -> Option<(f64, f64)> {
    if name.starts_with(DISK_MOUNT_PREFIX) {
        return Some(PERCENT);
    }
    SIGNALS.iter().find(|s| s.name == name).map(|s| (s.min, s.max))
}

/// Checks a named value against its host signal's range (other names pass).
pub fn check_signal(name: &str, value: f64) -> Result<(), FieldError> {
    let Some((min, max)) = range_of(name) else { return Ok(()) };
    if value < min || value > max {
        return Err(FieldError::new(
            "impossible_value",
            format!("extra.{name}"),
            format!("extra.{name} must be between {min} and {max} on any host, got {value}"),
        ));
    }
    if name == "process_count" && value.fract() != 0.0 {
        return Err(FieldError::new(
            "impossible_value",
            "extra.process_count",
            format!("extra.process_count counts processes, got {value}"),
        ));
    }
    Ok(())
}

/// The `extra` name of a mount's disk usage: the mount path with `/` as `.`
/// and any other character outside the allowed set as `_`; `/` is `root`.
pub fn mount_signal(mount: &str) -> String {
    let trimmed = mount.trim_matches('/');
    let body: String = if trimmed.is_empty() {
        "root".to_owned()
    } else {
        trimmed
            .chars()
            .map(|c| match c {
                '/' => '.',
                c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') => c,
                _ => '_',
            })
            .collect()
    };
    // Names are at most 64 characters; a mount path may be longer.
    let mut name = format!("{DISK_MOUNT_PREFIX}{body}");
    name.truncate(64);
    name
}

/// One host sample in the seed monitor's flat shape (`GET
/// /api/metrics/current`, `/api/ws/ws`): the timestamp, the host, its power
/// and every signal it reported, by name, at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlatSample {
    /// When the sample was taken (RFC 3339).
    pub timestamp: DateTime<Utc>,
    pub machine_id: Uuid,
    /// The host's machine name.
    pub host: String,
    pub power_kw: f64,
    /// True when power is estimated from utilisation (no energy counters).
    pub power_estimated: bool,
    /// `cpu_percent`, `memory_percent`, `swap_percent`, `disk_percent`,
    /// `disk_read_bytes_per_s`, `disk_write_bytes_per_s`,
    /// `network_recv_bytes_per_s`, `network_sent_bytes_per_s`, `load_1`,
    /// `load_5`, `load_15`, `process_count`, and `disk_percent.<mount>` per
    /// mount — those the host reported.
    #[serde(flatten)]
    #[schema(value_type = std::collections::BTreeMap<String, f64>)]
    pub signals: BTreeMap<String, f64>,
}

impl FlatSample {
    /// Builds the flat sample from a reading's power and named values.
    pub fn new(
        machine_id: Uuid,
        host: &str,
        timestamp: DateTime<Utc>,
        power_kw: f64,
        extra: &BTreeMap<String, f64>,
    ) -> Self {
        let mut signals = extra.clone();
        let power_estimated = signals.remove(POWER_ESTIMATED).is_some_and(|v| v >= 0.5);
        Self { timestamp, machine_id, host: host.to_owned(), power_kw, power_estimated, signals }
    }

    /// True when a reading's named values are a host sample's.
    pub fn is_host_sample(extra: &BTreeMap<String, f64>) -> bool {
        extra.contains_key("cpu_percent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_become_valid_signal_names() {
        assert_eq!(mount_signal("/"), "disk_percent.root");
        assert_eq!(mount_signal("/var/lib/docker"), "disk_percent.var.lib.docker");
        assert_eq!(mount_signal("/media/My Disk"), "disk_percent.media.My_Disk");
        assert!(mount_signal(&format!("/{}", "a".repeat(200))).len() <= 64);
    }

    #[test]
    fn impossible_host_values_are_named() {
        assert!(check_signal("cpu_percent", 100.0).is_ok());
        let e = check_signal("cpu_percent", 140.0).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("impossible_value", "extra.cpu_percent"));
        assert!(check_signal("disk_percent.var", -1.0).is_err());
        assert!(check_signal("network_sent_bytes_per_s", -5.0).is_err());
        assert!(check_signal("process_count", 3.5).is_err());
        assert!(check_signal("pressure_bar", -40.0).is_ok(), "other names keep their own meaning");
    }

    #[test]
    fn the_flat_sample_lifts_signals_to_the_top_level() {
        let mut extra = BTreeMap::new();
        extra.insert("cpu_percent".to_owned(), 12.5);
        extra.insert(POWER_ESTIMATED.to_owned(), 1.0);
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let s = FlatSample::new(Uuid::nil(), "web-1", t, 0.08, &extra);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu_percent"], 12.5);
        assert_eq!(v["power_estimated"], true);
        assert_eq!(v["host"], "web-1");
        assert!(v.get(POWER_ESTIMATED).is_some_and(|p| p.is_boolean()));
    }
}

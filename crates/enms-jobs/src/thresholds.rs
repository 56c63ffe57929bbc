//! Time to threshold: when a slowly rising signal reaches its limit at the
//! trend of the last [`THRESHOLD_DAYS`] days (docs/forecasts.md) —
//!
//! - any machine with a rated power: its daily peak of hourly mean power
//!   against that rating (the same watch the forecast carries);
//! - a host (machine type `host`): each disk's usage (`disk_percent` and
//!   `disk_percent.<mount>`) against [`DISK_LIMIT_PERCENT`].
//!
//! Host signals are kept in the raw readings only (hour cells hold power
//! and energy), so the disk watch probes the raw readings: the first
//! [`PROBE_MINUTES`] minutes of every [`PROBE_EVERY_H`]-hour slot, one
//! mean per slot and signal, then a least-squares trend
//! (`enms_analytics::forecast::trend_to_limit`). That is 56 short indexed
//! reads for two weeks, whatever the sampling rate, instead of 240,000
//! rows of 5-second samples; disk usage moves over days, not minutes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_analytics::forecast::{self, Threshold};
use enms_core::host::{DISK_MOUNT_PREFIX, HOST_TYPE};
use enms_core::{MachineRecord, Resolution};
use enms_store::{ReadingQuery, Store};
use serde::Serialize;
use uuid::Uuid;

use crate::blocking;
use crate::error::JobError;
use crate::forecast::{THRESHOLD_DAYS, hourly_series};

/// A disk is "full" for planning at 90 %: past it, file systems slow down
/// and a burst of logs or a backup fills the rest.
pub const DISK_LIMIT_PERCENT: f64 = 90.0;
pub const PROBE_EVERY_H: i64 = 6;
pub const PROBE_MINUTES: i64 = 10;
/// A disk trend needs its probes to span this many days.
pub const MIN_DISK_SPAN_DAYS: f64 = 3.0;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MachineThresholds {
    pub machine_id: Uuid,
    pub machine_name: String,
    /// Every watch with enough history, rated power first, then disks by
    /// name; empty when none has.
    pub thresholds: Vec<Threshold>,
}

/// The machine's watches at `now`.
pub async fn machine_thresholds(
    store: &dyn Store,
    machine: &MachineRecord,
    now: DateTime<Utc>,
) -> Result<MachineThresholds, JobError> {
    let mut thresholds = Vec::new();
    let Some(last) = machine.last_reading_at else {
        return Ok(MachineThresholds { machine_id: machine.id, machine_name: machine.name.clone(), thresholds });
    };
    let end = last.min(now).duration_trunc(Duration::hours(1)).map_err(JobError::internal)?;
    if let Some(rated) = machine.rated_power_kw {
        let series = hourly_series(store, machine.id, end).await?;
        let watch = blocking(move || forecast::time_to_threshold(&series, "rated_power_kw", rated, THRESHOLD_DAYS));
        thresholds.extend(watch.await?);
    }
    if machine.machine_type == HOST_TYPE {
        thresholds.extend(disk_thresholds(store, machine.id, end).await?);
    }
    Ok(MachineThresholds { machine_id: machine.id, machine_name: machine.name.clone(), thresholds })
}

/// One trend per disk signal from the probes before `end`.
async fn disk_thresholds(store: &dyn Store, machine: Uuid, end: DateTime<Utc>) -> Result<Vec<Threshold>, JobError> {
    let start = end - Duration::days(THRESHOLD_DAYS as i64);
    let mut points: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut slot = start;
    while slot < end {
        let query = ReadingQuery {
            machine_id: machine,
            start: slot,
            end: slot + Duration::minutes(PROBE_MINUTES),
            resolution: Resolution::Raw,
            limit: 1_000,
        };
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for reading in store.query_readings(&query).await? {
            let Some(serde_json::Value::Object(extra)) = reading.extra else { continue };
            for (name, value) in extra {
                let disk = name == "disk_percent" || name.starts_with(DISK_MOUNT_PREFIX);
                if let (true, Some(v)) = (disk, value.as_f64()) {
                    let sum = sums.entry(name).or_default();
                    *sum = (sum.0 + v, sum.1 + 1.0);
                }
            }
        }
        let day = (slot - start).num_minutes() as f64 / 1_440.0;
        for (name, (sum, n)) in sums {
            points.entry(name).or_default().push((day, sum / n));
        }
        slot += Duration::hours(PROBE_EVERY_H);
    }
    let now = THRESHOLD_DAYS as f64;
    let mut out = Vec::new();
    for (name, points) in points {
        let span = points.last().map_or(0.0, |l| l.0) - points.first().map_or(0.0, |f| f.0);
        if span < MIN_DISK_SPAN_DAYS {
            continue;
        }
        out.extend(forecast::trend_to_limit(&points, now, end, &name, DISK_LIMIT_PERCENT));
    }
    Ok(out)
}

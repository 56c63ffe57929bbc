//! Sampling the host this process runs on: utilisation through `sysinfo`,
//! power from RAPL counters or the estimate, made into a [`Sample`] that
//! becomes an ordinary reading.
//!
//! Rates (CPU, disk and network throughput) are differences between two
//! refreshes, so a sampler is primed when built and each `sample` covers
//! the time since the previous one. sysinfo's CPU figure is meaningless
//! when refreshed less than `MINIMUM_CPU_UPDATE_INTERVAL` (200 ms on Linux)
//! apart, so [`MIN_INTERVAL`] is the shortest sampling interval accepted.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use enms_core::Reading;
use enms_core::host::{POWER_ESTIMATED, mount_signal};
use sysinfo::{Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System};
use uuid::Uuid;

use crate::HostError;
use crate::power::estimate_kw;
use crate::rapl::Rapl;

/// Shortest interval between samples (sysinfo's CPU rule, with margin).
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// Mounts reported one by one (`disk_percent.<mount>`); a reading holds at
/// most 32 named values and the host's own signals take 13.
pub const MAX_MOUNTS: usize = 8;

/// Where Linux exposes RAPL.
pub const POWERCAP: &str = "/sys/class/powercap";

/// One sample: when, the power over the interval it closes, and the
/// host's signals by their `enms_core::host` names.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub power_kw: f64,
    pub energy_kwh: f64,
    /// Power estimated from utilisation (no readable energy counters).
    pub estimated: bool,
    pub signals: BTreeMap<String, f64>,
}

impl Sample {
    /// The sample as a reading of the host's machine; estimated power is
    /// marked with `power_estimated = 1`.
    pub fn reading(&self, machine_id: Uuid) -> Reading {
        let mut extra = self.signals.clone();
        if self.estimated {
            extra.insert(POWER_ESTIMATED.to_owned(), 1.0);
        }
        Reading {
            machine_id,
            timestamp: self.timestamp,
            power_kw: self.power_kw,
            energy_kwh: self.energy_kwh,
            production_units: None,
            outdoor_temp_c: None,
            extra,
        }
    }
}

/// Samples one host. Not `Sync`: one task owns it.
pub struct Sampler {
    system: System,
    disks: Disks,
    networks: Networks,
    rapl: Option<Rapl>,
    rated_kw: f64,
    last: Instant,
}

impl Sampler {
    /// Opens the host's counters and primes them; the first [`sample`]
    /// should come at least [`MIN_INTERVAL`] later. `rated_kw` drives the
    /// estimate when there are no energy counters.
    ///
    /// [`sample`]: Sampler::sample
    pub fn new(rated_kw: f64) -> Result<Self, HostError> {
        Self::with_powercap(rated_kw, Path::new(POWERCAP))
    }

    /// As [`Sampler::new`], reading RAPL zones under `powercap`.
    pub fn with_powercap(rated_kw: f64, powercap: &Path) -> Result<Self, HostError> {
        let unsupported = |e: sysinfo::Error| HostError::Unsupported(e.to_string());
        let mut system = System::new().map_err(unsupported)?;
        system.refresh_cpu_usage();
        system.refresh_memory();
        let disks = Disks::new_with_refreshed_list().map_err(unsupported)?;
        let networks = Networks::new_with_refreshed_list().map_err(unsupported)?;
        let mut rapl = Rapl::open(powercap);
        if let Some(r) = rapl.as_mut() {
            let _ = r.power_kw();
        }
        Ok(Self { system, disks, networks, rapl, rated_kw, last: Instant::now() })
    }

    /// True when power comes from energy counters.
    pub fn measures_power(&self) -> bool {
        self.rapl.is_some()
    }

    /// Takes a sample covering the time since the previous one.
    pub fn sample(&mut self) -> Sample {
        let now = Instant::now();
        let seconds = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let timestamp = Utc::now();

        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
        self.disks.refresh(true);
        self.networks.refresh(true);

        let mut s = BTreeMap::new();
        let cpu = percent(f64::from(self.system.global_cpu_usage()));
        s.insert("cpu_percent".to_owned(), cpu);
        s.insert("memory_percent".to_owned(), share(self.system.used_memory(), self.system.total_memory()));
        s.insert("swap_percent".to_owned(), share(self.system.used_swap(), self.system.total_swap()));
        self.disk_signals(&mut s, seconds);
        let (rx, tx) = self
            .networks
            .iter()
            .filter(|(name, _)| name.to_str() != Some("lo"))
            .fold((0u64, 0u64), |(rx, tx), (_, n)| (rx + n.received(), tx + n.transmitted()));
        s.insert("network_recv_bytes_per_s".to_owned(), rate(rx, seconds));
        s.insert("network_sent_bytes_per_s".to_owned(), rate(tx, seconds));
        if let Ok(load) = System::load_average() {
            s.insert("load_1".to_owned(), round2(load.one.max(0.0)));
            s.insert("load_5".to_owned(), round2(load.five.max(0.0)));
            s.insert("load_15".to_owned(), round2(load.fifteen.max(0.0)));
        }
        s.insert("process_count".to_owned(), self.system.processes().len() as f64);

        let measured = self.rapl.as_mut().and_then(Rapl::power_kw);
        let estimated = measured.is_none();
        let power_kw = measured.unwrap_or_else(|| estimate_kw(cpu, self.rated_kw));
        let power_kw = (power_kw * 1e6).round() / 1e6;
        let energy_kwh = power_kw * seconds / 3600.0;
        Sample { timestamp, power_kw, energy_kwh, estimated, signals: s }
    }

    /// `disk_percent` is the root mount's usage (the fullest mount where
    /// there is no `/`), as the seed's `psutil.disk_usage('/')`; the first
    /// [`MAX_MOUNTS`] writable mounts by path each get their own signal.
    /// Read-only mounts (squashfs images) are always full and say nothing.
    fn disk_signals(&self, s: &mut BTreeMap<String, f64>, seconds: f64) {
        let mut mounts: Vec<(String, f64)> = self
            .disks
            .iter()
            .filter(|d| !d.is_read_only() && d.total_space() > 0)
            .map(|d| {
                let used = d.total_space().saturating_sub(d.available_space());
                (d.mount_point().to_string_lossy().into_owned(), share(used, d.total_space()))
            })
            .collect();
        mounts.sort_by(|a, b| a.0.cmp(&b.0));
        mounts.dedup_by(|a, b| a.0 == b.0);
        let root = mounts.iter().find(|(m, _)| m == "/").map(|(_, p)| *p);
        let fullest =
            mounts.iter().map(|(_, p)| *p).fold(None, |acc: Option<f64>, p| Some(acc.map_or(p, |a| a.max(p))));
        if let Some(p) = root.or(fullest) {
            s.insert("disk_percent".to_owned(), p);
        }
        for (mount, p) in mounts.iter().take(MAX_MOUNTS) {
            s.insert(mount_signal(mount), *p);
        }
        // A device mounted twice reports its traffic under each mount.
        let mut seen = HashSet::new();
        let (read, written) = self
            .disks
            .iter()
            .filter(|d| seen.insert(d.name().to_os_string()))
            .map(|d| d.usage())
            .fold((0u64, 0u64), |(r, w), u| (r + u.read_bytes, w + u.written_bytes));
        s.insert("disk_read_bytes_per_s".to_owned(), rate(read, seconds));
        s.insert("disk_write_bytes_per_s".to_owned(), rate(written, seconds));
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn percent(v: f64) -> f64 {
    if v.is_finite() { round2(v.clamp(0.0, 100.0)) } else { 0.0 }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { percent(part as f64 / whole as f64 * 100.0) }
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    (bytes as f64 / seconds).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_of_this_host_is_a_valid_host_reading() {
        let empty = tempfile::tempdir().unwrap();
        let mut sampler = Sampler::with_powercap(0.3, empty.path()).unwrap();
        assert!(!sampler.measures_power());
        std::thread::sleep(MIN_INTERVAL);
        let sample = sampler.sample();
        assert!(sample.estimated);
        for name in ["cpu_percent", "memory_percent", "swap_percent", "process_count", "load_1"] {
            assert!(sample.signals.contains_key(name), "{name} missing from {:?}", sample.signals);
        }
        assert!(sample.signals["process_count"] >= 1.0, "at least this test runs");
        assert!(sample.signals["memory_percent"] > 0.0);
        assert!((0.15..=0.3).contains(&sample.power_kw), "estimate between idle and rated: {}", sample.power_kw);
        // The reading passes the same validation as any client's.
        let reading = sample.reading(Uuid::new_v4());
        assert_eq!(reading.extra.get(POWER_ESTIMATED), Some(&1.0));
        let input: enms_core::ReadingInput = serde_json::from_value(serde_json::to_value(&reading).unwrap()).unwrap();
        input.validate(Utc::now()).expect("a real sample is a valid reading");
    }
}

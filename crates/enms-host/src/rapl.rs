//! The host's own energy counters: Linux RAPL (Running Average Power
//! Limit) under `/sys/class/powercap`.
//!
//! Each top-level zone (`intel-rapl:0`, `intel-rapl:1`, one per CPU
//! package; AMD exposes the same tree) has `energy_uj`, a counter of
//! microjoules that wraps at `max_energy_range_uj`. Sub-zones (`core`,
//! `uncore`, `dram` as `intel-rapl:0:0`…) are parts of their package on
//! most parts, so only top-level zones are summed — adding the sub-zones
//! would count the cores twice. Power over an interval is the counter's
//! difference divided by the time between reads.
//!
//! Reading `energy_uj` needs root on kernels since 5.10 (CVE-2020-8694);
//! when no zone can be read the sampler falls back to the estimate in
//! [`crate::power`] and marks the readings as estimated.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The counters of the packages of one host.
#[derive(Debug)]
pub struct Rapl {
    zones: Vec<Zone>,
    last: Option<Instant>,
}

#[derive(Debug)]
struct Zone {
    energy: PathBuf,
    /// Where the counter wraps, in µJ.
    range: u64,
    last: Option<u64>,
}

impl Rapl {
    /// The readable top-level zones under `root` (normally
    /// `/sys/class/powercap`), or `None` when there are none.
    pub fn open(root: &Path) -> Option<Self> {
        let mut zones = Vec::new();
        for entry in std::fs::read_dir(root).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `intel-rapl:0` is a package; `intel-rapl:0:1` a sub-zone of it;
            // `intel-rapl` (no colon) is the control type, not a zone.
            if name.matches(':').count() != 1 {
                continue;
            }
            let dir = entry.path();
            let energy = dir.join("energy_uj");
            let readable = read_u64(&energy).is_some();
            let range = read_u64(&dir.join("max_energy_range_uj")).filter(|r| *r > 0);
            if let (true, Some(range)) = (readable, range) {
                zones.push(Zone { energy, range, last: None });
            }
        }
        zones.sort_by(|a, b| a.energy.cmp(&b.energy));
        (!zones.is_empty()).then_some(Self { zones, last: None })
    }

    /// Mean power in kW since the previous call (`None` on the first call,
    /// or when a counter cannot be read any more).
    pub fn power_kw(&mut self) -> Option<f64> {
        self.power_kw_at(Instant::now())
    }

    fn power_kw_at(&mut self, now: Instant) -> Option<f64> {
        let mut joules = 0.0;
        let mut complete = true;
        for zone in &mut self.zones {
            let Some(value) = read_u64(&zone.energy) else {
                complete = false;
                zone.last = None;
                continue;
            };
            if let Some(last) = zone.last {
                joules += counter_delta(last, value, zone.range) as f64 / 1e6;
            } else {
                complete = false;
            }
            zone.last = Some(value);
        }
        let elapsed = self.last.map(|t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        match elapsed {
            Some(s) if complete && s > 0.0 => Some(joules / s / 1000.0),
            _ => None,
        }
    }
}

/// The increase of a counter that wraps at `range` (it counts 0..=range).
pub fn counter_delta(last: u64, now: u64, range: u64) -> u64 {
    if now >= last { now - last } else { range.saturating_sub(last) + now + 1 }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn zone(root: &Path, name: &str, energy: u64, range: u64) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn packages_are_summed_subzones_skipped_and_wraps_handled() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("intel-rapl")).unwrap();
        zone(r, "intel-rapl:0", 1_000_000, 262_143_328_850);
        zone(r, "intel-rapl:1", 262_143_000_000, 262_143_328_850);
        zone(r, "intel-rapl:0:0", 5, 262_143_328_850);
        let mut rapl = Rapl::open(r).expect("two packages");
        assert_eq!(rapl.zones.len(), 2, "the control type and the sub-zone are not packages");
        let t0 = Instant::now();
        assert_eq!(rapl.power_kw_at(t0), None, "the first read has nothing to compare with");
        // 2 s later: package 0 used 100 J; package 1 wrapped after 200 J.
        zone(r, "intel-rapl:0", 101_000_000, 262_143_328_850);
        let wrapped = 200_000_000 - (262_143_328_850 - 262_143_000_000) - 1;
        zone(r, "intel-rapl:1", wrapped, 262_143_328_850);
        zone(r, "intel-rapl:0:0", 999_999_999, 262_143_328_850);
        let kw = rapl.power_kw_at(t0 + Duration::from_secs(2)).unwrap();
        assert!((kw - 0.150).abs() < 1e-9, "300 J over 2 s is 150 W, got {kw} kW");
    }

    #[test]
    fn no_readable_zone_means_no_counters() {
        let root = tempfile::tempdir().unwrap();
        assert!(Rapl::open(root.path()).is_none());
        assert!(Rapl::open(&root.path().join("absent")).is_none());
    }
}

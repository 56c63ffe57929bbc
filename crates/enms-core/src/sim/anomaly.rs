//! Labelled anomalies injected into the simulated plant, so detection can be
//! measured: what kind, on which machine, from when to when.

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc, Weekday};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::noise;
use super::plant::DEMO_MACHINES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Power far above normal for a short time.
    Spike,
    /// The meter repeats one value.
    StuckSensor,
    /// Consumption while the plant is closed.
    OffHours,
    /// Consumption creeping up day after day (fouling, wear).
    Drift,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::StuckSensor => "stuck_sensor",
            Self::OffHours => "off_hours",
            Self::Drift => "drift",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Spike, Self::StuckSensor, Self::OffHours, Self::Drift].into_iter().find(|k| k.as_str() == s)
    }
}

/// One injected anomaly; readings with `start < timestamp <= end` are affected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectedAnomaly {
    pub id: Uuid,
    pub machine_id: Uuid,
    pub kind: AnomalyKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Strength: the power multiple for spikes and drift, the kW for off-hours.
    pub magnitude: f64,
    pub description: String,
}

impl InjectedAnomaly {
    pub fn covers(&self, ts: DateTime<Utc>) -> bool {
        ts > self.start && ts <= self.end
    }

    /// The power reported instead of `power` at `ts`.
    pub(super) fn apply(
        &self,
        power: f64,
        ts: DateTime<Utc>,
        production: &mut f64,
        normal_at_start: impl Fn() -> f64,
    ) -> f64 {
        match self.kind {
            AnomalyKind::Spike => power * self.magnitude,
            AnomalyKind::StuckSensor => normal_at_start(),
            AnomalyKind::OffHours => {
                *production = 0.0;
                power.max(self.magnitude)
            }
            AnomalyKind::Drift => {
                let span = (self.end - self.start).num_seconds().max(1) as f64;
                let progress = (ts - self.start).num_seconds() as f64 / span;
                power * (1.0 + (self.magnitude - 1.0) * progress)
            }
        }
    }
}

fn anomaly_id(seed: u64, n: u64) -> Uuid {
    Uuid::from_u64_pair(noise::hash(seed, 300, n), noise::hash(seed, 301, n))
}

/// The planned history anomalies, placed at seeded offsets within `days`.
pub fn plan_history(seed: u64, start: DateTime<Utc>, days: i64) -> Vec<InjectedAnomaly> {
    let day0 = start.duration_trunc(Duration::days(1)).unwrap_or(start);
    let at = |frac: f64, jitter: u64| {
        let base = (days as f64 * frac) as i64;
        let shift = (noise::uniform(seed, 400, jitter) * 3.0) as i64 - 1;
        day0 + Duration::days((base + shift).clamp(1, days.max(2) - 1))
    };
    let next = |from: DateTime<Utc>, wd: Weekday| {
        let ahead = (7 + wd.num_days_from_monday() as i64 - from.weekday().num_days_from_monday() as i64) % 7;
        from + Duration::days(ahead)
    };
    let [c1, c2, hvac, furnace, conveyor] = DEMO_MACHINES;
    let q = Duration::minutes(15);
    let mut plan = vec![
        (
            c1.id,
            AnomalyKind::Spike,
            at(0.2, 1) + Duration::hours(10),
            q * 2,
            2.2,
            "Compressor-1 power spike (valve fault)",
        ),
        (
            conveyor.id,
            AnomalyKind::Spike,
            at(0.13, 2) + Duration::hours(15),
            q,
            3.0,
            "Conveyor-1 jam: motor current spike",
        ),
        (
            c2.id,
            AnomalyKind::StuckSensor,
            at(0.33, 3) + Duration::hours(6),
            Duration::hours(12),
            1.0,
            "Compressor-2 meter stuck on one value",
        ),
        (
            furnace.id,
            AnomalyKind::OffHours,
            next(at(0.5, 4), Weekday::Sun) + Duration::hours(1),
            Duration::hours(4),
            250.0,
            "Furnace-1 fired on Sunday night with no production",
        ),
        (
            c1.id,
            AnomalyKind::OffHours,
            next(at(0.75, 5), Weekday::Sat) + Duration::hours(22),
            Duration::hours(6),
            45.0,
            "Compressor-1 left running on Saturday night",
        ),
        (
            hvac.id,
            AnomalyKind::Drift,
            at(0.62, 6),
            Duration::days(10),
            1.35,
            "HVAC-1 consumption drifting up (fouled coil), fixed after 10 days",
        ),
    ];
    plan.retain(|p| p.2 + p.3 <= day0 + Duration::days(days));
    plan.into_iter()
        .enumerate()
        .map(|(n, (machine_id, kind, start, len, magnitude, description))| InjectedAnomaly {
            id: anomaly_id(seed, n as u64),
            machine_id,
            kind,
            start,
            end: start + len,
            magnitude,
            description: description.to_owned(),
        })
        .collect()
}

/// When the live faults of a demo run come: the first within
/// [`FIRST_FAULT_WITHIN`] of the start (a visitor sees one while deciding
/// whether to keep looking), then gaps that vary around `mean_gap` (between
/// a quarter of it and three times it, exponentially distributed). Gaps,
/// machines and magnitudes follow from the seed and the fault's number, so
/// the same seed gives the same sequence on any start.
#[derive(Debug, Clone)]
pub struct LiveFaults {
    seed: u64,
    mean_gap: Duration,
    next_at: DateTime<Utc>,
    count: u64,
}

/// The first live fault comes this soon after the start.
pub const FIRST_FAULT_WITHIN: Duration = Duration::seconds(120);

impl LiveFaults {
    pub fn new(seed: u64, started: DateTime<Utc>, mean_gap: Duration) -> Self {
        let first = 30.0 + 80.0 * noise::uniform(seed, 510, 0);
        Self { seed, mean_gap, next_at: started + Duration::milliseconds((first * 1000.0) as i64), count: 0 }
    }

    /// When the next fault starts.
    pub fn next_at(&self) -> DateTime<Utc> {
        self.next_at
    }

    /// The fault that starts with the live interval ending at `ts`, if one
    /// is due.
    pub fn due(&mut self, ts: DateTime<Utc>, interval: Duration) -> Option<InjectedAnomaly> {
        if ts < self.next_at {
            return None;
        }
        let n = self.count;
        self.count += 1;
        let u = noise::uniform(self.seed, 511, n).min(0.999_999);
        let factor = (-(1.0 - u).ln()).clamp(0.25, 3.0);
        let gap_ms = (self.mean_gap.num_milliseconds() as f64 * factor) as i64;
        self.next_at = ts.max(self.next_at) + Duration::milliseconds(gap_ms.max(1000));
        Some(live_fault(self.seed, n, ts, interval))
    }
}

/// Live fault number `n`: a spike on one machine for one to three minutes.
fn live_fault(seed: u64, n: u64, ts: DateTime<Utc>, interval: Duration) -> InjectedAnomaly {
    let key = n;
    // The id also names the time, so a later run of the same seed (whose
    // fault number 0 comes again) records a new fault, not the old one.
    let id_key = noise::hash(seed, 506, n) ^ ts.timestamp_millis() as u64;
    let machine = DEMO_MACHINES[(noise::hash(seed, 501, key) % DEMO_MACHINES.len() as u64) as usize];
    let magnitude = 2.0 + noise::uniform(seed, 502, key);
    let length = Duration::seconds(60 + (noise::uniform(seed, 503, key) * 120.0) as i64);
    let start = ts - interval;
    InjectedAnomaly {
        id: Uuid::from_u64_pair(noise::hash(seed, 504, id_key), noise::hash(seed, 505, id_key)),
        machine_id: machine.id,
        kind: AnomalyKind::Spike,
        start,
        end: start + length,
        magnitude,
        description: format!("{} live spike at {magnitude:.1}x normal power", machine.name),
    }
}

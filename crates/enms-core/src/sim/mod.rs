//! The simulated factory behind `enms serve --demo`.
//!
//! Five machines whose power follows the plant's shifts, its production
//! volume and the outdoor temperature, with noise and with labelled anomalies
//! injected at known times so detection can be scored against them.
//!
//! Every value is a pure function of (seed, machine, timestamp): the same seed
//! gives the same readings no matter when, or in which order, they are made.

mod anomaly;
mod noise;
mod plant;

pub use anomaly::{AnomalyKind, FIRST_FAULT_WITHIN, InjectedAnomaly, LiveFaults};
pub use plant::{DEMO_MACHINES, DemoMachine, MachineKind};

use chrono::{DateTime, Duration, Utc};

use crate::reading::Reading;

/// The simulated plant and the anomalies injected into it.
#[derive(Debug, Clone)]
pub struct Factory {
    seed: u64,
    anomalies: Vec<InjectedAnomaly>,
}

impl Factory {
    pub fn new(seed: u64) -> Self {
        Self { seed, anomalies: Vec::new() }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Anomalies currently applied to generated readings.
    pub fn anomalies(&self) -> &[InjectedAnomaly] {
        &self.anomalies
    }

    /// Applies `anomaly` to readings generated from now on.
    pub fn inject(&mut self, anomaly: InjectedAnomaly) {
        if !self.anomalies.iter().any(|a| a.id == anomaly.id) {
            self.anomalies.push(anomaly);
        }
    }

    /// The anomalies to inject into a history starting at `start`: a spike, a
    /// stuck sensor, off-hours consumption and a slow drift, among others.
    pub fn plan_history(&self, start: DateTime<Utc>, days: i64) -> Vec<InjectedAnomaly> {
        anomaly::plan_history(self.seed, start, days)
    }

    /// The schedule of live faults for a run started at `started`: the
    /// first within two minutes, then about every `mean_gap`.
    pub fn live_faults(&self, started: DateTime<Utc>, mean_gap: Duration) -> LiveFaults {
        LiveFaults::new(self.seed, started, mean_gap)
    }

    /// The reading of `machine` for the interval of length `interval` ending at `ts`.
    pub fn reading(&self, machine: &DemoMachine, ts: DateTime<Utc>, interval: Duration) -> Reading {
        let hours = interval.num_milliseconds() as f64 / 3_600_000.0;
        let mid = ts - interval / 2;
        let conditions = plant::conditions(self.seed, mid, ts, interval);
        let mut power = machine.normal_power(&conditions) * (1.0 + machine.noise_pct() * self.noise(machine, ts));
        let mut production = conditions.production_per_hour * hours;
        for a in self.anomalies.iter().filter(|a| a.machine_id == machine.id && a.covers(ts)) {
            let normal_at_start = || {
                let c = plant::conditions(self.seed, a.start, a.start, interval);
                machine.normal_power(&c)
            };
            power = a.apply(power, ts, &mut production, normal_at_start);
        }
        let power = power.max(0.0);
        Reading {
            machine_id: machine.id,
            timestamp: ts,
            power_kw: round(power, 3),
            energy_kwh: round(power * hours, 4),
            production_units: Some(round(production, 2)),
            outdoor_temp_c: Some(round(conditions.outdoor_temp_c, 2)),
            extra: Default::default(),
        }
    }

    /// Readings of every demo machine for each `step` in `(from, to]`.
    pub fn history(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Duration,
    ) -> impl Iterator<Item = Reading> + '_ {
        let mut ts = from + step;
        std::iter::from_fn(move || {
            if ts > to {
                return None;
            }
            let batch: Vec<Reading> = DEMO_MACHINES.iter().map(|m| self.reading(m, ts, step)).collect();
            ts += step;
            Some(batch)
        })
        .flatten()
    }

    fn noise(&self, machine: &DemoMachine, ts: DateTime<Utc>) -> f64 {
        noise::normal(self.seed, machine.index as u64, ts.timestamp_millis() as u64)
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests;

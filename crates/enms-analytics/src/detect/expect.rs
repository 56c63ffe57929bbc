//! What a signal is expected to read, and how far it normally strays:
//! the median by hour of day and operating state (the expectation without a
//! baseline), and each judged signal's expectation and noise scale.

use chrono::Timelike;
use serde::{Deserialize, Serialize};

use super::signal::Signal;
use crate::scale::{NoiseScale, median};
use crate::series::Interval;

/// Median of a signal by (hour of day, operating): the expectation without
/// a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourProfile {
    /// 48 entries: hour × 2 + operating; `None` where training had too few
    /// (JSON has no NaN, and the model is stored as JSON).
    medians: Vec<Option<f64>>,
    /// Median by operating state over all hours, then overall: the
    /// fallbacks for thin buckets.
    by_state: [Option<f64>; 2],
    overall: f64,
}

/// Fewest training readings a profile bucket needs to be trusted.
const MIN_BUCKET: usize = 8;

impl HourProfile {
    pub(super) fn build(rows: &[Interval], values: impl Fn(usize) -> f64) -> Self {
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); 48];
        let mut states: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut all = Vec::with_capacity(rows.len());
        for (i, iv) in rows.iter().enumerate() {
            let v = values(i);
            buckets[profile_key(iv)].push(v);
            states[usize::from(iv.operating())].push(v);
            all.push(v);
        }
        let trusted = |b: &mut Vec<f64>| Some(median(b)).filter(|m| m.is_finite() && b.len() >= MIN_BUCKET);
        let medians = buckets.iter_mut().map(trusted).collect();
        let [idle, busy] = &mut states;
        Self { medians, by_state: [trusted(idle), trusted(busy)], overall: median(&mut all) }
    }

    pub(super) fn expected(&self, iv: &Interval) -> f64 {
        self.medians[profile_key(iv)].or(self.by_state[usize::from(iv.operating())]).unwrap_or(self.overall)
    }
}

fn profile_key(iv: &Interval) -> usize {
    iv.sample.timestamp.hour() as usize * 2 + usize::from(iv.operating())
}

/// One signal's expectation and noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalModel {
    pub signal: Signal,
    pub(super) profile: HourProfile,
    /// σ by expected level, while idle and while operating.
    pub(super) noise: [NoiseScale; 2],
    /// Smallest σ.
    pub sigma_floor: f64,
    /// σ is also at least half the mean absolute deviation of the state.
    pub(super) spread_floor: [f64; 2],
    /// σ is also at least this share of the expected value.
    pub(super) level_share: f64,
    /// Value used when a reading lacks the signal.
    pub(super) fill: f64,
}

impl SignalModel {
    /// The spread a reading at this level and state shows around its
    /// expectation, as measured on the training period — without the floors
    /// [`sigma`](Self::sigma) adds to keep detection from firing on
    /// near-noiseless signals. What a prediction interval is drawn with.
    pub(super) fn spread(&self, iv: &Interval, expected: f64) -> f64 {
        self.noise[usize::from(iv.operating())].at(expected)
    }

    pub(super) fn sigma(&self, iv: &Interval, expected: f64) -> f64 {
        self.noise[usize::from(iv.operating())]
            .at(expected)
            .max(self.level_share * expected.abs())
            .max(self.sigma_floor)
            .max(self.spread_floor[usize::from(iv.operating())])
    }
}

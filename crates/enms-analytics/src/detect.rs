//! Anomaly detection per reading: the features the isolation forest sees,
//! the anomaly model (forest plus what it needs to explain a finding), and
//! the documented rules that give each finding a severity, a type and an
//! expected value. Shared by batch detection and the streaming path, so a
//! reading is judged the same way by both.
//!
//! Rules (docs/analytics.md repeats them):
//! - *Expected value*: the active baseline's prediction for the reading's
//!   conditions when one is used, else the median power of the training data
//!   at the same hour of day and operating state.
//! - *Deviation* `z = (actual − expected) / σ`, σ the typical deviation of
//!   a training reading from its expected value at the same expected level
//!   ([`NoiseScale`]: 1.4826 × the median absolute deviation per level bin,
//!   and by operating state, so anomalies in the training data do not
//!   inflate it), floored at 1 % of the expected value and at 0.5 % of the
//!   machine's full load (the 99th percentile of training power): a
//!   hundred watts off an idle conveyor is not worth anyone's attention.
//! - *Flagged* when the forest isolates the reading (`score < offset`) and
//!   `|z| ≥ 3`; when `|z| ≥ 6` whatever the forest says (with eight
//!   features, a reading extreme in power alone is isolated only slowly, yet
//!   no operator would call six sigma normal); or when the meter is stuck
//!   (the same power in at least [`STUCK_RUN`] consecutive readings while
//!   the machine runs).
//! - *Severity*: critical when `|z| ≥ 6` or the score is 0.1 below the
//!   offset; otherwise warning. Unflagged readings are normal.
//! - *Type*, first match: `stuck` (above); `off_hours` (no production and
//!   above expected); `drift` (|z| < 6 while the mean z of the last
//!   [`DRIFT_WINDOW`] readings is beyond ±2 with the same sign); `spike`
//!   (above expected); `drop` (below).

use std::collections::VecDeque;

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use crate::baseline::BaselineModel;
use crate::iforest::{ForestError, ForestParams, IsolationForest};
use crate::scale::{NoiseScale, median};
use crate::series::Interval;

pub const STUCK_RUN: usize = 4;
pub const DRIFT_WINDOW: usize = 12;
pub const MIN_Z: f64 = 3.0;
pub const CRITICAL_Z: f64 = 6.0;
pub const CRITICAL_SCORE_MARGIN: f64 = 0.1;
/// σ is at least this share of the machine's full load.
const FULL_LOAD_SIGMA_SHARE: f64 = 0.005;
/// Fewest readings of one operating state for it to get its own σ.
const MIN_STATE_ROWS: usize = 60;
/// Fewest readings an anomaly model is trained on.
pub const MIN_TRAINING_ROWS: usize = 100;

pub const FEATURES: [&str; 8] = [
    "power_kw",
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "production_per_h",
    "outdoor_temp_c",
    "residual_kw",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyType {
    Spike,
    Drop,
    OffHours,
    Stuck,
    Drift,
}

impl AnomalyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::Drop => "drop",
            Self::OffHours => "off_hours",
            Self::Stuck => "stuck",
            Self::Drift => "drift",
        }
    }
}

/// Median power by (hour of day, operating): the expectation without a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourProfile {
    /// 48 entries: hour × 2 + operating; `None` where training had none
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
    fn build(rows: &[Interval]) -> Self {
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); 48];
        for iv in rows {
            buckets[profile_key(iv)].push(iv.sample.power_kw);
        }
        let mut all: Vec<f64> = rows.iter().map(|iv| iv.sample.power_kw).collect();
        let trusted = |b: &mut Vec<f64>| Some(median(b)).filter(|m| m.is_finite() && b.len() >= MIN_BUCKET);
        let medians = buckets.iter_mut().map(trusted).collect();
        let state = |operating: bool| {
            let mut v: Vec<f64> =
                rows.iter().filter(|iv| iv.operating() == operating).map(|iv| iv.sample.power_kw).collect();
            trusted(&mut v)
        };
        Self { medians, by_state: [state(false), state(true)], overall: median(&mut all) }
    }

    fn expected(&self, iv: &Interval) -> f64 {
        self.medians[profile_key(iv)].or(self.by_state[usize::from(iv.operating())]).unwrap_or(self.overall)
    }
}

fn profile_key(iv: &Interval) -> usize {
    iv.sample.timestamp.hour() as usize * 2 + usize::from(iv.operating())
}

/// Where the expected power comes from.
pub enum Expectation<'a> {
    Baseline(&'a BaselineModel),
    Profile,
}

/// A trained anomaly model: the forest and what explains its findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyModel {
    pub forest: IsolationForest,
    /// Whether residuals against a baseline were a feature (and the baseline
    /// model id they were computed with, kept by the caller).
    pub uses_baseline: bool,
    pub profile: HourProfile,
    /// Typical deviation from expected, kW: the noise scale's middle, for
    /// reports, and the only σ of models stored before the scale existed.
    pub sigma_kw: f64,
    /// Deviation from expected by expected level, while idle and while
    /// operating: the expectation may fit one state better than the other.
    #[serde(default)]
    pub noise: Option<[NoiseScale; 2]>,
    /// Smallest σ, kW: a share of the machine's full load (0 in models
    /// stored before it existed).
    #[serde(default)]
    pub sigma_floor_kw: f64,
    /// Value used for a missing production or temperature.
    pub fill: [f64; 2],
    pub training_rows: usize,
    pub training_flagged: usize,
}

/// One reading judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub score: f64,
    pub expected_kw: f64,
    pub z: f64,
    pub severity: Severity,
    /// `Some` when flagged.
    pub anomaly_type: Option<AnomalyType>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    #[error("not enough readings: {have}, at least {need} are needed")]
    InsufficientData { have: usize, need: usize },
    #[error(transparent)]
    Forest(#[from] ForestError),
}

impl AnomalyModel {
    /// Trains on `rows` (time-ordered intervals of one machine).
    pub fn train(
        rows: &[Interval],
        baseline: Option<&BaselineModel>,
        params: &ForestParams,
    ) -> Result<Self, DetectError> {
        if rows.len() < MIN_TRAINING_ROWS {
            return Err(DetectError::InsufficientData { have: rows.len(), need: MIN_TRAINING_ROWS });
        }
        let profile = HourProfile::build(rows);
        let fill = [
            median(&mut rows.iter().map(|r| r.production_rate()).collect::<Vec<_>>()),
            median(&mut rows.iter().filter_map(|r| r.sample.outdoor_temp_c).collect::<Vec<_>>()).max(f64::MIN),
        ];
        let fill = [fill[0], if fill[1].is_finite() { fill[1] } else { 0.0 }];
        let expect = |iv: &Interval| match baseline {
            Some(b) => b.expected_power(iv),
            None => profile.expected(iv),
        };
        // Per-reading deviations, not the baseline's hourly RMSE: averaging
        // four quarter-hours into an hour halves the noise, so the hourly
        // figure would double every z.
        let deviations: Vec<(bool, f64, f64)> = rows
            .iter()
            .map(|iv| {
                let e = expect(iv);
                (iv.operating(), e, iv.sample.power_kw - e)
            })
            .collect();
        let pooled: Vec<(f64, f64)> = deviations.iter().map(|&(_, e, d)| (e, d)).collect();
        let pooled = NoiseScale::fit(&pooled);
        let by_state = |operating: bool| {
            let own: Vec<(f64, f64)> =
                deviations.iter().filter(|(o, ..)| *o == operating).map(|&(_, e, d)| (e, d)).collect();
            if own.len() >= MIN_STATE_ROWS { NoiseScale::fit(&own) } else { pooled.clone() }
        };
        let x: Vec<f64> = rows.iter().flat_map(|iv| features(iv, expect(iv), fill)).collect();
        let forest = IsolationForest::fit(&x, FEATURES.len(), params)?;
        let training_flagged = forest.decision_function(&x)?.iter().filter(|d| **d < 0.0).count();
        Ok(Self {
            forest,
            uses_baseline: baseline.is_some(),
            profile,
            sigma_kw: pooled.typical(),
            noise: Some([by_state(false), by_state(true)]),
            sigma_floor_kw: FULL_LOAD_SIGMA_SHARE * full_load(rows),
            fill,
            training_rows: rows.len(),
            training_flagged,
        })
    }

    /// Judges one reading; `recent` holds the machine's preceding readings
    /// and is updated.
    pub fn judge(&self, iv: &Interval, expectation: &Expectation<'_>, recent: &mut Recent) -> Finding {
        let expected_kw = match expectation {
            Expectation::Baseline(b) => b.expected_power(iv),
            Expectation::Profile => self.profile.expected(iv),
        };
        let score = self.forest.score_one(&features(iv, expected_kw, self.fill));
        let scale = self.noise.as_ref().map(|n| &n[usize::from(iv.operating())]);
        let sigma =
            scale.map_or(self.sigma_kw, |s| s.at(expected_kw)).max(0.01 * expected_kw.abs()).max(self.sigma_floor_kw);
        let z = (iv.sample.power_kw - expected_kw) / sigma;
        recent.push(iv.sample.power_kw, z);
        let stuck = recent.stuck() && iv.operating();
        let isolated = score < self.forest.offset;
        let flagged = stuck || (isolated && z.abs() >= MIN_Z) || z.abs() >= CRITICAL_Z;
        if !flagged {
            return Finding { score, expected_kw, z, severity: Severity::Normal, anomaly_type: None };
        }
        let critical = z.abs() >= CRITICAL_Z || score < self.forest.offset - CRITICAL_SCORE_MARGIN;
        let kind = if stuck {
            AnomalyType::Stuck
        } else if !iv.operating() && z > 0.0 {
            AnomalyType::OffHours
        } else if z.abs() < CRITICAL_Z && recent.drifting(z) {
            AnomalyType::Drift
        } else if z > 0.0 {
            AnomalyType::Spike
        } else {
            AnomalyType::Drop
        };
        Finding {
            score,
            expected_kw,
            z,
            severity: if critical { Severity::Critical } else { Severity::Warning },
            anomaly_type: Some(kind),
        }
    }
}

/// The 99th percentile of power: full load, without a rare spike.
fn full_load(rows: &[Interval]) -> f64 {
    let mut powers: Vec<f64> = rows.iter().map(|iv| iv.sample.power_kw).filter(|p| p.is_finite()).collect();
    powers.sort_by(f64::total_cmp);
    crate::iforest::percentile(&powers, 99.0).max(0.0)
}

/// The forest's input for one reading.
pub fn features(iv: &Interval, expected_kw: f64, fill: [f64; 2]) -> [f64; 8] {
    use std::f64::consts::TAU;
    let t = iv.sample.timestamp;
    let hour = (t.hour() as f64 + t.minute() as f64 / 60.0) / 24.0;
    let day = t.weekday().num_days_from_monday() as f64 / 7.0;
    let production = if iv.sample.production_units.is_some() { iv.production_rate() } else { fill[0] };
    [
        iv.sample.power_kw,
        (TAU * hour).sin(),
        (TAU * hour).cos(),
        (TAU * day).sin(),
        (TAU * day).cos(),
        production,
        iv.sample.outdoor_temp_c.unwrap_or(fill[1]),
        iv.sample.power_kw - expected_kw,
    ]
}

/// The last readings of one machine, for the stuck and drift rules.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    powers: VecDeque<f64>,
    zs: VecDeque<f64>,
}

impl Recent {
    fn push(&mut self, power: f64, z: f64) {
        self.powers.push_back(power);
        self.zs.push_back(z);
        while self.powers.len() > STUCK_RUN {
            self.powers.pop_front();
        }
        while self.zs.len() > DRIFT_WINDOW {
            self.zs.pop_front();
        }
    }

    fn stuck(&self) -> bool {
        self.powers.len() == STUCK_RUN && self.powers.iter().all(|p| *p == self.powers[0] && *p > 0.0)
    }

    fn drifting(&self, z: f64) -> bool {
        if self.zs.len() < DRIFT_WINDOW {
            return false;
        }
        let mean = self.zs.iter().sum::<f64>() / self.zs.len() as f64;
        mean.abs() >= 2.0 && mean.signum() == z.signum() && self.zs.iter().all(|v| v.signum() == z.signum())
    }
}

#[cfg(test)]
mod tests;

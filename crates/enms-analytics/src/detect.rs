//! Anomaly detection per reading: the signals and features an anomaly model
//! sees, its training with calibrated thresholds, and the rules that give a
//! finding its score, severity, type, contributing signal and expected
//! value. Shared by batch detection and the streaming path, so a reading is
//! judged the same way by both.
//!
//! Layout: [`signal`] names what can be judged, `expect` holds each
//! signal's expectation and noise, [`calibrate`] turns a statistic into a
//! training-period tail share, `recent` keeps what the look-back rules
//! need, [`episode`] groups findings into episodes. docs/analytics.md
//! states the rules; in short:
//!
//! - Per signal an *expected value* (power: the active baseline, else the
//!   median at the same hour and operating state; other signals: that
//!   median) and a *deviation* `z = (actual − expected) / σ`, σ learnt by
//!   expected level and operating state ([`NoiseScale`]) with floors.
//! - The deviations together: `M² = zᵀ (R + λI)⁻¹ z`, R their correlation
//!   in training (for one signal, `M² = z²`).
//! - The isolation forest's anomaly score `a = 2^(−E(h)/c(ψ))`.
//! - Both become tail shares of the training period, combined as Fisher
//!   does: `T = −ln tail(a) − ln tail(M²)`. The reading's **score** is
//!   `1 − tail(T)`: 0.99 means 99 % of training readings were less unusual.
//! - **Flagged** when `T` is above the threshold that flags exactly the
//!   contamination share of the training readings, and the deviation is
//!   meaningful (`M²` above the training's 90th percentile and the χ²
//!   90 % point), or when the meter is stuck longer than any run in training.
//!   So the contamination is an alarm budget, whatever the data.
//! - **Critical** above the threshold that a tenth of that share passes
//!   (at most one training reading in a thousand).

pub mod budget;
pub mod calibrate;
pub mod episode;
mod expect;
mod recent;
pub mod signal;
pub mod stream;

use chrono::{Datelike, Timelike};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::baseline::BaselineModel;
use crate::iforest::{Contamination, ForestError, ForestParams, IsolationForest};
use crate::scale::{NoiseScale, median};
use crate::series::Interval;
use calibrate::{Tail, threshold_for_share};
pub use expect::{HourProfile, SignalModel};
pub use recent::Recent;
pub use signal::{Signal, UnknownSignal};

/// Shortest run of one repeated power value, while operating, that is a
/// stuck meter (longer when training held longer runs).
pub const STUCK_RUN: usize = 4;
pub const DRIFT_WINDOW: usize = 12;
/// Critical findings: this share of the alarm budget, and at most
/// [`CRITICAL_MAX_SHARE`] of the training readings.
pub const CRITICAL_SHARE: f64 = 0.1;
pub const CRITICAL_MAX_SHARE: f64 = 0.001;
/// Elevated readings (which hold an episode open): this many times the budget.
pub const HOLD_SHARE: f64 = 3.0;
/// A single reading opens a critical episode only when it is this many
/// times less likely than the critical threshold (Fisher's statistic
/// `ln(FAR_BEYOND)` above it); otherwise a critical finding needs the
/// reading before it beyond the critical threshold too (docs/analytics.md,
/// *Episode rules*).
pub const FAR_BEYOND: f64 = 100.0;
/// σ is at least this share of the machine's full load (power).
const FULL_LOAD_SIGMA_SHARE: f64 = 0.005;
/// σ of power is at least this share of the expected value (a class-1 meter).
const LEVEL_SIGMA_SHARE: f64 = 0.01;
/// Fewest readings of one operating state for it to get its own σ.
const MIN_STATE_ROWS: usize = 60;
/// Fewest readings an anomaly model is trained on.
pub const MIN_TRAINING_ROWS: usize = 100;
/// Ridge added to the deviations' correlation before it is inverted, so
/// that collinear signals (current and power) cannot make it singular.
const RIDGE: f64 = 0.1;
/// Deviations are clipped here when their correlation is learnt, so that
/// anomalies in the training period do not shape it.
const CLIP_Z: f64 = 6.0;
/// The deviation gate: a finding deviates more than this share of the
/// training readings did, and more than this share of normal-theory
/// deviations would (for one signal: |z| ≥ 3, the quality engineer's
/// control limit).
const GATE_TRAINING_QUANTILE: f64 = 0.9;
const GATE_NORMAL_QUANTILE: f64 = 0.9973;

/// The forest's inputs of the default (power-only) model.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Where the expected power comes from.
pub enum Expectation<'a> {
    Baseline(&'a BaselineModel),
    Profile,
}

/// What a model is asked to learn.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// `None`: power alone, with time of day, weekday, production and
    /// temperature as context (the default model).
    pub signals: Option<Vec<Signal>>,
    /// The alarm budget: the share of training readings flagged, in (0, 0.5].
    pub contamination: f64,
    pub seed: u64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self { signals: None, contamination: 0.01, seed: 0 }
    }
}

/// The trained thresholds: every one a quantile of the training period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    forest: Tail,
    deviation: Tail,
    combined: Tail,
    /// Flag when the combined statistic is above this…
    pub flag: f64,
    /// …and critical above this.
    pub critical: f64,
    /// Readings above this hold an open episode open.
    pub hold: f64,
    /// …and `M²` at least this.
    pub gate: f64,
    /// Repeats of one power value, while operating, that make a stuck meter.
    pub stuck_run: usize,
}

impl Calibration {
    /// Fisher's combination of the two tail shares: larger is more unusual.
    fn combined_statistic(&self, forest_anomaly: f64, m2: f64) -> f64 {
        -self.forest.upper(forest_anomaly).ln() - self.deviation.upper(m2).ln()
    }

    /// The score of a reading with this forest anomaly score and `M²`.
    pub fn score(&self, forest_anomaly: f64, m2: f64) -> f64 {
        1.0 - self.combined.upper(self.combined_statistic(forest_anomaly, m2))
    }
}

/// A trained anomaly model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyModel {
    pub forest: IsolationForest,
    /// Whether power is expected from a baseline (its id kept by the caller).
    pub uses_baseline: bool,
    /// Whether the forest sees time of day, weekday, production and
    /// temperature (the default model) or only the signals.
    pub context: bool,
    pub signals: Vec<SignalModel>,
    /// `(R + λI)⁻¹`, row-major, k × k.
    whitening: Vec<f64>,
    pub calibration: Calibration,
    /// Value used for a missing production rate or temperature (context).
    pub fill: [f64; 2],
    /// Typical σ of power, kW (0 when power is not judged): for reports.
    pub sigma_kw: f64,
    pub contamination: f64,
    pub training_rows: usize,
    /// The median interval of the training readings, hours: the resolution
    /// the model's spread and thresholds were learnt at (0 in models saved
    /// before it was recorded: every reading is then judged as trained).
    #[serde(default)]
    pub interval_h: f64,
    /// Training readings the rules flag: at most `contamination` of them.
    pub training_flagged: usize,
    pub training_critical: usize,
}

/// One reading judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// In [0, 1]: one minus the share of training readings at least as unusual.
    pub score: f64,
    pub severity: Severity,
    /// `Some` when flagged.
    pub anomaly_type: Option<AnomalyType>,
    /// Above the hold threshold: keeps an open episode open.
    pub elevated: bool,
    /// The signal that contributed most, its actual and expected value and
    /// its deviation in σ.
    pub signal: String,
    pub value: f64,
    pub expected: f64,
    pub z: f64,
    /// Power and its expectation, when the model judges power.
    pub power_kw: Option<f64>,
    pub expected_power_kw: Option<f64>,
    /// The spread σ of a reading's power around that expectation, at its
    /// level and operating state, as measured in training (without the
    /// detection floors): `expected ± 1.96 σ` is the reading-level 95 %
    /// band charts draw.
    pub sigma_power_kw: Option<f64>,
    /// The deviations together (`M²`) before the resolution's spread was
    /// taken out: what the stream learns the fine spread from.
    #[serde(skip)]
    pub raw_m2: f64,
    /// Fisher's combined statistic the thresholds compare.
    #[serde(skip)]
    pub statistic: f64,
}

/// How a reading is judged against a model learnt at another interval
/// (`stream` decides both numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// Readings of this resolution per training interval (≥ 1): every
    /// trained share is divided by it, so the alarm budget holds per hour
    /// of data, not per reading.
    pub rate: f64,
    /// The deviation's spread at this resolution, in training σ (≥ 1).
    pub spread: f64,
}

impl Judging {
    /// A reading at the training resolution.
    pub const TRAINED: Self = Self { rate: 1.0, spread: 1.0 };
}

/// The thresholds of a model at one rate (see [`Judging`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub flag: f64,
    pub critical: f64,
    /// A single reading above this is critical at once.
    pub far: f64,
    pub hold: f64,
    pub gate: f64,
    pub stuck_run: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    #[error("not enough readings: {have}, at least {need} are needed")]
    InsufficientData { have: usize, need: usize },
    #[error("no reading of the training period carries {}", .0.join(", "))]
    MissingFeature(Vec<String>),
    #[error("{} never change in the training period; a constant cannot be judged", .0.join(", "))]
    ConstantFeature(Vec<String>),
    #[error("contamination must be in (0, 0.5], got {0}")]
    Contamination(f64),
    #[error("{got} values given for {rows} readings of {signals} signals")]
    Shape { got: usize, rows: usize, signals: usize },
    #[error(transparent)]
    Forest(#[from] ForestError),
}

/// Per-row statistics of a model over a series.
struct Stats {
    forest: f64,
    m2: f64,
}

impl AnomalyModel {
    /// The signals a spec judges.
    pub fn signals_of(spec: &ModelSpec) -> Vec<Signal> {
        spec.signals.clone().unwrap_or_else(|| vec![Signal::Power])
    }

    /// Trains on `rows` (time-ordered intervals of one machine) and `values`
    /// (row-major, one column per signal of the spec, NaN where missing).
    pub fn train(
        rows: &[Interval],
        values: &[f64],
        baseline: Option<&BaselineModel>,
        spec: &ModelSpec,
    ) -> Result<Self, DetectError> {
        let c = spec.contamination;
        if !(c > 0.0 && c <= 0.5) {
            return Err(DetectError::Contamination(c));
        }
        let signals = Self::signals_of(spec);
        let k = signals.len();
        check_training(rows.len(), values, &signals)?;
        let column = |j: usize| values.iter().skip(j).step_by(k).copied();
        let fills: Vec<f64> =
            (0..k).map(|j| median(&mut column(j).filter(|v| v.is_finite()).collect::<Vec<_>>())).collect();
        let value = |i: usize, j: usize| {
            let v = values[i * k + j];
            if v.is_finite() { v } else { fills[j] }
        };
        let power_expect = |iv: &Interval, profile: &HourProfile| match baseline {
            Some(b) => b.expected_power(iv),
            None => profile.expected(iv),
        };
        let models: Vec<SignalModel> = signals
            .iter()
            .enumerate()
            .map(|(j, signal)| {
                let profile = HourProfile::build(rows, |i| value(i, j));
                let is_power = *signal == Signal::Power;
                let expect = |iv: &Interval| if is_power { power_expect(iv, &profile) } else { profile.expected(iv) };
                let deviations: Vec<(bool, f64, f64)> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, iv)| {
                        let e = expect(iv);
                        (iv.operating(), e, value(i, j) - e)
                    })
                    .collect();
                let pooled: Vec<(f64, f64)> = deviations.iter().map(|&(_, e, d)| (e, d)).collect();
                let pooled = NoiseScale::fit(&pooled);
                let by_state = |operating: bool| {
                    let own: Vec<(f64, f64)> =
                        deviations.iter().filter(|(o, ..)| *o == operating).map(|&(_, e, d)| (e, d)).collect();
                    if own.len() >= MIN_STATE_ROWS { NoiseScale::fit(&own) } else { pooled.clone() }
                };
                let mut sorted: Vec<f64> = (0..rows.len()).map(|i| value(i, j)).collect();
                sorted.sort_by(f64::total_cmp);
                let p = |q: f64| crate::iforest::percentile(&sorted, q);
                // Half the mean absolute deviation: harmless for ordinary
                // noise (about 0.4 σ), and a σ at all where more than half
                // the residuals are exactly zero and the MAD is none.
                let spread = |operating: bool| {
                    let own: Vec<f64> =
                        deviations.iter().filter(|(o, ..)| *o == operating).map(|d| d.2.abs()).collect();
                    if own.is_empty() { 0.0 } else { 0.5 * own.iter().sum::<f64>() / own.len() as f64 }
                };
                let floor = if is_power { FULL_LOAD_SIGMA_SHARE * p(99.0).max(0.0) } else { 1e-3 * (p(99.0) - p(1.0)) }
                    .max(1e-9);
                SignalModel {
                    signal: signal.clone(),
                    profile: profile.clone(),
                    noise: [by_state(false), by_state(true)],
                    sigma_floor: floor,
                    spread_floor: [spread(false), spread(true)],
                    level_share: if is_power { LEVEL_SIGMA_SHARE } else { 0.0 },
                    fill: fills[j],
                }
            })
            .collect();
        let context = spec.signals.is_none();
        let fill = [
            median(&mut rows.iter().map(|r| r.production_rate()).collect::<Vec<_>>()),
            median(&mut rows.iter().filter_map(|r| r.sample.outdoor_temp_c).collect::<Vec<_>>()),
        ];
        let fill = fill.map(|v| if v.is_finite() { v } else { 0.0 });
        let sigma_kw = models
            .iter()
            .find(|m| m.signal == Signal::Power)
            .map_or(0.0, |m| m.noise[1].typical().max(m.noise[0].typical()));
        let mut model = Self {
            forest: IsolationForest::fit(&[0.0], 1, &ForestParams::default())?,
            uses_baseline: baseline.is_some(),
            context,
            signals: models,
            whitening: identity(k),
            calibration: Calibration {
                forest: Tail::fit(&[]),
                deviation: Tail::fit(&[]),
                combined: Tail::fit(&[]),
                flag: f64::MAX,
                critical: f64::MAX,
                hold: f64::MAX,
                gate: 0.0,
                stuck_run: STUCK_RUN,
            },
            fill,
            sigma_kw,
            contamination: c,
            training_rows: rows.len(),
            interval_h: median(&mut rows.iter().map(|r| r.hours).collect::<Vec<_>>()).max(0.0),
            training_flagged: 0,
            training_critical: 0,
        };
        let expectation = match baseline {
            Some(b) => Expectation::Baseline(b),
            None => Expectation::Profile,
        };
        // Deviations first: their correlation whitens M².
        let row_values = |i: usize| (0..k).map(|j| value(i, j)).collect::<Vec<f64>>();
        let zs: Vec<Vec<f64>> =
            rows.iter().enumerate().map(|(i, iv)| model.deviations(iv, &row_values(i), &expectation).1).collect();
        model.whitening = whitening(&zs, k);
        let x: Vec<f64> = rows
            .iter()
            .enumerate()
            .flat_map(|(i, iv)| {
                let (expected, _) = model.deviations(iv, &row_values(i), &expectation);
                model.features(iv, &row_values(i), &expected)
            })
            .collect();
        let width = model.feature_count();
        let params = ForestParams { contamination: Contamination::Fraction(c), seed: spec.seed, ..Default::default() };
        model.forest = IsolationForest::fit(&x, width, &params)?;
        let forest_scores = model.forest.score_samples(&x)?;
        let stats: Vec<Stats> =
            forest_scores.iter().zip(&zs).map(|(s, z)| Stats { forest: -s, m2: model.m2(z).0 }).collect();
        let forest_values: Vec<f64> = stats.iter().map(|s| s.forest).collect();
        let m2_values: Vec<f64> = stats.iter().map(|s| s.m2).collect();
        let cal = &mut model.calibration;
        cal.forest = Tail::fit(&forest_values);
        cal.deviation = Tail::fit(&m2_values);
        let combined: Vec<f64> = stats.iter().map(|s| cal.combined_statistic(s.forest, s.m2)).collect();
        cal.combined = Tail::fit(&combined);
        let mut sorted_m2 = m2_values.clone();
        sorted_m2.sort_by(f64::total_cmp);
        let chi2 = ChiSquared::new(k as f64).map(|d| d.inverse_cdf(GATE_NORMAL_QUANTILE)).unwrap_or(0.0);
        cal.gate = crate::iforest::percentile(&sorted_m2, 100.0 * GATE_TRAINING_QUANTILE).max(chi2);
        let gated: Vec<f64> =
            combined.iter().zip(&m2_values).filter(|(_, m2)| **m2 >= cal.gate).map(|(t, _)| *t).collect();
        // The flag threshold: exactly floor(c·n) gated training readings
        // lie above it (fewer on ties); all of them when fewer are gated.
        let allowed = (c * rows.len() as f64).floor() as usize;
        let mut sorted_gated = gated.clone();
        sorted_gated.sort_by(f64::total_cmp);
        cal.flag =
            if sorted_gated.len() <= allowed { f64::MIN } else { sorted_gated[sorted_gated.len() - 1 - allowed] };
        // Critical: what a tenth of the budget passes among all training
        // readings. Over gated ones only, a clean training period (fewer
        // gated readings than the budget) would make every finding critical.
        cal.critical = threshold_for_share(&combined, (c * CRITICAL_SHARE).min(CRITICAL_MAX_SHARE)).max(cal.flag);
        // Not capped by the flag threshold: on a clean training period that is
        // the lowest number, and every reading would hold an episode open.
        cal.hold = threshold_for_share(&combined, (HOLD_SHARE * c).min(0.5));
        cal.stuck_run = stuck_run(rows);
        model.training_flagged = gated.iter().filter(|t| **t > cal.flag).count();
        let critical = cal.critical;
        model.training_critical = gated.iter().filter(|t| **t > critical).count();
        Ok(model)
    }

    fn feature_count(&self) -> usize {
        if self.context { FEATURES.len() } else { 2 * self.signals.len() }
    }

    /// Expected value and deviation (σ) of each signal.
    fn deviations(&self, iv: &Interval, values: &[f64], expectation: &Expectation<'_>) -> (Vec<f64>, Vec<f64>) {
        self.signals
            .iter()
            .zip(values)
            .map(|(m, v)| {
                let e = match (&m.signal, expectation) {
                    (Signal::Power, Expectation::Baseline(b)) => b.expected_power(iv),
                    _ => m.profile.expected(iv),
                };
                let v = if v.is_finite() { *v } else { m.fill };
                (e, (v - e) / m.sigma(iv, e))
            })
            .unzip()
    }

    /// `M²` and each signal's share of it.
    fn m2(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let k = z.len();
        let wz: Vec<f64> = (0..k).map(|i| (0..k).map(|j| self.whitening[i * k + j] * z[j]).sum()).collect();
        let parts: Vec<f64> = z.iter().zip(&wz).map(|(a, b)| a * b).collect();
        (parts.iter().sum::<f64>().max(0.0), parts)
    }

    /// The forest's input for one reading.
    fn features(&self, iv: &Interval, values: &[f64], expected: &[f64]) -> Vec<f64> {
        if self.context {
            return features(iv, expected[0], self.fill).to_vec();
        }
        let filled: Vec<f64> =
            values.iter().zip(&self.signals).map(|(v, m)| if v.is_finite() { *v } else { m.fill }).collect();
        filled.iter().copied().chain(filled.iter().zip(expected).map(|(v, e)| v - e)).collect()
    }

    /// The values this model judges, from a reading's power (the default
    /// model) — a convenience for power-only callers.
    pub fn power_values(rows: &[Interval]) -> Vec<f64> {
        rows.iter().map(|iv| iv.sample.power_kw).collect()
    }

    /// The thresholds for readings at `rate` readings per training
    /// interval: the trained ones, with a stuck run as long in time as in
    /// training (`stream` adds the persistence a fine reading needs).
    pub fn thresholds(&self, rate: f64) -> Thresholds {
        let cal = &self.calibration;
        let rate = if rate.is_finite() { rate.max(1.0) } else { 1.0 };
        Thresholds {
            flag: cal.flag,
            far: cal.critical + FAR_BEYOND.ln(),
            critical: cal.critical,
            hold: cal.hold,
            gate: cal.gate,
            stuck_run: (cal.stuck_run as f64 * rate).ceil() as usize,
        }
    }

    /// Judges one reading at the training resolution; `values` holds its
    /// signals in the model's order (NaN where missing); `recent` holds the
    /// machine's preceding readings and is updated.
    pub fn judge(&self, iv: &Interval, values: &[f64], expectation: &Expectation<'_>, recent: &mut Recent) -> Finding {
        self.judge_at(iv, values, expectation, recent, &self.thresholds(1.0), 1.0)
    }

    /// Judges one reading against `thresholds` (from [`Self::thresholds`])
    /// with deviations divided by `spread` (see [`Judging`]).
    pub fn judge_at(
        &self,
        iv: &Interval,
        values: &[f64],
        expectation: &Expectation<'_>,
        recent: &mut Recent,
        th: &Thresholds,
        spread: f64,
    ) -> Finding {
        let (expected, z) = self.deviations(iv, values, expectation);
        let raw_m2 = self.m2(&z).0;
        let spread = if spread.is_finite() { spread.max(1.0) } else { 1.0 };
        let z: Vec<f64> = z.iter().map(|v| v / spread).collect();
        let forest = -self.forest.score_one(&self.features(iv, values, &expected));
        let (m2, parts) = self.m2(&z);
        let cal = &self.calibration;
        let t = cal.combined_statistic(forest, m2);
        let score = 1.0 - cal.combined.upper(t);
        // The contributing signal: the largest share of M² (for one signal,
        // that signal).
        let top = (0..z.len()).max_by(|&a, &b| parts[a].total_cmp(&parts[b])).unwrap_or(0);
        let power = self.signals.iter().position(|m| m.signal == Signal::Power);
        let power_kw = power.map(|_| iv.sample.power_kw);
        recent.push(iv.sample.power_kw, iv.operating(), z[top], top);
        let stuck = power.is_some() && recent.stuck(th.stuck_run) && iv.operating();
        let flagged = stuck || (m2 >= th.gate && t > th.flag);
        let value = if values[top].is_finite() { values[top] } else { self.signals[top].fill };
        let mut finding = Finding {
            score,
            severity: Severity::Normal,
            anomaly_type: None,
            elevated: t > th.hold,
            signal: self.signals[top].signal.name(),
            value,
            expected: expected[top],
            z: z[top],
            power_kw,
            expected_power_kw: power.map(|p| expected[p]),
            sigma_power_kw: power.map(|p| self.signals[p].spread(iv, expected[p])),
            raw_m2,
            statistic: t,
        };
        // Critical needs a second reading beyond the critical threshold, or
        // one far beyond it: one marginal reading pages nobody.
        let beyond = flagged && t > th.critical;
        let critical = stuck || (beyond && (recent.was_critical || t > th.far));
        recent.was_critical = beyond;
        if !flagged {
            recent.last_kind = None;
            return finding;
        }
        let direct = if z[top] > 0.0 { AnomalyType::Spike } else { AnomalyType::Drop };
        let kind = if stuck {
            AnomalyType::Stuck
        } else if Some(top) == power && !iv.operating() && z[top] > 0.0 {
            AnomalyType::OffHours
        } else if recent.last_kind == Some(direct) {
            // A spike that goes on is one spike, not a spike and then a
            // drift: the type (and so the episode) holds while the
            // readings keep deviating the same way.
            direct
        } else if !beyond && recent.drifting(top, z[top]) {
            AnomalyType::Drift
        } else {
            direct
        };
        recent.last_kind = Some(kind);
        if stuck && let Some(p) = power {
            finding.signal = self.signals[p].signal.name();
            finding.value = iv.sample.power_kw;
            finding.expected = expected[p];
            finding.z = z[p];
        }
        finding.severity = if critical { Severity::Critical } else { Severity::Warning };
        finding.anomaly_type = Some(kind);
        finding.elevated = true;
        finding
    }

    /// Each judged signal of one reading: name, actual, expected and
    /// deviation in σ — what [`AnomalyModel::judge`] weighs, for
    /// explanations.
    pub fn deviations_of(
        &self,
        iv: &Interval,
        values: &[f64],
        expectation: &Expectation<'_>,
    ) -> Vec<(String, f64, f64, f64)> {
        let (expected, z) = self.deviations(iv, values, expectation);
        self.signals
            .iter()
            .zip(values)
            .zip(expected.iter().zip(&z))
            .map(|((m, v), (e, z))| (m.signal.name(), if v.is_finite() { *v } else { m.fill }, *e, *z))
            .collect()
    }

    /// The names of the judged signals, in order.
    pub fn signal_names(&self) -> Vec<String> {
        self.signals.iter().map(|m| m.signal.name()).collect()
    }

    /// Share of training readings flagged: the budget realised.
    pub fn training_rate(&self) -> f64 {
        self.training_flagged as f64 / self.training_rows.max(1) as f64
    }
}

/// What training would refuse, checked without training: the shape of
/// `values` (row-major, one column per signal), too few rows, and signals
/// that no row carries or that never change (named).
pub fn check_training(rows: usize, values: &[f64], signals: &[Signal]) -> Result<(), DetectError> {
    let k = signals.len();
    if values.len() != rows * k {
        return Err(DetectError::Shape { got: values.len(), rows, signals: k });
    }
    if rows < MIN_TRAINING_ROWS {
        return Err(DetectError::InsufficientData { have: rows, need: MIN_TRAINING_ROWS });
    }
    let column = |j: usize| values.iter().skip(j).step_by(k).copied();
    let missing: Vec<String> =
        (0..k).filter(|&j| column(j).all(|v| !v.is_finite())).map(|j| signals[j].name()).collect();
    if !missing.is_empty() {
        return Err(DetectError::MissingFeature(missing));
    }
    let constant: Vec<String> = (0..k)
        .filter(|&j| {
            let mut present = column(j).filter(|v| v.is_finite());
            let first = present.next();
            present.all(|v| Some(v) == first)
        })
        .map(|j| signals[j].name())
        .collect();
    if !constant.is_empty() {
        return Err(DetectError::ConstantFeature(constant));
    }
    Ok(())
}

fn identity(k: usize) -> Vec<f64> {
    (0..k * k).map(|i| if i / k == i % k { 1.0 } else { 0.0 }).collect()
}

/// `(R + λI)⁻¹` of clipped training deviations, rescaled so that one signal
/// alone keeps `M² = z²`.
fn whitening(zs: &[Vec<f64>], k: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let n = zs.len().max(1) as f64;
    let clipped: Vec<Vec<f64>> = zs.iter().map(|z| z.iter().map(|v| v.clamp(-CLIP_Z, CLIP_Z)).collect()).collect();
    let mean: Vec<f64> = (0..k).map(|j| clipped.iter().map(|z| z[j]).sum::<f64>() / n).collect();
    let mut cov = DMatrix::<f64>::zeros(k, k);
    for z in &clipped {
        let d = DVector::from_iterator(k, z.iter().zip(&mean).map(|(v, m)| v - m));
        cov += &d * d.transpose();
    }
    cov /= n;
    let sd: Vec<f64> = (0..k).map(|j| cov[(j, j)].sqrt().max(1e-9)).collect();
    let mut r = DMatrix::<f64>::from_fn(k, k, |i, j| cov[(i, j)] / (sd[i] * sd[j]));
    for i in 0..k {
        r[(i, i)] = 1.0 + RIDGE;
    }
    let Some(inv) = r.try_inverse() else { return identity(k) };
    let scale = 1.0 + RIDGE;
    (0..k * k).map(|i| inv[(i / k, i % k)] * scale).collect()
}

/// The longest run of one repeated power value while operating in training,
/// plus one, and at least [`STUCK_RUN`]: a meter that reports in coarse
/// steps repeats itself without being stuck.
fn stuck_run(rows: &[Interval]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    let mut last = f64::NAN;
    for iv in rows {
        let p = iv.sample.power_kw;
        if iv.operating() && p > 0.0 && p == last {
            run += 1;
        } else {
            run = usize::from(iv.operating() && p > 0.0);
        }
        last = p;
        longest = longest.max(run);
    }
    (longest + 1).max(STUCK_RUN)
}

/// The default model's forest input for one reading.
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

#[cfg(test)]
mod tests;

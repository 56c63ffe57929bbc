//! Judging a stream at the resolution its model learnt: what one machine's
//! detector keeps between readings, so that batch and live detection judge
//! a reading the same way whatever its interval.
//!
//! A model records the median interval of its training readings. A reading
//! at that interval (or coarser, or less than [`FINE_RATIO`] times finer) is
//! judged as trained. A *fine* reading — 5-second live data against a model
//! of 15-minute history — is judged with two corrections
//! (docs/analytics.md, *Resolution*):
//!
//! - **Rate.** There are `rate = trained interval / reading interval` fine
//!   readings per trained one, so a fine reading flagged by the trained
//!   thresholds alarms only when the [`persistence`] readings before it were
//!   flagged too: if a noise reading is flagged with chance `p` (the
//!   budget), a run of `k` is `p^k`, and `k = 1 + ⌈ln rate / ln(1/p)⌉`
//!   keeps `rate · p^k ≤ p` — the alarm budget per hour of data, not per
//!   reading. One reading far beyond the critical threshold (by `ln rate`
//!   more than a coarse one must be) alarms at once. A stuck meter must
//!   repeat itself for as long in time as in training. (Dividing the trained shares by the rate instead puts the
//!   thresholds beyond every training reading, where the anomalies of the
//!   training period itself sit: a 2.4× spike went unflagged at 1 s.)
//! - **Spread.** The fine readings' own spread around the expectation,
//!   learnt from the fine data: the median of their `M²` over the last
//!   [`FINE_WINDOW`] fine readings against the χ² median, as a
//!   factor `s` on σ, between 1 (no more sensitive than training) and
//!   `√rate` (white noise averaged over the trained interval). Until
//!   [`MIN_FINE`] fine readings have been seen, `s = √rate`: only a
//!   deviation that would stand out even in white noise alarms.

use std::collections::VecDeque;

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::{AnomalyModel, Expectation, Finding, Judging, Recent, Thresholds};
use crate::series::Interval;

/// A reading this many times finer than the training interval is judged
/// as a fine reading.
pub const FINE_RATIO: f64 = 2.0;
/// Fine readings the spread is learnt from (an hour of 5-second data).
pub const FINE_WINDOW: usize = 720;
/// Fine readings needed before the learnt spread is used.
pub const MIN_FINE: usize = 30;

/// One machine's judging state between readings.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    pub recent: Recent,
    fine: VecDeque<f64>,
    /// The learnt spread factor's square, refreshed as fine readings come.
    fine_estimate: Option<f64>,
    since_estimate: usize,
    /// The thresholds at the last rate used (by its quantised key).
    cached: Option<(i64, usize, Thresholds)>,
    /// Fine readings flagged in a row.
    run: usize,
}

/// Fine readings flagged in a row before one alarms, at `rate` fine
/// readings per trained one and an alarm budget `budget` (see the module
/// docs), between 2 and 12.
pub fn persistence(rate: f64, budget: f64) -> usize {
    if rate <= 1.0 {
        return 1;
    }
    let p = budget.clamp(1e-6, 0.5);
    (1 + (rate.ln() / (1.0 / p).ln()).ceil().max(1.0) as usize).clamp(2, 12)
}

impl StreamState {
    /// How a reading of this interval is judged by `model`, now.
    pub fn judging(&self, model: &AnomalyModel, iv: &Interval) -> Judging {
        let rate = rate_of(model, iv);
        if rate <= 1.0 {
            return Judging::TRAINED;
        }
        let spread = match self.fine_estimate {
            Some(s2) if self.fine.len() >= MIN_FINE => s2.sqrt().clamp(1.0, rate.sqrt()),
            _ => rate.sqrt(),
        };
        Judging { rate, spread }
    }

    /// Fine readings the spread has been learnt from so far.
    pub fn fine_readings(&self) -> usize {
        self.fine.len()
    }

    /// Judges one reading of the stream and learns from it.
    pub fn judge(
        &mut self,
        model: &AnomalyModel,
        iv: &Interval,
        values: &[f64],
        expectation: &Expectation<'_>,
    ) -> (Finding, Judging) {
        let judging = self.judging(model, iv);
        let key = (judging.rate.log2() * 8.0).round() as i64;
        let th = match &self.cached {
            Some((k, signals, th)) if *k == key && *signals == model.signals.len() => th.clone(),
            _ => {
                let th = model.thresholds(2f64.powf(key as f64 / 8.0));
                self.cached = Some((key, model.signals.len(), th.clone()));
                th
            }
        };
        let mut finding = model.judge_at(iv, values, expectation, &mut self.recent, &th, judging.spread);
        if judging.rate > 1.0 {
            // Every fine reading: the median does not move for a fault of
            // a few minutes in the hour it covers, and leaving out the
            // readings the forest finds unusual (fine values are unusual to
            // a forest of 15-minute means) would keep only the quietest.
            if finding.raw_m2.is_finite() {
                self.learn(finding.raw_m2, model.signals.len());
            }
            if finding.anomaly_type.is_some() {
                self.run += 1;
                // One fine reading far beyond the critical threshold — as far
                // again as there are fine readings per trained one — alarms
                // at once: a tenfold spike is not noise at any resolution.
                let far = finding.statistic > th.far + judging.rate.ln();
                if self.run < persistence(judging.rate, model.contamination) && !far {
                    // Not yet: held open if an episode is, not yet one.
                    finding.anomaly_type = None;
                    finding.severity = super::Severity::Normal;
                }
            } else {
                self.run = 0;
            }
        } else {
            self.run = 0;
        }
        (finding, judging)
    }

    fn learn(&mut self, m2: f64, signals: usize) {
        self.fine.push_back(m2);
        while self.fine.len() > FINE_WINDOW {
            self.fine.pop_front();
        }
        self.since_estimate += 1;
        // A median of up to 720 values every 16 readings (or every reading
        // while the window is young): cheap against a reading's judgement.
        if self.fine.len() <= 2 * MIN_FINE || self.since_estimate >= 16 || self.fine_estimate.is_none() {
            self.since_estimate = 0;
            let mut v: Vec<f64> = self.fine.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            let chi2_median = ChiSquared::new(signals.max(1) as f64).map(|d| d.inverse_cdf(0.5)).unwrap_or(0.4549);
            self.fine_estimate = Some(median / chi2_median.max(1e-9));
        }
    }

    /// The machine's model was replaced: its thresholds are worked out
    /// again; the learnt spread is kept when the new model was learnt at
    /// the same interval (a refresh), forgotten otherwise.
    pub fn model_changed(&mut self, old_interval_h: f64, new_interval_h: f64) {
        self.cached = None;
        let same = old_interval_h > 0.0 && (new_interval_h / old_interval_h - 1.0).abs() < 0.05;
        if !same {
            self.fine.clear();
            self.fine_estimate = None;
            self.since_estimate = 0;
        }
    }
}

/// Readings of `iv`'s interval per training interval of `model`, or 1 when
/// the reading is not at least [`FINE_RATIO`] times finer.
pub fn rate_of(model: &AnomalyModel, iv: &Interval) -> f64 {
    if !(model.interval_h > 0.0 && iv.hours > 0.0) {
        return 1.0;
    }
    let rate = model.interval_h / iv.hours;
    if rate >= FINE_RATIO && rate.is_finite() { rate } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};

    use super::*;
    use crate::detect::episode::{self, Change};
    use crate::detect::{AnomalyType, ModelSpec, Severity};
    use crate::series::{Sample, intervals};

    /// Standard normal from a counter (SplitMix64 and Box–Muller): seeded,
    /// the same on every run.
    fn normal(seed: u64, i: u64) -> f64 {
        let mix = |mut z: u64| {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let u = |k: u64| (mix(seed ^ mix(i.wrapping_mul(2).wrapping_add(k))) >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u(0).max(f64::MIN_POSITIVE).ln()).sqrt() * (std::f64::consts::TAU * u(1)).cos()
    }

    /// A machine at 10 kW idle, 10 + 2·units/h when producing (06–22),
    /// each reading `noise` kW off at random.
    fn reading(ts: DateTime<Utc>, hours: f64, noise: f64) -> Sample {
        let rate = if (6..22).contains(&ts.hour()) { 26.0 } else { 0.0 };
        Sample {
            timestamp: ts,
            power_kw: 10.0 + 2.0 * rate + noise,
            production_units: Some(rate * hours),
            outdoor_temp_c: Some(8.0),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap()
    }

    /// Fourteen days of 15-minute history with σ = 0.6 kW.
    fn coarse_model() -> AnomalyModel {
        let samples: Vec<Sample> =
            (1..=14 * 96).map(|i| reading(t0() + Duration::minutes(15 * i), 0.25, 0.6 * normal(1, i as u64))).collect();
        let rows = intervals(&samples);
        let m = AnomalyModel::train(&rows, &AnomalyModel::power_values(&rows), None, &ModelSpec::default()).unwrap();
        assert!((m.interval_h - 0.25).abs() < 1e-9, "the model records its interval");
        m
    }

    /// Judges `hours` of 5-second readings after the history, each with
    /// `fine_sigma` kW of noise and `fault(i)` kW added; answers every
    /// episode the stream opened (as it was when it opened) and closed.
    fn stream(m: &AnomalyModel, hours: i64, fine_sigma: f64, fault: impl Fn(i64) -> f64) -> Vec<(Change, Judging)> {
        let start = t0() + Duration::days(14) + Duration::hours(6);
        let mut state = StreamState::default();
        let mut tracker = episode::Tracker::new(episode::DEFAULT_QUIET);
        let mut changes = Vec::new();
        for i in 1..=hours * 720 {
            let mut s = reading(start + Duration::seconds(5 * i), 5.0 / 3600.0, fine_sigma * normal(2, i as u64));
            s.power_kw += fault(i);
            let iv = Interval { sample: s, hours: 5.0 / 3600.0 };
            let (f, judging) = state.judge(m, &iv, &[s.power_kw], &Expectation::Profile);
            changes.extend(tracker.push(s.timestamp, iv.hours, &f).into_iter().map(|c| (c, judging)));
        }
        changes
    }

    fn opened(changes: &[(Change, Judging)]) -> Vec<&crate::detect::episode::Episode> {
        changes
            .iter()
            .filter_map(|(c, _)| match c {
                Change::Opened(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fine_readings_against_a_coarse_model_alarm_on_no_noise_and_find_the_fault() {
        let m = coarse_model();
        // White noise that averages to the training spread over 15 minutes
        // (σ·√180), and noise as large as the training spread itself.
        for fine_sigma in [0.6 * 180f64.sqrt(), 0.6] {
            let quiet = stream(&m, 6, fine_sigma, |_| 0.0);
            assert!(opened(&quiet).is_empty(), "σ {fine_sigma}: episodes from noise: {:?}", opened(&quiet));
            // A minute at twice the power, two hours in.
            let fault = |i: i64| if (1440..1452).contains(&i) { 62.0 } else { 0.0 };
            let found = stream(&m, 6, fine_sigma, fault);
            let episodes = opened(&found);
            assert_eq!(episodes.len(), 1, "σ {fine_sigma}: {episodes:?}");
            assert_eq!(episodes[0].anomaly_type, AnomalyType::Spike);
            let critical = found.iter().any(
                |(c, _)| matches!(c, Change::Escalated(e) | Change::Opened(e) if e.severity == Severity::Critical),
            );
            assert!(critical, "σ {fine_sigma}: the fault is critical");
            let (_, judging) = &found[0];
            assert!((judging.rate - 180.0).abs() < 1e-6);
            assert!(judging.spread >= 1.0 && judging.spread <= 180f64.sqrt() + 1e-9);
            if fine_sigma > 1.0 {
                assert!(judging.spread > 0.6 * 180f64.sqrt(), "the white noise's spread is learnt: {judging:?}");
            } else {
                assert!(judging.spread < 2.0, "noise like training's is judged like training: {judging:?}");
            }
        }
    }

    #[test]
    fn one_marginal_reading_opens_no_critical_episode_but_a_three_reading_fault_does() {
        let m = coarse_model();
        let at = t0() + Duration::days(14) + Duration::hours(10);
        // Each slightly different, or the meter would look stuck.
        let normal_reading =
            |k: i64| Interval { sample: reading(at + Duration::minutes(15 * k), 0.25, 0.01 * k as f64), hours: 0.25 };
        // The smallest excess beyond the critical threshold but not far beyond it.
        let severities = |excess: f64, n: i64| {
            let mut state = StreamState::default();
            (0..n)
                .map(|k| {
                    let mut iv = normal_reading(k);
                    iv.sample.power_kw += excess;
                    state.judge(&m, &iv, &[iv.sample.power_kw], &Expectation::Profile).0.severity
                })
                .collect::<Vec<_>>()
        };
        let excess = (1..400)
            .map(|i| f64::from(i) * 0.05)
            .find(|e| severities(*e, 2) == [Severity::Warning, Severity::Critical])
            .expect("a marginal excess: warning alone, critical in a row");
        // One marginal reading, then normal ones: a warning episode.
        let mut state = StreamState::default();
        let mut tracker = episode::Tracker::new(episode::DEFAULT_QUIET);
        let mut seen = Vec::new();
        for k in 0..8 {
            let mut iv = normal_reading(k);
            if k == 1 {
                iv.sample.power_kw += excess;
            }
            let (f, _) = state.judge(&m, &iv, &[iv.sample.power_kw], &Expectation::Profile);
            seen.extend(tracker.push(iv.sample.timestamp, iv.hours, &f));
        }
        let worst = seen.iter().map(|c| match c {
            Change::Opened(e) | Change::Escalated(e) | Change::Closed(e) => e.severity,
        });
        assert_eq!(worst.max(), Some(Severity::Warning), "{seen:?}");
        // Three readings at the same excess: one episode, critical.
        let mut state = StreamState::default();
        let mut tracker = episode::Tracker::new(episode::DEFAULT_QUIET);
        let mut seen = Vec::new();
        for k in 0..10 {
            let mut iv = normal_reading(k);
            if (1..4).contains(&k) {
                iv.sample.power_kw += excess;
            }
            let (f, _) = state.judge(&m, &iv, &[iv.sample.power_kw], &Expectation::Profile);
            seen.extend(tracker.push(iv.sample.timestamp, iv.hours, &f));
        }
        let closed: Vec<_> =
            seen.iter().filter_map(|c| if let Change::Closed(e) = c { Some(e) } else { None }).collect();
        assert_eq!(closed.len(), 1, "{seen:?}");
        assert_eq!(closed[0].severity, Severity::Critical);
        assert_eq!(closed[0].count, 3);
    }
}

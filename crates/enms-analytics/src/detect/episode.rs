//! Episodes: what an operator is told about, instead of every flagged row.
//!
//! Consecutive flagged readings of one machine and one anomaly type form one
//! episode. While an episode is open, a reading that is not flagged but still
//! *elevated* (above the model's hold threshold, lower than its flag
//! threshold) keeps it open without adding to it: that is the hysteresis
//! that stops one fault wobbling around the threshold from becoming ten
//! episodes. The episode ends after `quiet` readings in a row that are
//! neither flagged with its type nor elevated.
//!
//! The tracker is pure: it is fed findings in time order and answers what
//! happened (opened, escalated, closed), so batch detection and the
//! streaming path form episodes identically.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AnomalyType, Finding, Severity};

/// Normal readings in a row that end an episode, by default: an hour of
/// 15-minute data.
pub const DEFAULT_QUIET: usize = 4;

/// One episode as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Episode {
    /// Reading time of the first flagged reading.
    pub start: DateTime<Utc>,
    /// Reading time of the last flagged or elevated reading.
    pub end: DateTime<Utc>,
    /// The flagged reading with the highest score.
    pub peak_at: DateTime<Utc>,
    pub peak_score: f64,
    /// The contributing signal at the peak, with its actual and expected value.
    pub signal: String,
    pub peak_value: f64,
    pub peak_expected: f64,
    /// Flagged readings in the episode.
    pub count: usize,
    /// The highest severity reached.
    #[schema(value_type = String)]
    pub severity: Severity,
    #[schema(value_type = String)]
    pub anomaly_type: AnomalyType,
    /// Energy over the episode's readings, actual and expected (kWh), when
    /// the model expects power.
    pub actual_kwh: Option<f64>,
    pub expected_kwh: Option<f64>,
    /// Still open: the machine has not yet been normal for the quiet stretch.
    pub open: bool,
}

/// What one reading did to the machine's episodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened(Episode),
    /// The severity rose (warning → critical).
    Escalated(Episode),
    Closed(Episode),
}

/// The open episodes of one machine.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    quiet: usize,
    open: Vec<(Episode, usize)>,
}

impl Tracker {
    pub fn new(quiet: usize) -> Self {
        Self { quiet: quiet.max(1), open: Vec::new() }
    }

    /// The open episodes.
    pub fn open(&self) -> impl Iterator<Item = &Episode> {
        self.open.iter().map(|(e, _)| e)
    }

    /// Feeds one judged reading; `hours` is the interval it covers.
    pub fn push(&mut self, at: DateTime<Utc>, hours: f64, f: &Finding) -> Vec<Change> {
        let mut changes = Vec::new();
        let energy = |kw: Option<f64>| kw.map(|k| k * hours);
        if let Some(kind) = f.anomaly_type {
            match self.open.iter_mut().find(|(e, _)| e.anomaly_type == kind) {
                Some((e, quiet)) => {
                    *quiet = 0;
                    e.end = at;
                    e.count += 1;
                    add(&mut e.actual_kwh, energy(f.power_kw));
                    add(&mut e.expected_kwh, energy(f.expected_power_kw));
                    if f.score > e.peak_score {
                        e.peak_at = at;
                        e.peak_score = f.score;
                        e.signal.clone_from(&f.signal);
                        e.peak_value = f.value;
                        e.peak_expected = f.expected;
                    }
                    if f.severity > e.severity {
                        e.severity = f.severity;
                        changes.push(Change::Escalated(e.clone()));
                    }
                }
                None => {
                    let e = Episode {
                        start: at,
                        end: at,
                        peak_at: at,
                        peak_score: f.score,
                        signal: f.signal.clone(),
                        peak_value: f.value,
                        peak_expected: f.expected,
                        count: 1,
                        severity: f.severity,
                        anomaly_type: kind,
                        actual_kwh: energy(f.power_kw),
                        expected_kwh: energy(f.expected_power_kw),
                        open: true,
                    };
                    changes.push(Change::Opened(e.clone()));
                    self.open.push((e, 0));
                }
            }
        }
        let quiet_limit = self.quiet;
        let mut i = 0;
        while i < self.open.len() {
            let (e, quiet) = &mut self.open[i];
            if Some(e.anomaly_type) == f.anomaly_type {
                i += 1;
                continue;
            }
            if f.elevated {
                *quiet = 0;
                e.end = at;
                add(&mut e.actual_kwh, energy(f.power_kw));
                add(&mut e.expected_kwh, energy(f.expected_power_kw));
            } else {
                *quiet += 1;
            }
            if *quiet >= quiet_limit {
                let (mut e, _) = self.open.remove(i);
                e.open = false;
                changes.push(Change::Closed(e));
            } else {
                i += 1;
            }
        }
        changes
    }

    /// Ends every open episode (the end of a batch window leaves them open;
    /// this is for callers that want them closed).
    pub fn drain(&mut self) -> Vec<Episode> {
        self.open.drain(..).map(|(e, _)| e).collect()
    }
}

fn add(total: &mut Option<f64>, v: Option<f64>) {
    if let (Some(t), Some(v)) = (total.as_mut(), v) {
        *t += v;
    }
}

/// Every episode of a judged series, in order of start; those still open at
/// the end keep `open: true`.
pub fn episodes<'a>(quiet: usize, judged: impl IntoIterator<Item = (DateTime<Utc>, f64, &'a Finding)>) -> Vec<Episode> {
    let mut tracker = Tracker::new(quiet);
    let mut out = Vec::new();
    for (at, hours, f) in judged {
        for change in tracker.push(at, hours, f) {
            if let Change::Closed(e) = change {
                out.push(e);
            }
        }
    }
    out.extend(tracker.drain());
    out.sort_by_key(|e| e.start);
    out
}

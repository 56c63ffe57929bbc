//! The last readings of one machine, kept between judgements for the
//! rules that look back: a stuck meter, a drift, and a critical finding
//! that needs a second reading.

use std::collections::VecDeque;

use super::DRIFT_WINDOW;

/// The last readings of one machine, for the look-back rules.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// The power value repeated by the latest readings, and how many
    /// readings in a row (above zero) carried it.
    last_power: Option<f64>,
    run: usize,
    /// (contributing signal, its z).
    zs: VecDeque<(usize, f64)>,
    /// Whether the previous reading was beyond the critical threshold.
    pub(super) was_critical: bool,
    /// The type the previous reading was flagged with, if it was.
    pub(super) last_kind: Option<super::AnomalyType>,
}

impl Recent {
    pub(super) fn push(&mut self, power: f64, operating: bool, z: f64, signal: usize) {
        // The run counts through idle readings (a meter that sticks at
        // night is found at the first reading while operating).
        let _ = operating;
        let counts = power > 0.0;
        self.run = match self.last_power {
            Some(p) if counts && p == power => self.run + 1,
            _ => usize::from(counts),
        };
        self.last_power = Some(power);
        self.zs.push_back((signal, z));
        while self.zs.len() > DRIFT_WINDOW {
            self.zs.pop_front();
        }
    }

    /// The same power value in `run` readings in a row.
    pub(super) fn stuck(&self, run: usize) -> bool {
        self.run >= run
    }

    /// Forgets that the last reading was beyond the critical threshold.
    pub fn clear_critical(&mut self) {
        self.was_critical = false;
        self.last_kind = None;
    }

    pub(super) fn drifting(&self, signal: usize, z: f64) -> bool {
        if self.zs.len() < DRIFT_WINDOW || self.zs.iter().any(|(s, _)| *s != signal) {
            return false;
        }
        let mean = self.zs.iter().map(|(_, v)| v).sum::<f64>() / self.zs.len() as f64;
        mean.abs() >= 2.0 && mean.signum() == z.signum() && self.zs.iter().all(|(_, v)| v.signum() == z.signum())
    }
}

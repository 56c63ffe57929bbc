//! The last readings of one machine, kept between judgements for the
//! rules that look back: a stuck meter and a drift.

use std::collections::VecDeque;

use super::DRIFT_WINDOW;

/// The last readings of one machine, for the stuck and drift rules.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    powers: VecDeque<f64>,
    /// (contributing signal, its z).
    zs: VecDeque<(usize, f64)>,
}

impl Recent {
    pub(super) fn push(&mut self, power: f64, z: f64, signal: usize, stuck_run: usize) {
        self.powers.push_back(power);
        self.zs.push_back((signal, z));
        while self.powers.len() > stuck_run {
            self.powers.pop_front();
        }
        while self.zs.len() > DRIFT_WINDOW {
            self.zs.pop_front();
        }
    }

    pub(super) fn stuck(&self, run: usize) -> bool {
        self.powers.len() == run && self.powers.iter().all(|p| *p == self.powers[0] && *p > 0.0)
    }

    pub(super) fn drifting(&self, signal: usize, z: f64) -> bool {
        if self.zs.len() < DRIFT_WINDOW || self.zs.iter().any(|(s, _)| *s != signal) {
            return false;
        }
        let mean = self.zs.iter().map(|(_, v)| v).sum::<f64>() / self.zs.len() as f64;
        mean.abs() >= 2.0 && mean.signum() == z.signum() && self.zs.iter().all(|(_, v)| v.signum() == z.signum())
    }
}

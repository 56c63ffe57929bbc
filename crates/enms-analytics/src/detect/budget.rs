//! The alarm budget on live data: the share of a rolling stretch of *data*
//! time (the readings' own timestamps, never the clock) that a detector
//! flagged. A model is trained to flag its contamination share of the
//! training readings; when the stream it judges now is flagged far more
//! often than that, the model no longer describes the machine — it is
//! *stale* and is refreshed (docs/analytics.md, *Budget control*).

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

/// A rolling window of judged readings, weighted by the hours each covers.
#[derive(Debug, Clone)]
pub struct Budget {
    window: Duration,
    /// (reading time, hours covered, flagged), oldest first.
    entries: VecDeque<(DateTime<Utc>, f64, bool)>,
    judged_h: f64,
    flagged_h: f64,
}

impl Budget {
    pub fn new(window: Duration) -> Self {
        Self { window, entries: VecDeque::new(), judged_h: 0.0, flagged_h: 0.0 }
    }

    /// Adds one judged reading; readings older than the window before the
    /// newest leave it.
    pub fn push(&mut self, at: DateTime<Utc>, hours: f64, flagged: bool) {
        let hours = if hours.is_finite() { hours.max(0.0) } else { 0.0 };
        self.entries.push_back((at, hours, flagged));
        self.judged_h += hours;
        if flagged {
            self.flagged_h += hours;
        }
        let newest = self.entries.iter().map(|e| e.0).max().unwrap_or(at);
        while let Some(&(t, h, f)) = self.entries.front() {
            if newest - t < self.window {
                break;
            }
            self.entries.pop_front();
            self.judged_h -= h;
            if f {
                self.flagged_h -= h;
            }
        }
    }

    /// Hours of data judged in the window.
    pub fn judged_hours(&self) -> f64 {
        self.judged_h.max(0.0)
    }

    /// The flagged share of the window's data time, once at least half the
    /// window is covered (before that a burst would read as a rate).
    pub fn share(&self) -> Option<f64> {
        let window_h = self.window.num_milliseconds() as f64 / 3.6e6;
        (self.judged_h >= 0.5 * window_h && self.judged_h > 0.0)
            .then(|| (self.flagged_h / self.judged_h).clamp(0.0, 1.0))
    }

    /// Separate runs of flagged readings in the window (a run cut by the
    /// window's start counts): one long fault is one run, a flood is many.
    pub fn runs(&self) -> usize {
        let mut runs = 0;
        let mut before = false;
        for &(_, _, flagged) in &self.entries {
            if flagged && !before {
                runs += 1;
            }
            before = flagged;
        }
        runs
    }

    /// Forgets everything (a new model starts its own count).
    pub fn reset(&mut self) {
        self.entries.clear();
        self.judged_h = 0.0;
        self.flagged_h = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::minutes(minutes)
    }

    #[test]
    fn the_share_is_of_data_time_in_the_window_and_needs_half_of_it() {
        let mut b = Budget::new(Duration::hours(4));
        for i in 0..7 {
            b.push(t(15 * i), 0.25, i == 3);
        }
        assert_eq!(b.share(), None, "1.75 h of a 4 h window");
        b.push(t(105), 0.25, false);
        assert!((b.share().unwrap() - 0.125).abs() < 1e-12);
        assert_eq!(b.runs(), 1);
        // Fine readings weigh what they cover: 0.25 h flagged in 5-second steps.
        for i in 0..180 {
            b.push(t(105) + Duration::seconds(5 * (i + 1)), 5.0 / 3600.0, true);
        }
        assert!((b.share().unwrap() - 0.5 / 2.25).abs() < 1e-9, "{:?}", b.share());
        assert_eq!(b.runs(), 2);
        // Four hours after the last of them, every earlier reading has left.
        b.push(t(120 + 240), 0.25, false);
        assert!((b.judged_hours() - 0.25).abs() < 1e-9);
        assert_eq!(b.share(), None);
    }
}

//! Models that follow the data: when a machine's anomaly model is refreshed
//! while readings stream in, and the task that runs those refreshes as
//! ordinary training jobs.
//!
//! The live detector (`live`) decides *when*, from the readings' own
//! timestamps only, so a stream replayed at thousands of readings per
//! second adapts exactly as it would live:
//!
//! - **By data** ([`Reason::Data`]): once `refresh_after` of data time has
//!   arrived since the model's training window ended, and at least
//!   `refresh_min_readings` readings. The nightly schedule stays as a floor.
//! - **Budget** ([`Reason::Budget`]): the flagged share of the last
//!   `budget_window` of data time is above `stale_factor` × the model's
//!   alarm budget while no episode is open — the model no longer describes
//!   the machine. A `system_alert` (`model_stale`) says so.
//! - **Shift** ([`Reason::Shift`]): one episode has stayed open for
//!   `accept_after` of data time: a lasting level shift, taken as the new
//!   normal. The model is trained on the data since it began (and later
//!   refreshes start no earlier). A `system_alert` (`level_shift_accepted`).
//!
//! While a machine's refresh runs, its new readings are held (up to
//! [`MAX_HELD`]) and judged by the new model once it is active, in order;
//! if the refresh fails they are judged by the old one. `refresher` runs
//! the refreshes as jobs. docs/analytics.md (*Refresh by data* and *Budget
//! control*) states the rules.

use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one};
use serde_json::{Value, json};
use uuid::Uuid;

/// Readings held for one machine while its refresh runs; beyond, the rest
/// are judged by the old model.
pub const MAX_HELD: usize = 100_000;
/// Refreshes waiting for the refresher.
pub const QUEUE: usize = 256;

/// The adaptation settings (`[analytics]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptation {
    /// Data time since the training window's end that makes a model due
    /// for a refresh.
    pub refresh_after: Duration,
    /// …and at least this many readings judged by it.
    pub refresh_min_readings: usize,
    /// The stretch of data time the live flagged share is measured over.
    pub budget_window: Duration,
    /// A model flagging more than this many times its budget is stale.
    pub stale_factor: f64,
    /// An episode open this long (data time) is a level shift: the new normal.
    pub accept_after: Duration,
}

impl Default for Adaptation {
    fn default() -> Self {
        let day = Duration::from_secs(86_400);
        Self { refresh_after: day, refresh_min_readings: 96, budget_window: day, stale_factor: 3.0, accept_after: day }
    }
}

impl Adaptation {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        above_zero("refresh_after", self.refresh_after)?;
        at_least_one("refresh_min_readings", self.refresh_min_readings)?;
        above_zero("budget_window", self.budget_window)?;
        above_zero("accept_after", self.accept_after)?;
        if !(self.stale_factor.is_finite() && self.stale_factor > 1.0 && self.stale_factor <= 100.0) {
            return Err(InvalidSetting::new(
                "stale_factor",
                format!("must be above 1 and at most 100 (times the alarm budget), got {}", self.stale_factor),
            ));
        }
        Ok(())
    }
}

/// Why a model is refreshed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Data,
    Budget { share: f64, budget: f64 },
    Shift { since: DateTime<Utc> },
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Budget { .. } => "budget",
            Self::Shift { .. } => "shift",
        }
    }

    /// What the refreshed model's metrics record of why.
    pub fn describe(&self, cutoff: DateTime<Utc>) -> Value {
        let mut v = json!({"reason": self.as_str(), "cutoff": cutoff});
        match self {
            Self::Data => {}
            Self::Budget { share, budget } => {
                v["live_flagged_share"] = json!(share);
                v["budget"] = json!(budget);
            }
            Self::Shift { since } => v["shift_since"] = json!(since),
        }
        v
    }
}

/// A refresh the live detector asks for: train on data before `cutoff`.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub machine: Uuid,
    pub cutoff: DateTime<Utc>,
    pub reason: Reason,
    /// The earliest data the new model may learn from (a level shift's start).
    pub floor: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_checked_by_name() {
        assert_eq!(Adaptation::default().validate(), Ok(()));
        let bad = [
            Adaptation { refresh_after: Duration::ZERO, ..Default::default() },
            Adaptation { refresh_min_readings: 0, ..Default::default() },
            Adaptation { budget_window: Duration::ZERO, ..Default::default() },
            Adaptation { accept_after: Duration::ZERO, ..Default::default() },
            Adaptation { stale_factor: 1.0, ..Default::default() },
            Adaptation { stale_factor: f64::NAN, ..Default::default() },
        ];
        let names: Vec<&str> = bad.iter().map(|a| a.validate().unwrap_err().setting).collect();
        assert_eq!(
            names,
            ["refresh_after", "refresh_min_readings", "budget_window", "accept_after", "stale_factor", "stale_factor"]
        );
    }
}

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
//! if the refresh fails they are judged by the old one. docs/analytics.md
//! (*Refresh by data* and *Budget control*) states the rules.

use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::JobError;
use crate::jobs::JobRequest;
use crate::training::{ANOMALY_DAYS, LeaveOut};
use crate::{Analytics, scheduler};

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

/// Runs the live detectors' refreshes as training jobs, one after another,
/// until the channel closes.
pub async fn run(analytics: Analytics, mut rx: mpsc::Receiver<Refresh>) {
    while let Some(refresh) = rx.recv().await {
        let machine = refresh.machine;
        let outcome = refresh_one(&analytics, &refresh).await;
        if let Err(e) = &outcome {
            tracing::warn!(%machine, reason = refresh.reason.as_str(), error = %e, "model refresh failed; the old model judges on");
        }
        // Judges what was held: by the new model when it was activated (its
        // activation already did), else by the old one.
        analytics.live.release(machine, Some(refresh.cutoff), outcome.is_err()).await;
    }
}

async fn refresh_one(a: &Analytics, r: &Refresh) -> Result<(), JobError> {
    let mut request = scheduler::retraining(a, r.machine, "anomaly").await;
    let floor = match r.floor {
        Some(f) => Some(f),
        None => a
            .store
            .active_model(r.machine, "anomaly")
            .await?
            .and_then(|m| m.metrics["window_floor"].as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok())),
    };
    let start = r.cutoff - chrono::Duration::days(ANOMALY_DAYS);
    request.start = Some(floor.map_or(start, |f| f.max(start)));
    request.end = Some(r.cutoff);
    request.activate = Some(true);
    let mut plan = request.plan("anomaly", None)?;
    plan.leave_out = match r.reason {
        Reason::Data => LeaveOut::Recent,
        Reason::Budget { .. } => LeaveOut::Open,
        Reason::Shift { .. } => LeaveOut::Nothing,
    };
    plan.window_floor = floor;
    plan.refresh = Some(r.reason.describe(r.cutoff));
    let params = serde_json::to_value(&plan).map_err(JobError::internal)?;
    let reason = match &r.reason {
        Reason::Data => "a day's worth of new data".to_owned(),
        Reason::Budget { share, budget } => {
            format!(
                "flagged {:.1} % of the last stretch of data against a budget of {:.1} %",
                100.0 * share,
                100.0 * budget
            )
        }
        Reason::Shift { since } => format!("a level shift since {} taken as the new normal", since.to_rfc3339()),
    };
    let request = JobRequest {
        machine_id: r.machine,
        model_type: "anomaly".into(),
        trigger_type: r.reason.as_str().into(),
        reason: Some(reason),
        params,
    };
    // A training already running for the machine (a manual one, the
    // nightly refresh): wait for it, then refresh on top.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let job = loop {
        match a.jobs.submit(request_clone(&request)).await {
            Err(JobError::InProgress { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other?,
        }
    };
    let done = a.jobs.wait(job.id).await?;
    match done.status {
        enms_store::JobStatus::Completed => Ok(()),
        status => Err(JobError::internal(format!(
            "refresh job {} {}: {}",
            done.id,
            status.as_str(),
            done.error_message.unwrap_or_default()
        ))),
    }
}

fn request_clone(r: &JobRequest) -> JobRequest {
    JobRequest {
        machine_id: r.machine_id,
        model_type: r.model_type.clone(),
        trigger_type: r.trigger_type.clone(),
        reason: r.reason.clone(),
        params: r.params.clone(),
    }
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

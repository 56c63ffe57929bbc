//! The task that runs the live detectors' model refreshes (`adapt`) as
//! ordinary training jobs, one after another: the training window, what it
//! leaves out and why, then the judging of the readings held meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::adapt::{Reason, Refresh};
use crate::error::JobError;
use crate::jobs::JobRequest;
use crate::training::{ANOMALY_DAYS, LeaveOut};
use crate::{Analytics, scheduler};

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

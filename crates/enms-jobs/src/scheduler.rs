//! The scheduler: batch detection every hour at :05 over the previous hour,
//! a daily retraining of every machine's baseline and anomaly model, and a
//! daily forecast job per machine (`forecast_updated` when each is done), on
//! cron-like schedules (`minute hour day-of-month month day-of-week`, each
//! `*`, `*/n`, a number or a comma list; UTC).
//!
//! A run never overlaps itself: detection runs are sequential in this task,
//! and retraining goes through the job runner, which refuses a second job for
//! the same machine and model type. With several instances on one database,
//! each slot is claimed in the store first, so it runs on one instance only.
//! A failed scheduled run raises a `system_alert`.

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use enms_core::event::EventType;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::detection;
use super::training::{DEFAULT_CONTAMINATION, TrainRequest};
use super::{Analytics, JobError};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// When to run hourly detection; `None` disables it.
    pub detect: Option<Cron>,
    /// When to retrain every machine's models; `None` disables it.
    pub retrain: Option<Cron>,
    /// When to refresh every machine's forecast; `None` disables it.
    pub forecast: Option<Cron>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            detect: Cron::parse("5 * * * *").ok(),
            retrain: Cron::parse("30 2 * * *").ok(),
            forecast: Cron::parse("15 3 * * *").ok(),
        }
    }
}

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    text: String,
    fields: [Vec<u32>; 5],
}

const RANGES: [(u32, u32, &str); 5] =
    [(0, 59, "minute"), (0, 23, "hour"), (1, 31, "day of month"), (1, 12, "month"), (0, 6, "day of week")];

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("{text:?}: a schedule has five fields (minute hour day month weekday)"));
        }
        let mut fields: [Vec<u32>; 5] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi, name) = RANGES[i];
            fields[i] =
                field(part, lo, hi).ok_or_else(|| format!("{text:?}: invalid {name} field {part:?} ({lo}-{hi})"))?;
        }
        Ok(Self { text: text.to_owned(), fields })
    }

    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let v = [t.minute(), t.hour(), t.day(), t.month(), t.weekday().num_days_from_sunday()];
        self.fields.iter().zip(v).all(|(f, v)| f.contains(&v))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn field(part: &str, lo: u32, hi: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for item in part.split(',') {
        if item == "*" {
            out.extend(lo..=hi);
        } else if let Some(step) = item.strip_prefix("*/") {
            let step: u32 = step.parse().ok().filter(|s| *s > 0)?;
            out.extend((lo..=hi).step_by(step as usize));
        } else {
            let v: u32 = item.parse().ok().filter(|v| (lo..=hi).contains(v))?;
            out.push(v);
        }
    }
    Some(out)
}

/// Runs until `stop`, checking the schedules at the start of every minute.
pub async fn run(analytics: Analytics, stop: CancellationToken) {
    let schedule = analytics.config.schedule.clone();
    if schedule.detect.is_none() && schedule.retrain.is_none() && schedule.forecast.is_none() {
        return;
    }
    loop {
        let now = Utc::now();
        let next = now.duration_trunc(Duration::minutes(1)).unwrap_or(now) + Duration::minutes(1);
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        if schedule.detect.as_ref().is_some_and(|c| c.matches(next)) && claim(&analytics, "detect", next).await {
            hourly_detection(&analytics, next).await;
        }
        if schedule.retrain.as_ref().is_some_and(|c| c.matches(next)) && claim(&analytics, "retrain", next).await {
            retrain_all(&analytics).await;
        }
        if schedule.forecast.as_ref().is_some_and(|c| c.matches(next)) && claim(&analytics, "forecast", next).await {
            forecast_all(&analytics).await;
        }
    }
}

/// True when this instance won the slot (false also when the store cannot
/// say: running twice is worse than skipping once, and that is alerted).
async fn claim(a: &Analytics, name: &str, slot: DateTime<Utc>) -> bool {
    match a.store.claim_scheduled_run(name, slot, a.jobs.instance()).await {
        Ok(won) => won,
        Err(e) => {
            alert(a, &format!("scheduled {name} at {slot} skipped: the database did not answer ({e})")).await;
            false
        }
    }
}

/// Detection over the hour before the current one, for every machine.
pub async fn hourly_detection(a: &Analytics, now: DateTime<Utc>) {
    let end = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let start = end - Duration::hours(1);
    let Ok(machines) = a.store.list_machines().await else { return };
    for m in machines {
        if m.last_reading_at.is_none_or(|t| t < start) {
            continue;
        }
        let use_baseline = a.store.active_model(m.id, "baseline").await.ok().flatten().is_some();
        let plan =
            detection::DetectPlan { start, end, contamination: DEFAULT_CONTAMINATION, use_baseline, signals: None };
        match detection::detect(&a.live, m.id, &plan).await {
            Ok(out) => {
                tracing::info!(machine = %m.name, found = out.found.len(), saved = out.saved, "scheduled detection")
            }
            Err(e) => alert(a, &format!("scheduled detection for {} failed: {}", m.name, e)).await,
        }
    }
}

/// Queues baseline and anomaly training for every machine.
pub async fn retrain_all(a: &Analytics) {
    let Ok(machines) = a.store.list_machines().await else { return };
    for m in machines {
        for kind in ["baseline", "anomaly"] {
            if a.jobs.is_busy(m.id, kind) {
                continue;
            }
            let request = retraining(a, m.id, kind).await;
            let queued = match request.into_job(m.id, kind, "scheduled", Some("daily retraining".into()), None) {
                Ok((_, req)) => a.jobs.submit(req).await,
                Err(e) => Err(e),
            };
            match queued {
                // Another instance (or a manual request) got there first.
                Err(JobError::InProgress { .. }) => {}
                Err(e) => {
                    let message = format!("scheduled {kind} training for {} not queued: {}", m.name, e);
                    alert(a, &message).await
                }
                Ok(_) => {}
            }
        }
    }
}

/// Queues a forecast job for every machine with a reading in the last day
/// (a machine with too little history fails its job, which says so).
pub async fn forecast_all(a: &Analytics) {
    let Ok(machines) = a.store.list_machines().await else { return };
    let recent = Utc::now() - Duration::days(1);
    for m in machines.iter().filter(|m| m.last_reading_at.is_some_and(|t| t >= recent)) {
        match super::forecast::submit(a, m.id, super::forecast::DEFAULT_HORIZON_H, "scheduled", "daily forecast").await
        {
            Ok(_) | Err(JobError::InProgress { .. }) => {}
            Err(e) => alert(a, &format!("scheduled forecast for {} not queued: {}", m.name, e)).await,
        }
    }
}

/// The rolling refresh: the last 14 days up to now, with the signals and
/// the budget of the machine's active model, so a model asked for keeps
/// judging what it was asked to judge.
pub(crate) async fn retraining(a: &Analytics, machine: uuid::Uuid, kind: &str) -> TrainRequest {
    let mut request = TrainRequest { use_baseline: Some(kind == "anomaly"), ..Default::default() };
    if kind == "anomaly"
        && let Ok(Some(active)) = a.store.active_model(machine, "anomaly").await
    {
        let m = &active.metrics;
        request.contamination = m["contamination"].as_f64();
        request.use_baseline = m["uses_baseline"].as_bool().or(request.use_baseline);
        request.features = m["signals"]
            .as_array()
            .filter(|_| m["context"] == false)
            .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
    }
    request
}

async fn alert(a: &Analytics, message: &str) {
    tracing::warn!(%message, "scheduled run failed");
    let data =
        json!({"alert_type": "scheduled_run_failed", "message": message, "severity": "warning", "source": "scheduler"});
    if let Err(e) = a.outlet.publish(EventType::SystemAlert, data).await {
        tracing::warn!(error = %e, "system_alert not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cron_fields() {
        let c = Cron::parse("5 * * * *").unwrap();
        assert!(c.matches(Utc.with_ymd_and_hms(2026, 11, 22, 13, 5, 0).unwrap()));
        assert!(!c.matches(Utc.with_ymd_and_hms(2026, 11, 22, 13, 6, 0).unwrap()));
        let c = Cron::parse("*/15 2,14 * * 1").unwrap();
        assert!(c.matches(Utc.with_ymd_and_hms(2026, 11, 23, 14, 45, 0).unwrap()), "a Monday");
        assert!(!c.matches(Utc.with_ymd_and_hms(2026, 11, 22, 14, 45, 0).unwrap()), "a Sunday");
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("minute"));
        assert!(Cron::parse("* * *").is_err());
    }
}

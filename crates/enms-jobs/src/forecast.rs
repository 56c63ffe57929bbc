//! A machine's load forecast: its hour cells over the last
//! [`HISTORY_DAYS`] days made into an hourly series, forecast and scored by
//! `enms_analytics::forecast`, with the drift watch against its rated
//! power. Read-only and fast (a few thousand cells), so the route computes
//! it on request, like KPIs; a forecast job (model type `forecast`, queued
//! by the daily schedule or `POST /api/v1/forecast/train/{id}`) computes
//! the same, keeps it as a model version — the history of what was
//! forecast — and announces it as `forecast_updated`.

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_analytics::forecast::{self, Forecast, ForecastError, Hourly, Threshold};
use enms_core::MachineRecord;
use enms_core::event::EventType;
use enms_store::{JobRecord, ModelRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::JobError;
use crate::jobs::{Done, JobRequest, Tracker};
use crate::{Analytics, blocking, window_cells};

/// The model type of forecast jobs and of the forecasts they keep.
pub const MODEL_TYPE: &str = "forecast";
/// What a scheduled forecast covers: a week.
pub const DEFAULT_HORIZON_H: usize = 168;

/// A forecast job's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForecastPlan {
    pub horizon_hours: usize,
}

/// Queues a forecast job for the machine.
pub async fn submit(
    a: &Analytics,
    machine: Uuid,
    horizon_hours: usize,
    trigger: &str,
    reason: &str,
) -> Result<JobRecord, JobError> {
    forecast::check_horizon(horizon_hours)?;
    let params = serde_json::to_value(ForecastPlan { horizon_hours }).map_err(JobError::internal)?;
    a.jobs
        .submit(JobRequest {
            machine_id: machine,
            model_type: MODEL_TYPE.into(),
            trigger_type: trigger.into(),
            reason: Some(reason.into()),
            params,
        })
        .await
}

/// The job: forecast, keep it as the machine's active forecast version,
/// announce it.
pub async fn run_job(t: &mut Tracker, cancel: &tokio_util::sync::CancellationToken) -> Result<Done, String> {
    let plan: ForecastPlan =
        serde_json::from_value(t.job.params.clone()).map_err(|e| format!("invalid job parameters: {e}"))?;
    let machine = match t.store().get_machine(t.job.machine_id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(format!("machine {} no longer exists", t.job.machine_id)),
        Err(e) => return Err(e.to_string()),
    };
    t.progress(10.0, "reading the hour cells".into()).await;
    let f = machine_forecast(t.store().as_ref(), &machine, plan.horizon_hours, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    if cancel.is_cancelled() {
        return Err("cancelled".into());
    }
    let day1 = f.forecast.backtest.accuracy.first().cloned();
    let metrics = json!({
        "method": f.forecast.method,
        "origin": f.forecast.origin,
        "horizon_hours": f.forecast.horizon_hours,
        "expected_kwh": f.forecast.expected_kwh,
        "day_ahead": day1,
        "backtest_origins": f.forecast.backtest.origins,
    });
    t.progress(
        80.0,
        format!("forecast by {:?}, backtested over {} days", f.forecast.method, f.forecast.backtest.origins),
    )
    .await;
    let record = ModelRecord {
        id: Uuid::new_v4(),
        machine_id: machine.id,
        model_type: MODEL_TYPE.into(),
        version: 0,
        active: false,
        created_at: Utc::now(),
        job_id: Some(t.job.id),
        metrics: metrics.clone(),
        body: serde_json::to_value(&f).map_err(|e| e.to_string())?,
    };
    let version = t.store().insert_model(&record).await.map_err(|e| e.to_string())?;
    t.store().activate_model(record.id).await.map_err(|e| e.to_string())?;
    let data = json!({
        "machine_id": machine.id,
        "machine_name": machine.name,
        "method": f.forecast.method,
        "origin": f.forecast.origin.to_rfc3339(),
        "horizon_hours": f.forecast.horizon_hours,
        "expected_kwh": f.forecast.expected_kwh,
        "model_id": record.id.to_string(),
        "accuracy": day1,
        "threshold": f.threshold,
    });
    if let Err(e) = t.outlet().publish(EventType::ForecastUpdated, data).await {
        tracing::warn!(error = %e, "forecast_updated not published");
    }
    Ok(Done {
        model_id: Some(record.id),
        message: format!(
            "forecast version {version}: {:.0} kWh over {} h",
            f.forecast.expected_kwh, plan.horizon_hours
        ),
        metrics,
    })
}

/// History read: four weeks of profile before two weeks of backtest
/// origins, and two weeks to spare.
pub const HISTORY_DAYS: i64 = 56;
/// Days of daily peaks the drift watch fits.
pub const THRESHOLD_DAYS: usize = 14;
/// An hour counts when it holds at least this much of readings.
const MIN_COVERED_H: f64 = 0.5;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MachineForecast {
    pub machine_id: Uuid,
    pub machine_name: String,
    /// What is forecast: the hourly mean of `power_kw` (kW, which is also
    /// the hour's kWh).
    pub signal: &'static str,
    pub unit: &'static str,
    #[serde(flatten)]
    pub forecast: Forecast,
    /// When the rising daily peak reaches the machine's rated power, at the
    /// trend of the last 14 days; absent without a rated power.
    pub threshold: Option<Threshold>,
}

/// Forecasts `horizon` hours after the machine's last complete hour (its
/// newest reading's hour, or `now`'s, whichever is earlier).
pub async fn machine_forecast(
    store: &dyn Store,
    machine: &MachineRecord,
    horizon: usize,
    now: DateTime<Utc>,
) -> Result<MachineForecast, JobError> {
    let hour = Duration::hours(1);
    let insufficient = |has_days: f64| {
        JobError::from(ForecastError::InsufficientHistory { needs_days: forecast::MIN_HISTORY_DAYS, has_days })
    };
    let last = machine.last_reading_at.ok_or_else(|| insufficient(0.0))?;
    let end = last.min(now).duration_trunc(hour).map_err(JobError::internal)?;
    let series = hourly_series(store, machine.id, end).await?;
    let rated = machine.rated_power_kw;
    let (f, threshold) = blocking(move || {
        let f = forecast::forecast(&series, horizon)?;
        let t = rated.and_then(|r| forecast::time_to_threshold(&series, "rated_power_kw", r, THRESHOLD_DAYS));
        Ok::<_, ForecastError>((f, t))
    })
    .await??;
    Ok(MachineForecast {
        machine_id: machine.id,
        machine_name: machine.name.clone(),
        signal: "power_kw",
        unit: "kW",
        forecast: f,
        threshold,
    })
}

/// The machine's hourly mean power over the [`HISTORY_DAYS`] before `end`
/// (an hour), from its hour cells; hours under half covered are gaps, and
/// the hours before its first reading are left out.
pub async fn hourly_series(store: &dyn Store, machine: Uuid, end: DateTime<Utc>) -> Result<Hourly, JobError> {
    let start = end - Duration::days(HISTORY_DAYS);
    let cells = window_cells(store, machine, start, end).await?;
    let mut values = vec![None; (HISTORY_DAYS * 24) as usize];
    for c in cells.iter().filter(|c| c.covered_h >= MIN_COVERED_H) {
        let i = (c.start - start).num_hours();
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i)) {
            *slot = Some(c.kwh / c.covered_h);
        }
    }
    let first = values.iter().position(Option::is_some).unwrap_or(values.len());
    Ok(Hourly { start: start + Duration::hours(first as i64), values: values.split_off(first) })
}

impl From<ForecastError> for JobError {
    fn from(e: ForecastError) -> Self {
        let message = e.to_string();
        match e {
            ForecastError::InsufficientHistory { .. } => Self::InsufficientData { field: "machine_id".into(), message },
            ForecastError::Horizon(_) => Self::Invalid { code: "out_of_range", field: "horizon_hours".into(), message },
        }
    }
}

//! A machine's load forecast: its hour cells over the last
//! [`HISTORY_DAYS`] days made into an hourly series, forecast and scored by
//! `enms_analytics::forecast`, with the drift watch against its rated
//! power. Read-only and fast (a few thousand cells), so the route computes
//! it on request, like KPIs.

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_analytics::forecast::{self, Forecast, ForecastError, Hourly, Threshold};
use enms_core::MachineRecord;
use enms_store::Store;
use serde::Serialize;
use uuid::Uuid;

use crate::error::JobError;
use crate::{blocking, window_cells};

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
    let start = end - Duration::days(HISTORY_DAYS);
    let cells = window_cells(store, machine.id, start, end).await?;
    let mut values = vec![None; (HISTORY_DAYS * 24) as usize];
    for c in cells.iter().filter(|c| c.covered_h >= MIN_COVERED_H) {
        let i = (c.start - start).num_hours();
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i)) {
            *slot = Some(c.kwh / c.covered_h);
        }
    }
    // Leading hours before the machine's first reading are no history.
    let first = values.iter().position(Option::is_some).unwrap_or(values.len());
    let series = Hourly { start: start + Duration::hours(first as i64), values: values.split_off(first) };
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

impl From<ForecastError> for JobError {
    fn from(e: ForecastError) -> Self {
        let message = e.to_string();
        match e {
            ForecastError::InsufficientHistory { .. } => Self::InsufficientData { field: "machine_id".into(), message },
            ForecastError::Horizon(_) => Self::Invalid { code: "out_of_range", field: "horizon_hours".into(), message },
        }
    }
}

//! The analytics service of enms: training jobs with live progress, batch
//! and streaming anomaly detection with episodes, and the scheduler that
//! refreshes models — over the store, without HTTP or a bus of its own.
//!
//! The numerical work lives in `enms-analytics` (no I/O); this crate loads
//! data, runs that work on blocking threads, persists results and hands the
//! events that tell clients about them to an [`Outlet`] (the server's event
//! bus). Errors are [`JobError`]s; the server maps them to HTTP.
//!
//! Layout: `jobs` (the runner: queue, leases, takeover, cancel) runs
//! `training` (baseline and anomaly models) and `detection` (batch windows,
//! long ones as jobs); `live` scores each ingested reading against the
//! active model and tracks episodes; `scheduler` submits the nightly
//! refreshes and drift retraining; `adapt` decides when models are
//! refreshed as data arrives and `refresher` runs those refreshes.

pub mod adapt;
pub mod detection;
pub mod error;
pub mod explain;
pub mod forecast;
pub mod jobs;
pub mod live;
pub mod outlet;
pub mod refresher;
pub mod retention;
pub mod scheduler;
pub mod thresholds;
pub mod training;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use enms_analytics::Sample;
use enms_analytics::cells::Cell;
use enms_analytics::detect::Signal;
use enms_analytics::kpi::Tariff;
use enms_analytics::series::{self, Interval};
use enms_core::Resolution;
use enms_core::setting::{InvalidSetting, at_least_one};
use enms_store::{ReadingPoint, ReadingQuery, Store};
use uuid::Uuid;

pub use error::JobError;

/// What the models table keeps: the trained types (`jobs::MODEL_TYPES`),
/// and the forecasts that forecast jobs keep as versions.
pub const KEPT_MODEL_TYPES: [&str; 3] = ["baseline", "anomaly", forecast::MODEL_TYPE];
pub use jobs::Jobs;
pub use live::Live;
pub use outlet::Outlet;

/// Most raw readings one analysis loads (a year of 1-minute data).
pub const MAX_ROWS: u32 = 600_000;

#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// Jobs waiting to run; a full queue answers 503.
    pub job_queue: usize,
    /// Jobs running at once.
    pub job_concurrency: usize,
    pub tariff: Tariff,
    pub schedule: scheduler::Schedule,
    /// Score every ingested reading against its machine's active anomaly model.
    pub streaming: bool,
    /// When live detectors refresh their models (data, budget, level shift).
    pub adapt: adapt::Adaptation,
}

impl AnalyticsConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one("job_queue", self.job_queue)?;
        at_least_one("job_concurrency", self.job_concurrency)?;
        self.adapt.validate()?;
        let t = &self.tariff;
        let prices_ok = [t.peak_price, t.offpeak_price].iter().all(|p| p.is_finite() && *p >= 0.0);
        if !prices_ok || t.peak_start_hour > 24 || t.peak_end_hour > 24 || t.peak_start_hour > t.peak_end_hour {
            return Err(InvalidSetting::new(
                "tariff",
                "prices must be ≥ 0 and 0 ≤ peak_start_hour ≤ peak_end_hour ≤ 24",
            ));
        }
        Ok(())
    }
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            job_queue: 64,
            job_concurrency: 1,
            tariff: Tariff::default(),
            schedule: scheduler::Schedule::default(),
            streaming: true,
            adapt: adapt::Adaptation::default(),
        }
    }
}

#[derive(Clone)]
pub struct Analytics {
    pub store: Arc<dyn Store>,
    pub outlet: Arc<dyn Outlet>,
    pub jobs: Jobs,
    pub live: Live,
    pub config: Arc<AnalyticsConfig>,
}

impl Analytics {
    pub fn new(store: Arc<dyn Store>, outlet: Arc<dyn Outlet>, config: AnalyticsConfig) -> Self {
        let config = Arc::new(config);
        let live = Live::with_policy(store.clone(), outlet.clone(), config.adapt.clone());
        let jobs = Jobs::new(store.clone(), outlet.clone(), live.clone(), &config, run_job);
        Self { store, outlet, jobs, live, config }
    }

    /// Takes over jobs a stopped instance left behind and loads the active
    /// models.
    pub async fn start(&self) -> Result<(), enms_store::StoreError> {
        if let Some(rx) = self.live.take_refreshes() {
            tokio::spawn(refresher::run(self.clone(), rx));
        }
        self.jobs.sweep().await?;
        self.live.reload_all().await
    }
}

/// The work of a job, by its model type: detection windows, else training.
pub fn run_job<'a>(
    t: &'a mut jobs::Tracker,
    cancel: &'a tokio_util::sync::CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<jobs::Done, String>> + Send + 'a>> {
    Box::pin(async move {
        if t.job.model_type == "detection" {
            detection::run_job(t, cancel).await
        } else if t.job.model_type == forecast::MODEL_TYPE {
            forecast::run_job(t, cancel).await
        } else {
            training::run(t, cancel).await
        }
    })
}

/// Refuses a window that needs raw readings from before the raw floor
/// (retention pruned them): said plainly, instead of an answer computed
/// over what happens to remain.
pub async fn require_raw(store: &dyn Store, start: DateTime<Utc>) -> Result<(), JobError> {
    if let Some(floor) = store.retention_floors().await?.raw
        && start.timestamp_millis() < floor
    {
        let floor = enms_core::timestamp::from_ms(floor);
        return Err(JobError::invalid(
            "past_retention",
            "start",
            format!(
                "this needs raw readings, and those before {} were pruned (retention.raw); start at or after it",
                floor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    Ok(())
}

/// Raw readings of one machine in `[start, end)`, oldest first.
pub async fn load_samples(
    store: &dyn Store,
    machine_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Sample>, JobError> {
    require_raw(store, start).await?;
    let query = ReadingQuery { machine_id, start, end, resolution: Resolution::Raw, limit: MAX_ROWS };
    let points = store.query_readings(&query).await?;
    Ok(points.iter().map(sample_of).collect())
}

/// The hour cells (`enms_analytics::cells`) of one machine's intervals
/// whose middle falls in `[start, end)`: whole hours from the store's cells
/// (`period_1h`: a year is 8,760 rows, whatever the meter's interval), the
/// unaligned edges from the raw readings around them, cut by the same rule.
/// KPIs and baseline training read their windows through this.
pub async fn window_cells(
    store: &dyn Store,
    machine: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Cell>, JobError> {
    let hour = chrono::Duration::hours(1);
    // Whole hours inside the window (any time chrono holds, before 1970 too).
    let h = hour.num_milliseconds();
    let first = enms_core::timestamp::from_ms((start.timestamp_millis() + h - 1).div_euclid(h) * h);
    let last = enms_core::timestamp::from_ms(end.timestamp_millis().div_euclid(h) * h);
    let mut edges = Vec::new();
    let mut out = Vec::new();
    if first < last {
        edges.extend([(start, first), (last, end)].into_iter().filter(|(a, b)| a < b));
        if let Some(floor) = store.retention_floors().await?.hour
            && first.timestamp_millis() < floor
        {
            return Err(JobError::invalid(
                "past_retention",
                "start",
                format!(
                    "hourly figures before {} were pruned (retention.hour); start at or after it",
                    enms_core::timestamp::from_ms(floor).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ));
        }
        out.extend(store.period_cells(machine, first, last).await?.into_iter().map(cell));
    } else {
        edges.push((start, end));
    }
    for (from, to) in edges {
        // Every interval whose middle is in [from, to) ends within half an
        // hour after `to`, and starts at most an hour before `from`.
        let samples = load_samples(store, machine, from - hour, to + hour / 2).await?;
        out.extend(enms_analytics::cells::cells(&samples, from, to));
    }
    // An edge's cells are hours the stored ones do not hold (the head
    // edge's is the hour before `first`, the tail's is `last`).
    out.sort_by_key(|c| c.start);
    Ok(out)
}

fn cell(c: enms_store::periods::PeriodCell) -> Cell {
    Cell {
        start: c.start,
        readings: c.readings,
        covered_h: c.covered_h,
        kwh: c.kwh,
        units: c.units,
        operating_h: c.operating_h,
        temp_weighted: c.temp_weighted,
        temp_h: c.temp_h,
        peak_kw: c.peak_kw,
        peak_at: c.peak_at,
    }
}

/// Raw readings of one machine in `[start, end)` as an anomaly model sees
/// them: the intervals, and per interval the value of each signal (NaN where
/// the reading has none), row-major.
pub struct SignalRows {
    pub rows: Vec<Interval>,
    pub values: Vec<f64>,
}

pub async fn load_signal_rows(
    store: &dyn Store,
    machine_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    signals: &[Signal],
) -> Result<SignalRows, JobError> {
    require_raw(store, start).await?;
    let query = ReadingQuery { machine_id, start, end, resolution: Resolution::Raw, limit: MAX_ROWS };
    let points = store.query_readings(&query).await?;
    Ok(signal_rows(&points, signals))
}

/// Pairs readings with their intervals and signal values.
pub fn signal_rows(points: &[ReadingPoint], signals: &[Signal]) -> SignalRows {
    let samples: Vec<Sample> = points.iter().map(sample_of).collect();
    let indexed = series::indexed_intervals(&samples);
    let mut values = Vec::with_capacity(indexed.len() * signals.len());
    for (i, _) in &indexed {
        let p = &points[*i];
        values.extend(signals.iter().map(|s| point_value(p, s).unwrap_or(f64::NAN)));
    }
    SignalRows { rows: indexed.into_iter().map(|(_, iv)| iv).collect(), values }
}

fn sample_of(p: &ReadingPoint) -> Sample {
    Sample {
        timestamp: p.timestamp,
        power_kw: p.power_kw,
        production_units: p.production_units,
        outdoor_temp_c: p.outdoor_temp_c,
    }
}

/// A signal's value in a stored reading.
pub fn point_value(p: &ReadingPoint, signal: &Signal) -> Option<f64> {
    signal.pick(p.power_kw, p.energy_kwh, p.production_units, p.outdoor_temp_c, |name| {
        p.extra.as_ref().and_then(|e| e.get(name)).and_then(serde_json::Value::as_f64)
    })
}

/// A signal's value in an ingested reading.
pub fn reading_value(r: &enms_core::Reading, signal: &Signal) -> Option<f64> {
    signal.pick(r.power_kw, r.energy_kwh, r.production_units, r.outdoor_temp_c, |name| r.extra.get(name).copied())
}

/// Runs CPU-bound analytics off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f).await.map_err(JobError::internal)
}

//! Training jobs, step by step: load readings, build features, fit,
//! validate, save (and activate). Each step is reported when it has
//! actually happened; cancellation is honoured between steps.

use chrono::{DateTime, Duration, Utc};
use enms_analytics::baseline::{BaselineModel, BaselineSpec, Granularity, Variable};
use enms_analytics::detect::{AnomalyModel, DetectError, ModelSpec, Signal, check_training};
use enms_store::ModelRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::jobs::{Done, JobRequest, Tracker};
use super::{blocking, load_signal_rows};
use crate::error::JobError;

/// Default baseline period, ending now.
pub const BASELINE_DAYS: i64 = 30;
/// Default training window of anomaly models.
pub const ANOMALY_DAYS: i64 = 14;
pub const DEFAULT_CONTAMINATION: f64 = 0.01;

/// Body of `POST /api/v1/baseline/train/{machine_id}` and
/// `POST /api/v1/anomaly/train/{machine_id}` (every field optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Default: `end` minus 30 days (baseline) or 14 days (anomaly).
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub start: Option<DateTime<Utc>>,
    /// Default: just after the machine's newest reading (now when it has
    /// none), so imported history trains without naming dates.
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub end: Option<DateTime<Utc>>,
    /// Default: chosen from the data.
    #[schema(value_type = Option<enms_analytics::series::Granularity>)]
    pub granularity: Option<String>,
    /// Regressors; default chosen automatically.
    #[schema(value_type = Option<Vec<enms_analytics::baseline::Variable>>)]
    pub variables: Option<Vec<String>>,
    /// Degree-day base temperatures; default searched.
    #[schema(minimum = -30.0, maximum = 40.0)]
    pub heating_base_c: Option<f64>,
    #[schema(minimum = -30.0, maximum = 40.0)]
    pub cooling_base_c: Option<f64>,
    /// Anomaly models: the expected share of anomalies.
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub contamination: Option<f64>,
    /// Anomaly models: judge the residuals of the active baseline.
    pub use_baseline: Option<bool>,
    /// Anomaly models: the signals judged together — `power_kw`,
    /// `energy_kwh`, `production_units`, `outdoor_temp_c`, `extra.<name>`.
    /// Default: power, with time of day, weekday, production and
    /// temperature as context.
    #[schema(min_items = 1, max_items = 16)]
    pub features: Option<Vec<String>>,
    /// Activate the new model when it is saved. Default: baselines when
    /// they pass Guideline 14 or the machine has none active; anomaly models
    /// always.
    pub activate: Option<bool>,
}

/// Body of `POST /api/v1/anomaly/train/{machine_id}` (every field optional):
/// the anomaly-model fields of [`TrainRequest`].
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyTrainRequest {
    /// Default: `end` minus 14 days.
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub start: Option<DateTime<Utc>>,
    /// Default: just after the machine's newest reading (now when it has none).
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub end: Option<DateTime<Utc>>,
    /// The alarm budget: at most this share of the training readings is
    /// flagged; default 0.01.
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub contamination: Option<f64>,
    /// Judge power's residuals against the active baseline; default false.
    pub use_baseline: Option<bool>,
    /// The signals judged together — `power_kw`, `energy_kwh`,
    /// `production_units`, `outdoor_temp_c`, `extra.<name>`. Default: power,
    /// with time of day, weekday, production and temperature as context.
    #[schema(min_items = 1, max_items = 16)]
    pub features: Option<Vec<String>>,
    /// Activate the new model when it is saved; default true.
    pub activate: Option<bool>,
}

impl From<AnomalyTrainRequest> for TrainRequest {
    fn from(r: AnomalyTrainRequest) -> Self {
        Self {
            start: r.start,
            end: r.end,
            contamination: r.contamination,
            use_baseline: r.use_baseline,
            features: r.features,
            activate: r.activate,
            ..Default::default()
        }
    }
}

/// A validated request, as stored in the job's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub spec: BaselineSpec,
    pub contamination: f64,
    pub use_baseline: bool,
    pub activate: Option<bool>,
    #[serde(default)]
    pub signals: Option<Vec<Signal>>,
    /// Anomaly models: which flagged stretches of the window are kept out
    /// of training (refreshes choose; requests get the default).
    #[serde(default)]
    pub leave_out: LeaveOut,
    /// Anomaly models: the earliest data later refreshes may learn from (a
    /// level shift's start), carried in the model's metrics.
    #[serde(default)]
    pub window_floor: Option<DateTime<Utc>>,
    /// Why a live detector asked for this refresh, for the model's metrics.
    #[serde(default)]
    pub refresh: Option<Value>,
}

/// Which flagged stretches of the training window are left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveOut {
    /// Episodes still open or ended within [`RECENT_EPISODE`] of the end
    /// (the default): an ongoing fault is not learnt as normal.
    #[default]
    Recent,
    /// Only the episode still open at the end: a stale model learns the
    /// flagged stretches that were the machine's normal after all.
    Open,
    /// Nothing: a level shift taken as the new normal.
    Nothing,
}

/// Most signals one anomaly model judges.
pub const MAX_FEATURES: usize = 16;

impl TrainRequest {
    /// `data_end` is the machine's newest reading, if any.
    pub fn plan(self, model_type: &str, data_end: Option<DateTime<Utc>>) -> Result<Plan, JobError> {
        let end = self.end.unwrap_or_else(|| data_end.map_or_else(Utc::now, |t| t + Duration::milliseconds(1)));
        let days = if model_type == "anomaly" { ANOMALY_DAYS } else { BASELINE_DAYS };
        let start = self.start.unwrap_or(end - Duration::days(days));
        if start >= end {
            return Err(JobError::invalid("invalid_range", "start", format!("start {start} must be before end {end}")));
        }
        let granularity = self
            .granularity
            .map(|g| {
                Granularity::parse(&g).ok_or_else(|| {
                    JobError::invalid(
                        "invalid_granularity",
                        "granularity",
                        format!("granularity must be hourly or daily, got {g:?}"),
                    )
                })
            })
            .transpose()?;
        let variables = self
            .variables
            .map(|vs| {
                vs.iter()
                    .map(|v| {
                        Variable::parse(v).ok_or_else(|| {
                            JobError::invalid(
                                "invalid_variable",
                                "variables",
                                format!("unknown variable {v:?}; use production, hdd, cdd or operating_hours"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        for (field, base) in [("heating_base_c", self.heating_base_c), ("cooling_base_c", self.cooling_base_c)] {
            if base.is_some_and(|b| !(-30.0..=40.0).contains(&b)) {
                return Err(JobError::invalid("out_of_range", field, format!("{field} must be between -30 and 40 °C")));
            }
        }
        let contamination = check_contamination(self.contamination.unwrap_or(DEFAULT_CONTAMINATION))?;
        let signals = self.features.map(|names| parse_features(&names)).transpose()?;
        if signals.is_some() && model_type != "anomaly" {
            return Err(JobError::invalid("invalid_parameter", "features", "features apply to anomaly models only"));
        }
        Ok(Plan {
            start,
            end,
            spec: BaselineSpec {
                granularity,
                variables,
                heating_base_c: self.heating_base_c,
                cooling_base_c: self.cooling_base_c,
            },
            contamination,
            use_baseline: self.use_baseline.unwrap_or(false),
            activate: self.activate,
            signals,
            leave_out: LeaveOut::default(),
            window_floor: None,
            refresh: None,
        })
    }
}

/// Parses feature names; unknown or repeated ones are refused by name.
pub fn parse_features(names: &[String]) -> Result<Vec<Signal>, JobError> {
    if names.is_empty() || names.len() > MAX_FEATURES {
        return Err(JobError::invalid(
            "invalid_feature",
            "features",
            format!("features lists 1 to {MAX_FEATURES} signals, got {}", names.len()),
        ));
    }
    let mut out: Vec<Signal> = Vec::with_capacity(names.len());
    for n in names {
        let s = Signal::parse(n).map_err(|e| JobError::invalid("invalid_feature", "features", e.to_string()))?;
        if out.contains(&s) {
            return Err(JobError::invalid("invalid_feature", "features", format!("feature {n:?} is listed twice")));
        }
        out.push(s);
    }
    Ok(out)
}

impl TrainRequest {
    /// Validates the request into a job for the runner; `data_end` is the
    /// machine's newest reading.
    pub fn into_job(
        self,
        machine_id: Uuid,
        model_type: &str,
        trigger_type: &str,
        reason: Option<String>,
        data_end: Option<DateTime<Utc>>,
    ) -> Result<(Plan, JobRequest), JobError> {
        let plan = self.plan(model_type, data_end)?;
        let params = serde_json::to_value(&plan).map_err(JobError::internal)?;
        Ok((
            plan,
            JobRequest { machine_id, model_type: model_type.into(), trigger_type: trigger_type.into(), reason, params },
        ))
    }
}

/// What an anomaly model's training would fail on, checked before the job
/// is stored: too few readings in the window, features that no reading
/// carries or that never change. Trains nothing.
pub async fn precheck_anomaly(store: &dyn enms_store::Store, machine: Uuid, plan: &Plan) -> Result<(), JobError> {
    let spec = ModelSpec { signals: plan.signals.clone(), contamination: plan.contamination, seed: 0 };
    let signals = AnomalyModel::signals_of(&spec);
    let data = load_signal_rows(store, machine, plan.start, plan.end, &signals).await?;
    match check_training(data.rows.len(), &data.values, &signals) {
        Err(DetectError::InsufficientData { have, need }) => Err(JobError::InsufficientData {
            field: "start".into(),
            message: format!(
                "the window from {} to {} holds {have} readings; an anomaly model needs at least {need}",
                plan.start, plan.end
            ),
        }),
        other => other.map_err(JobError::from),
    }
}

pub fn check_contamination(c: f64) -> Result<f64, JobError> {
    if c > 0.0 && c <= 0.5 {
        Ok(c)
    } else {
        Err(JobError::invalid("out_of_range", "contamination", format!("contamination must be in (0, 0.5], got {c}")))
    }
}

/// Runs the job's steps; `Err` carries the reason it failed.
pub async fn run(t: &mut Tracker, cancel: &CancellationToken) -> Result<Done, String> {
    let plan: Plan =
        serde_json::from_value(t.job.params.clone()).map_err(|e| format!("invalid job parameters: {e}"))?;
    match t.job.model_type.as_str() {
        "baseline" => baseline(t, cancel, plan).await,
        "anomaly" => anomaly(t, cancel, plan).await,
        other => Err(format!("unknown model type {other:?}")),
    }
}

fn stop_if(cancel: &CancellationToken) -> Result<(), String> {
    if cancel.is_cancelled() { Err("cancelled".into()) } else { Ok(()) }
}

fn text(e: JobError) -> String {
    e.to_string()
}

async fn baseline(t: &mut Tracker, cancel: &CancellationToken, plan: Plan) -> Result<Done, String> {
    // The window's hour cells: every reading of it, however dense the meter
    // (a raw read of 30 days of 1-second readings would be 2.6 M rows).
    let cells = super::window_cells(t.store().as_ref(), t.job.machine_id, plan.start, plan.end).await.map_err(text)?;
    stop_if(cancel)?;
    let readings: u64 = cells.iter().map(|c| c.readings).sum();
    t.progress(20.0, format!("loaded {readings} readings from {} to {}", plan.start, plan.end)).await;
    let granularity = plan.spec.granularity.unwrap_or(Granularity::Hourly);
    let periods = blocking(move || enms_analytics::cells::periods(&cells, granularity)).await.map_err(text)?;
    stop_if(cancel)?;
    t.progress(40.0, format!("built features for {} {} periods", periods.len(), granularity.as_str())).await;
    let spec = plan.spec.clone();
    let (periods, fitted) = blocking(move || {
        let fit = BaselineModel::fit(&periods, &spec);
        (periods, fit)
    })
    .await
    .map_err(text)?;
    let mut model = fitted.map_err(|e| e.to_string())?;
    stop_if(cancel)?;
    let names: Vec<&str> = model.variables.iter().map(|v| v.as_str()).collect();
    t.progress(
        70.0,
        format!(
            "fitted: R² {:.3} on {}; {} anomalous periods left out",
            model.r_squared,
            if names.is_empty() { "intercept only".into() } else { names.join(", ") },
            model.excluded_periods
        ),
    )
    .await;
    let model = blocking(move || {
        model.validate(&periods);
        model
    })
    .await
    .map_err(text)?;
    stop_if(cancel)?;
    let q = &model.quality;
    t.progress(
        85.0,
        format!(
            "validated: CV(RMSE) {:.1} %, NMBE {:.2} %, Guideline 14 {}",
            q.cv_rmse_pct,
            q.nmbe_pct,
            if q.g14.pass { "pass" } else { "fail" }
        ),
    )
    .await;
    let metrics = baseline_metrics(&model);
    let body = serde_json::to_value(&model).map_err(|e| e.to_string())?;
    let passes = model.quality.g14.pass;
    save(t, cancel, plan.activate, passes, metrics, body).await
}

async fn anomaly(t: &mut Tracker, cancel: &CancellationToken, mut plan: Plan) -> Result<Done, String> {
    // The nightly refresh starts no earlier than a level shift the machine's
    // model was refreshed on (the live refreshes say so themselves).
    if plan.window_floor.is_none() && t.job.trigger_type == "scheduled" {
        let active = t.store().active_model(t.job.machine_id, "anomaly").await.map_err(|e| e.to_string())?;
        plan.window_floor =
            active.and_then(|m| m.metrics["window_floor"].as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok()));
        if let Some(floor) = plan.window_floor {
            plan.start = plan.start.max(floor);
        }
    }
    let spec =
        ModelSpec { signals: plan.signals.clone(), contamination: plan.contamination, seed: seed_of(t.job.machine_id) };
    let signals = AnomalyModel::signals_of(&spec);
    let data =
        load_signal_rows(t.store().as_ref(), t.job.machine_id, plan.start, plan.end, &signals).await.map_err(text)?;
    stop_if(cancel)?;
    let loaded = data.rows.len();
    let flagged = flagged_in(t.store().as_ref(), t.job.machine_id, &plan).await.map_err(|e| e.to_string())?;
    let accept_after = chrono::Duration::from_std(t.live().policy().accept_after).unwrap_or(Duration::days(1));
    let (data, left_out) = leave_out_episodes(data, &flagged, plan.end, plan.leave_out, accept_after);
    t.progress(
        20.0,
        format!(
            "loaded {loaded} readings from {} to {}; {} readings of {} open or recent episodes left out",
            plan.start, plan.end, left_out.readings, left_out.episodes
        ),
    )
    .await;
    let baseline = if plan.use_baseline {
        let active = t.store().active_model(t.job.machine_id, "baseline").await.map_err(|e| e.to_string())?;
        let record = active.ok_or("use_baseline needs an active baseline model; train one first")?;
        let model: BaselineModel = serde_json::from_value(record.body).map_err(|e| format!("stored baseline: {e}"))?;
        Some((record.id, model))
    } else {
        None
    };
    let names: Vec<String> = signals.iter().map(Signal::name).collect();
    t.progress(
        40.0,
        format!(
            "built features for {} readings: {}{}",
            data.rows.len(),
            names.join(", "),
            if plan.use_baseline { " with baseline residuals" } else { "" }
        ),
    )
    .await;
    let b = baseline.as_ref().map(|(_, m)| m.clone());
    let model =
        blocking(move || AnomalyModel::train(&data.rows, &data.values, b.as_ref(), &spec)).await.map_err(text)?;
    let model = model.map_err(|e| e.to_string())?;
    stop_if(cancel)?;
    t.progress(70.0, format!("fitted an isolation forest of 100 trees on {} readings", model.training_rows)).await;
    let share = model.training_rate();
    t.progress(
        85.0,
        format!(
            "calibrated: {} of {} training readings ({:.2} %) flagged against a budget of {:.2} %, {} critical",
            model.training_flagged,
            model.training_rows,
            100.0 * share,
            100.0 * plan.contamination,
            model.training_critical,
        ),
    )
    .await;
    let metrics = json!({
        "training_rows": model.training_rows,
        "training_flagged": model.training_flagged,
        "training_flagged_share": share,
        "training_critical": model.training_critical,
        "left_out_readings": left_out.readings,
        "left_out_episodes": left_out.episodes,
        "contamination": plan.contamination,
        "signals": names,
        "context": model.context,
        "period_start": plan.start,
        "period_end": plan.end,
        "sigma_kw": model.sigma_kw,
        "interval_s": model.interval_h * 3600.0,
        "window_floor": plan.window_floor,
        "refresh": plan.refresh,
        "uses_baseline": model.uses_baseline,
        "baseline_model_id": baseline.as_ref().map(|(id, _)| id),
    });
    let body = json!({"model": model, "baseline_model_id": baseline.as_ref().map(|(id, _)| id)});
    save(t, cancel, plan.activate, true, metrics, body).await
}

async fn save(
    t: &mut Tracker,
    cancel: &CancellationToken,
    activate: Option<bool>,
    preferred: bool,
    metrics: Value,
    body: Value,
) -> Result<Done, String> {
    stop_if(cancel)?;
    let record = ModelRecord {
        id: Uuid::new_v4(),
        machine_id: t.job.machine_id,
        model_type: t.job.model_type.clone(),
        version: 0,
        active: false,
        created_at: Utc::now(),
        job_id: Some(t.job.id),
        metrics: metrics.clone(),
        body,
    };
    let version = t.store().insert_model(&record).await.map_err(|e| e.to_string())?;
    let none_active =
        t.store().active_model(record.machine_id, &record.model_type).await.map_err(|e| e.to_string())?.is_none();
    let activate = activate.unwrap_or(preferred || none_active);
    t.progress(95.0, format!("saved as version {version}{}", if activate { ", activating" } else { "" })).await;
    if activate {
        t.live().activate(record.id).await.map_err(text)?;
    }
    let mut metrics = metrics;
    if let Some(m) = metrics.as_object_mut() {
        m.insert("model_id".into(), json!(record.id));
        m.insert("version".into(), json!(version));
        m.insert("activated".into(), json!(activate));
    }
    Ok(Done { model_id: Some(record.id), message: format!("model version {version} trained"), metrics })
}

/// A reproducible forest per machine.
fn seed_of(id: Uuid) -> u64 {
    let (hi, lo) = id.as_u64_pair();
    hi ^ lo
}

/// What model lists and `training_completed` show of a baseline.
pub fn baseline_metrics(m: &BaselineModel) -> Value {
    json!({
        "granularity": m.granularity,
        "variables": m.variables,
        "heating_base_c": m.heating_base_c,
        "cooling_base_c": m.cooling_base_c,
        "n": m.quality.n,
        "excluded_periods": m.excluded_periods,
        "r_squared": m.r_squared,
        "adj_r_squared": m.adj_r_squared,
        "cv_rmse_pct": m.quality.cv_rmse_pct,
        "nmbe_pct": m.quality.nmbe_pct,
        "rmse": m.quality.rmse,
        "f_p_value": m.f_p_value,
        "g14_pass": m.quality.g14.pass,
        "g14": m.quality.g14,
        "validation": m.validation,
        "coefficients": m.coefficients,
        "dropped": m.dropped,
        "period_start": m.period_start,
        "period_end": m.period_end,
    })
}

/// An episode that ended less than this before the training window's end is
/// *recent*: its readings are left out of training, as are an open one's.
pub const RECENT_EPISODE: Duration = Duration::hours(24);
/// Saved anomalies further apart than this many reading intervals belong to
/// different episodes (the episodes' quiet stretch).
const EPISODE_GAP_READINGS: f64 = 4.0;

/// What training left out.
#[derive(Debug, Default, PartialEq)]
pub struct LeftOut {
    pub readings: usize,
    pub episodes: usize,
}

/// Reading times of the machine's saved anomalies in the training window.
async fn flagged_in(
    store: &dyn enms_store::Store,
    machine: Uuid,
    plan: &Plan,
) -> Result<Vec<DateTime<Utc>>, enms_store::StoreError> {
    let query = enms_store::AnomalyQuery {
        machine_id: Some(machine),
        severity: None,
        since: Some(plan.start),
        until: Some(plan.end),
        acknowledged: None,
        limit: super::MAX_ROWS,
    };
    let mut times: Vec<DateTime<Utc>> = store.list_anomalies(&query).await?.into_iter().map(|a| a.timestamp).collect();
    times.sort();
    times.dedup();
    Ok(times)
}

/// The retraining policy: readings of an episode still open, or ended
/// within [`RECENT_EPISODE`] of `end`, are left out ([`LeaveOut::Recent`]),
/// so an ongoing fault is not learnt as normal; older episodes stay in, and
/// so does one that lasted longer than `accept_after` (a level shift taken
/// as the new normal). [`LeaveOut::Open`] leaves out only the episode still
/// open at the end; [`LeaveOut::Nothing`] nothing. Episodes are rebuilt
/// from the saved anomalies: flagged readings less than four reading
/// intervals apart are one episode, which spans from its first to its last.
pub fn leave_out_episodes(
    data: super::SignalRows,
    flagged: &[DateTime<Utc>],
    end: DateTime<Utc>,
    mode: LeaveOut,
    accept_after: Duration,
) -> (super::SignalRows, LeftOut) {
    if flagged.is_empty() || data.rows.is_empty() || mode == LeaveOut::Nothing {
        return (data, LeftOut::default());
    }
    let mut hours: Vec<f64> = data.rows.iter().map(|iv| iv.hours).collect();
    hours.sort_by(f64::total_cmp);
    let gap = Duration::milliseconds((hours[hours.len() / 2] * 3.6e6 * EPISODE_GAP_READINGS) as i64);
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for &t in flagged {
        match spans.last_mut() {
            Some((_, last)) if t - *last <= gap => *last = t,
            _ => spans.push((t, t)),
        }
    }
    let recent = match mode {
        LeaveOut::Open => gap,
        _ => RECENT_EPISODE + gap,
    };
    spans.retain(|(first, last)| end - *last <= recent && *last - *first < accept_after);
    if spans.is_empty() {
        return (data, LeftOut::default());
    }
    let k = data.values.len() / data.rows.len();
    let mut kept =
        super::SignalRows { rows: Vec::with_capacity(data.rows.len()), values: Vec::with_capacity(data.values.len()) };
    let mut readings = 0;
    for (i, iv) in data.rows.iter().enumerate() {
        let t = iv.sample.timestamp;
        if spans.iter().any(|(a, b)| t >= *a && t <= *b) {
            readings += 1;
            continue;
        }
        kept.rows.push(*iv);
        kept.values.extend_from_slice(&data.values[i * k..(i + 1) * k]);
    }
    (kept, LeftOut { readings, episodes: spans.len() })
}

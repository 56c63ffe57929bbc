//! Training jobs, step by step: load readings, build features, fit,
//! validate, save (and activate). Each step is reported when it has
//! actually happened; cancellation is honoured between steps.

use chrono::{DateTime, Duration, Utc};
use enms_analytics::baseline::{BaselineModel, BaselineSpec, Granularity, Variable};
use enms_analytics::detect::AnomalyModel;
use enms_analytics::iforest::{Contamination, ForestParams};
use enms_analytics::series;
use enms_store::ModelRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::jobs::{Done, JobRequest, Tracker};
use super::{blocking, load_samples};
use crate::error::ApiError;

/// Default baseline period, ending now.
pub const BASELINE_DAYS: i64 = 30;
/// Default training window of anomaly models.
pub const ANOMALY_DAYS: i64 = 14;
pub const DEFAULT_CONTAMINATION: f64 = 0.01;

/// Body of `POST /api/v1/baseline/train/{machine_id}` (every field optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Default: `end` minus 30 days (baseline) or 14 days (anomaly).
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub start: Option<DateTime<Utc>>,
    /// Default: now.
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
    /// Activate the new model when it is saved. Default: baselines when
    /// they pass Guideline 14 or the machine has none active; anomaly models
    /// always.
    pub activate: Option<bool>,
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
}

impl TrainRequest {
    pub fn plan(self, model_type: &str, now: DateTime<Utc>) -> Result<Plan, ApiError> {
        let end = self.end.unwrap_or(now);
        let days = if model_type == "anomaly" { ANOMALY_DAYS } else { BASELINE_DAYS };
        let start = self.start.unwrap_or(end - Duration::days(days));
        if start >= end {
            return Err(ApiError::invalid("invalid_range", "start", format!("start {start} must be before end {end}")));
        }
        let granularity = self
            .granularity
            .map(|g| {
                Granularity::parse(&g).ok_or_else(|| {
                    ApiError::invalid(
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
                            ApiError::invalid(
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
                return Err(ApiError::invalid("out_of_range", field, format!("{field} must be between -30 and 40 °C")));
            }
        }
        let contamination = check_contamination(self.contamination.unwrap_or(DEFAULT_CONTAMINATION))?;
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
        })
    }
}

impl TrainRequest {
    /// Validates the request into a job for the runner.
    pub fn into_job(
        self,
        machine_id: Uuid,
        model_type: &str,
        trigger_type: &str,
        reason: Option<String>,
    ) -> Result<JobRequest, ApiError> {
        let plan = self.plan(model_type, Utc::now())?;
        let params = serde_json::to_value(plan).map_err(ApiError::internal)?;
        Ok(JobRequest { machine_id, model_type: model_type.into(), trigger_type: trigger_type.into(), reason, params })
    }
}

pub fn check_contamination(c: f64) -> Result<f64, ApiError> {
    if c > 0.0 && c <= 0.5 {
        Ok(c)
    } else {
        Err(ApiError::invalid("out_of_range", "contamination", format!("contamination must be in (0, 0.5], got {c}")))
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

fn text(e: ApiError) -> String {
    e.body.message
}

async fn baseline(t: &mut Tracker, cancel: &CancellationToken, plan: Plan) -> Result<Done, String> {
    let samples = load_samples(t.store().as_ref(), t.job.machine_id, plan.start, plan.end).await.map_err(text)?;
    stop_if(cancel)?;
    t.progress(20.0, format!("loaded {} readings from {} to {}", samples.len(), plan.start, plan.end)).await;
    let granularity = plan.spec.granularity.unwrap_or(Granularity::Hourly);
    let periods = blocking(move || series::periods(&series::intervals(&samples), granularity)).await.map_err(text)?;
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

async fn anomaly(t: &mut Tracker, cancel: &CancellationToken, plan: Plan) -> Result<Done, String> {
    let samples = load_samples(t.store().as_ref(), t.job.machine_id, plan.start, plan.end).await.map_err(text)?;
    stop_if(cancel)?;
    t.progress(20.0, format!("loaded {} readings from {} to {}", samples.len(), plan.start, plan.end)).await;
    let baseline = if plan.use_baseline {
        let active = t.store().active_model(t.job.machine_id, "baseline").await.map_err(|e| e.to_string())?;
        let record = active.ok_or("use_baseline needs an active baseline model; train one first")?;
        let model: BaselineModel = serde_json::from_value(record.body).map_err(|e| format!("stored baseline: {e}"))?;
        Some((record.id, model))
    } else {
        None
    };
    let rows = blocking(move || series::intervals(&samples)).await.map_err(text)?;
    stop_if(cancel)?;
    t.progress(
        40.0,
        format!(
            "built features for {} readings{}",
            rows.len(),
            if plan.use_baseline { " with baseline residuals" } else { "" }
        ),
    )
    .await;
    let params = ForestParams {
        contamination: Contamination::Fraction(plan.contamination),
        seed: seed_of(t.job.machine_id),
        ..Default::default()
    };
    let b = baseline.as_ref().map(|(_, m)| m.clone());
    let model = blocking(move || AnomalyModel::train(&rows, b.as_ref(), &params)).await.map_err(text)?;
    let model = model.map_err(|e| e.to_string())?;
    stop_if(cancel)?;
    t.progress(70.0, format!("fitted an isolation forest of 100 trees on {} readings", model.training_rows)).await;
    let share = model.training_flagged as f64 / model.training_rows.max(1) as f64;
    t.progress(
        85.0,
        format!(
            "validated: {} of {} training readings ({:.2} %) fall below the threshold, σ {:.2} kW",
            model.training_flagged,
            model.training_rows,
            100.0 * share,
            model.sigma_kw
        ),
    )
    .await;
    let metrics = json!({
        "training_rows": model.training_rows,
        "training_flagged": model.training_flagged,
        "contamination": plan.contamination,
        "offset": model.forest.offset,
        "sigma_kw": model.sigma_kw,
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
    Ok(Done { model_id: record.id, message: format!("model version {version} trained"), metrics })
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

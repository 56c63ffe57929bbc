//! Anomaly detection: the live detectors that score each ingested reading
//! against its machine's active anomaly model, batch detection over a
//! window, model activation, and saving + announcing what was found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::detect::{AnomalyModel, Expectation, Finding, Recent};
use enms_analytics::iforest::{Contamination, ForestParams};
use enms_analytics::series::{self, Interval, MAX_INTERVAL_H, Sample};
use enms_core::Reading;
use enms_core::event::EventType;
use enms_store::{AnomalyRecord, ModelRecord, Store, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{blocking, load_samples};
use crate::bus::EventBus;
use crate::error::ApiError;

/// Reference data a batch detection fits on, before its window.
pub const REFERENCE_DAYS: i64 = 14;

/// One machine's live detector.
struct Detector {
    model_id: Uuid,
    model: AnomalyModel,
    baseline: Option<BaselineModel>,
    state: Mutex<MachineState>,
}

#[derive(Default)]
struct MachineState {
    last: Option<DateTime<Utc>>,
    recent: Recent,
}

#[derive(Clone)]
pub struct Live {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    detectors: Arc<RwLock<HashMap<Uuid, Arc<Detector>>>>,
}

impl Live {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> Self {
        Self { store, bus, detectors: Arc::default() }
    }

    /// Loads every machine's active anomaly model.
    pub async fn reload_all(&self) -> Result<(), StoreError> {
        for m in self.store.list_machines().await? {
            self.reload(m.id).await?;
        }
        Ok(())
    }

    /// Rebuilds a machine's detector from its active models.
    pub async fn reload(&self, machine: Uuid) -> Result<(), StoreError> {
        let detector = match self.store.active_model(machine, "anomaly").await? {
            Some(record) => self.detector(record).await?,
            None => None,
        };
        let mut map = self.detectors.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match detector {
            Some(d) => map.insert(machine, Arc::new(d)),
            None => map.remove(&machine),
        };
        Ok(())
    }

    async fn detector(&self, record: ModelRecord) -> Result<Option<Detector>, StoreError> {
        let Ok(model) = serde_json::from_value::<AnomalyModel>(record.body["model"].clone()) else {
            tracing::warn!(model = %record.id, "stored anomaly model unreadable; streaming detection off for its machine");
            return Ok(None);
        };
        // Residuals are taken against the baseline active now.
        let baseline = if model.uses_baseline {
            match self.store.active_model(record.machine_id, "baseline").await? {
                Some(b) => serde_json::from_value(b.body).ok(),
                None => None,
            }
        } else {
            None
        };
        Ok(Some(Detector { model_id: record.id, model, baseline, state: Mutex::default() }))
    }

    pub fn has_detector(&self, machine: Uuid) -> bool {
        self.detectors.read().is_ok_and(|m| m.contains_key(&machine))
    }

    /// Makes a model active, refreshes the machine's detector and announces
    /// `model_updated`.
    pub async fn activate(&self, id: Uuid) -> Result<ModelRecord, ApiError> {
        if !self.store.activate_model(id).await? {
            return Err(ApiError::not_found("model", id));
        }
        let record = self.store.get_model(id).await?.ok_or_else(|| ApiError::not_found("model", id))?;
        self.reload(record.machine_id).await?;
        let data = json!({
            "model_id": record.id.to_string(),
            "machine_id": record.machine_id,
            "model_type": record.model_type,
            "version": record.version,
            "metrics": record.metrics,
            "message": format!("{} model version {} is now active", record.model_type, record.version),
        });
        if let Err(e) = self.bus.publish(EventType::ModelUpdated, data).await {
            tracing::warn!(error = %e.body.message, "model_updated not published");
        }
        Ok(record)
    }

    /// Scores freshly stored readings; saves and announces each anomaly.
    pub async fn observe(&self, readings: &[Reading]) {
        let mut found = Vec::new();
        {
            let Ok(detectors) = self.detectors.read() else { return };
            if detectors.is_empty() {
                return;
            }
            for r in readings {
                let Some(d) = detectors.get(&r.machine_id) else { continue };
                if let Some(record) = d.observe(r) {
                    found.push(record);
                }
            }
        }
        if !found.is_empty() {
            self.save_and_announce(&found).await;
        }
    }

    /// Stores anomalies (idempotently) and publishes those that were new.
    pub async fn save_and_announce(&self, found: &[AnomalyRecord]) -> usize {
        let new = match self.store.insert_anomalies(found).await {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(error = %e, "anomalies not saved");
                return 0;
            }
        };
        let mut names: HashMap<Uuid, String> = HashMap::new();
        for a in &new {
            if !names.contains_key(&a.machine_id)
                && let Ok(Some(m)) = self.store.get_machine(a.machine_id).await
            {
                names.insert(a.machine_id, m.name);
            }
            let data = anomaly_event(a, names.get(&a.machine_id).map(String::as_str));
            if let Err(e) = self.bus.publish(EventType::AnomalyDetected, data).await {
                tracing::warn!(error = %e.body.message, "anomaly_detected not published");
            }
        }
        new.len()
    }
}

impl Detector {
    fn observe(&self, r: &Reading) -> Option<AnomalyRecord> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let hours = match state.last {
            Some(last) if r.timestamp > last => {
                ((r.timestamp - last).num_milliseconds() as f64 / 3.6e6).min(MAX_INTERVAL_H)
            }
            // Out of order, or the first reading seen: infer from the energy.
            _ if r.power_kw > 0.0 => (r.energy_kwh / r.power_kw).clamp(1e-4, MAX_INTERVAL_H),
            _ => return None,
        };
        state.last = state.last.max(Some(r.timestamp));
        let iv = Interval { sample: sample(r), hours };
        let expectation = match &self.baseline {
            Some(b) => Expectation::Baseline(b),
            None => Expectation::Profile,
        };
        let finding = self.model.judge(&iv, &expectation, &mut state.recent);
        record(r.machine_id, &iv, &finding, "stream", Some(self.model_id))
    }
}

fn sample(r: &Reading) -> Sample {
    Sample {
        timestamp: r.timestamp,
        power_kw: r.power_kw,
        production_units: r.production_units,
        outdoor_temp_c: r.outdoor_temp_c,
    }
}

fn record(machine: Uuid, iv: &Interval, f: &Finding, source: &str, model_id: Option<Uuid>) -> Option<AnomalyRecord> {
    let kind = f.anomaly_type?;
    Some(AnomalyRecord {
        id: Uuid::new_v4(),
        machine_id: machine,
        timestamp: iv.sample.timestamp,
        metric: "power_kw".into(),
        severity: f.severity.as_str().into(),
        anomaly_type: kind.as_str().into(),
        value: iv.sample.power_kw,
        expected_value: (f.expected_kw * 1000.0).round() / 1000.0,
        anomaly_score: f.score,
        deviation: f.z,
        source: source.into(),
        model_id,
        detected_at: Utc::now(),
        acknowledged_at: None,
        acknowledged_by: None,
        note: None,
    })
}

/// The `anomaly_detected` payload (the seeds' fields, plus details).
pub fn anomaly_event(a: &AnomalyRecord, machine_name: Option<&str>) -> Value {
    json!({
        "anomaly_id": a.id,
        "machine_id": a.machine_id,
        "machine_name": machine_name,
        "severity": a.severity,
        "anomaly_type": a.anomaly_type,
        "metric": a.metric,
        "value": a.value,
        "expected_value": a.expected_value,
        "anomaly_score": a.anomaly_score,
        "timestamp": a.timestamp.to_rfc3339(),
        "details": {"deviation_sigma": a.deviation, "source": a.source},
    })
}

/// Body of `POST /api/v1/anomaly/detect` (and of `/detect/{machine_id}`,
/// where `machine_id` comes from the path).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    /// Required by `/anomaly/detect`; with `/detect/{id}` it must match the path.
    pub machine_id: Option<Uuid>,
    /// Default: `end` minus 24 h.
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub start: Option<DateTime<Utc>>,
    /// Default: now; at most 92 days after `start`.
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub end: Option<DateTime<Utc>>,
    /// Expected share of anomalies; default 0.1.
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub contamination: Option<f64>,
    /// Judge the residuals of the active baseline; default false.
    pub use_baseline: Option<bool>,
}

pub struct DetectOutcome {
    pub readings: usize,
    pub found: Vec<AnomalyRecord>,
    pub saved: usize,
    pub baseline_model_id: Option<Uuid>,
}

/// Batch detection over `[start, end)`: fits a forest on the window plus
/// [`REFERENCE_DAYS`] before it (contamination sets its threshold), judges
/// every reading of the window in order, and saves what it finds.
pub async fn detect(
    live: &Live,
    machine: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    contamination: f64,
    use_baseline: bool,
) -> Result<DetectOutcome, ApiError> {
    let baseline = if use_baseline {
        let record = live.store.active_model(machine, "baseline").await?.ok_or_else(|| {
            ApiError::invalid(
                "no_active_model",
                "use_baseline",
                format!("machine {machine} has no active baseline; train one or set use_baseline to false"),
            )
        })?;
        let model: BaselineModel = serde_json::from_value(record.body).map_err(ApiError::internal)?;
        Some((record.id, model))
    } else {
        None
    };
    let samples = load_samples(live.store.as_ref(), machine, start - Duration::days(REFERENCE_DAYS), end).await?;
    let in_window = samples.iter().filter(|s| s.timestamp >= start).count();
    if in_window == 0 {
        return Err(ApiError::invalid(
            "empty_window",
            "start",
            format!("machine {machine} has no readings from {start} to {end}"),
        ));
    }
    let b = baseline.as_ref().map(|(_, m)| m.clone());
    let found = blocking(move || judge_window(&samples, start, b.as_ref(), contamination, machine)).await??;
    let saved = live.save_and_announce(&found).await;
    Ok(DetectOutcome { readings: in_window, found, saved, baseline_model_id: baseline.map(|(id, _)| id) })
}

fn judge_window(
    samples: &[Sample],
    start: DateTime<Utc>,
    baseline: Option<&BaselineModel>,
    contamination: f64,
    machine: Uuid,
) -> Result<Vec<AnomalyRecord>, ApiError> {
    let rows = series::intervals(samples);
    let params = ForestParams { contamination: Contamination::Fraction(contamination), seed: 0, ..Default::default() };
    let model = AnomalyModel::train(&rows, baseline, &params).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "insufficient_data", e.to_string()).with_field("start")
    })?;
    let expectation = match baseline {
        Some(b) => Expectation::Baseline(b),
        None => Expectation::Profile,
    };
    let mut recent = Recent::default();
    Ok(rows
        .iter()
        .filter_map(|iv| {
            let f = model.judge(iv, &expectation, &mut recent);
            if iv.sample.timestamp < start { None } else { record(machine, iv, &f, "batch", None) }
        })
        .collect())
}

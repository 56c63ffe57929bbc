//! Anomaly detection: the live detectors that score each ingested reading
//! against its machine's active anomaly model, batch detection over a
//! window, model activation, and saving + announcing what was found.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::detect::episode::{self, Episode};
use enms_analytics::detect::{AnomalyModel, Expectation, Finding, ModelSpec, Recent, Signal};
use enms_analytics::series::{Interval, MAX_INTERVAL_H, Sample};
use enms_core::Reading;
use enms_core::event::EventType;
use enms_store::{AnomalyRecord, ModelRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::training::detect_error;
use super::{SignalRows, blocking, load_signal_rows, reading_value};
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
        let values: Vec<f64> =
            self.model.signals.iter().map(|m| reading_value(r, &m.signal).unwrap_or(f64::NAN)).collect();
        let finding = self.model.judge(&iv, &values, &expectation, &mut state.recent);
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
        metric: f.signal.clone(),
        severity: f.severity.as_str().into(),
        anomaly_type: kind.as_str().into(),
        value: f.value,
        expected_value: (f.expected * 1000.0).round() / 1000.0,
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
    /// Default: now. Windows over 92 days run as a detection job (202).
    #[serde(default, deserialize_with = "enms_core::timestamp::deserialize_opt")]
    pub end: Option<DateTime<Utc>>,
    /// The alarm budget: at most this share of the fitted readings is
    /// flagged; default 0.1.
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    pub contamination: Option<f64>,
    /// Judge the residuals of the active baseline; default false.
    pub use_baseline: Option<bool>,
    /// The signals judged together (as for anomaly training); default power.
    #[schema(min_items = 1, max_items = 16)]
    pub features: Option<Vec<String>>,
}

/// A validated detection request, as a detection job stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectPlan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub contamination: f64,
    pub use_baseline: bool,
    #[serde(default)]
    pub signals: Option<Vec<Signal>>,
}

/// Most episodes and anomalies a detection answer lists (all are saved).
pub const MAX_LISTED: usize = 500;
/// Normal readings in a row that end an episode of a batch detection.
pub const QUIET_READINGS: usize = episode::DEFAULT_QUIET;

/// An episode with the anomalies it holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpisodeView {
    #[serde(flatten)]
    pub episode: Episode,
    pub machine_id: Uuid,
    /// The saved anomalies (one per flagged reading) of the episode.
    pub anomaly_ids: Vec<Uuid>,
}

/// What a detection run found in its window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Detection {
    pub machine_id: Uuid,
    pub machine_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub contamination: f64,
    pub use_baseline: bool,
    /// The signals judged.
    pub features: Vec<String>,
    /// The baseline whose residuals were judged, when `use_baseline`.
    pub baseline_model_id: Option<Uuid>,
    pub readings_analyzed: usize,
    pub anomalies_detected: usize,
    /// Newly saved; one already known for the same reading is not saved twice.
    pub anomalies_saved: usize,
    pub by_severity: BTreeMap<String, usize>,
    pub by_type: BTreeMap<String, usize>,
    pub episodes_detected: usize,
    /// The first episodes, each with the anomalies it holds.
    pub episodes: Vec<EpisodeView>,
    /// The first anomalies found (one per flagged reading).
    pub anomalies: Vec<AnomalyRecord>,
}

impl Detection {
    /// Summarises an outcome, listing at most `listed` episodes and anomalies.
    pub fn new(machine_id: Uuid, machine_name: String, plan: &DetectPlan, out: DetectOutcome, listed: usize) -> Self {
        let mut by_severity = BTreeMap::new();
        let mut by_type = BTreeMap::new();
        for a in &out.found {
            *by_severity.entry(a.severity.clone()).or_insert(0) += 1;
            *by_type.entry(a.anomaly_type.clone()).or_insert(0) += 1;
        }
        let spec = ModelSpec { signals: plan.signals.clone(), ..Default::default() };
        let mut episodes = out.episodes;
        let episodes_detected = episodes.len();
        episodes.truncate(listed);
        let anomalies_detected = out.found.len();
        let mut anomalies = out.found;
        anomalies.truncate(listed);
        Self {
            machine_id,
            machine_name,
            start: plan.start,
            end: plan.end,
            contamination: plan.contamination,
            use_baseline: plan.use_baseline,
            features: AnomalyModel::signals_of(&spec).iter().map(Signal::name).collect(),
            baseline_model_id: out.baseline_model_id,
            readings_analyzed: out.readings,
            anomalies_detected,
            anomalies_saved: out.saved,
            by_severity,
            by_type,
            episodes_detected,
            episodes,
            anomalies,
        }
    }
}

pub struct DetectOutcome {
    pub readings: usize,
    pub found: Vec<AnomalyRecord>,
    pub episodes: Vec<EpisodeView>,
    pub saved: usize,
    pub baseline_model_id: Option<Uuid>,
}

/// Batch detection over `[start, end)`: fits a model on the window plus
/// [`REFERENCE_DAYS`] before it (contamination is its alarm budget), judges
/// every reading of the window in order, groups the findings into
/// episodes and saves what it finds.
pub async fn detect(live: &Live, machine: Uuid, plan: &DetectPlan) -> Result<DetectOutcome, ApiError> {
    let prepared = prepare(live, machine, plan).await?;
    judge_and_save(live, machine, prepared).await
}

/// What a detection has loaded, ready to judge.
pub struct Prepared {
    baseline: Option<(Uuid, BaselineModel)>,
    data: SignalRows,
    spec: ModelSpec,
    start: DateTime<Utc>,
    pub in_window: usize,
}

pub async fn prepare(live: &Live, machine: Uuid, plan: &DetectPlan) -> Result<Prepared, ApiError> {
    let (start, end) = (plan.start, plan.end);
    let baseline = if plan.use_baseline {
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
    let spec = ModelSpec { signals: plan.signals.clone(), contamination: plan.contamination, seed: 0 };
    let signals = AnomalyModel::signals_of(&spec);
    let data =
        load_signal_rows(live.store.as_ref(), machine, start - Duration::days(REFERENCE_DAYS), end, &signals).await?;
    let in_window = data.rows.iter().filter(|iv| iv.sample.timestamp >= start).count();
    if in_window == 0 {
        return Err(ApiError::invalid(
            "empty_window",
            "start",
            format!("machine {machine} has no readings from {start} to {end}"),
        ));
    }
    Ok(Prepared { baseline, data, spec, start, in_window })
}

pub async fn judge_and_save(live: &Live, machine: Uuid, p: Prepared) -> Result<DetectOutcome, ApiError> {
    let Prepared { baseline, data, spec, start, in_window } = p;
    let b = baseline.as_ref().map(|(_, m)| m.clone());
    let (found, episodes) = blocking(move || judge_window(&data, start, b.as_ref(), &spec, machine)).await??;
    let saved = live.save_and_announce(&found).await;
    Ok(DetectOutcome { readings: in_window, found, episodes, saved, baseline_model_id: baseline.map(|(id, _)| id) })
}

fn judge_window(
    data: &SignalRows,
    start: DateTime<Utc>,
    baseline: Option<&BaselineModel>,
    spec: &ModelSpec,
    machine: Uuid,
) -> Result<(Vec<AnomalyRecord>, Vec<EpisodeView>), ApiError> {
    let model = AnomalyModel::train(&data.rows, &data.values, baseline, spec).map_err(detect_error)?;
    let expectation = match baseline {
        Some(b) => Expectation::Baseline(b),
        None => Expectation::Profile,
    };
    let k = model.signals.len();
    let mut recent = Recent::default();
    let mut tracker = episode::Tracker::new(QUIET_READINGS);
    let mut found = Vec::new();
    let mut episodes = Vec::new();
    // Anomaly ids of each open episode, by type.
    let mut open_ids: HashMap<&'static str, Vec<Uuid>> = HashMap::new();
    for (i, iv) in data.rows.iter().enumerate() {
        let f = model.judge(iv, &data.values[i * k..(i + 1) * k], &expectation, &mut recent);
        if iv.sample.timestamp < start {
            continue;
        }
        if let Some(r) = record(machine, iv, &f, "batch", None) {
            open_ids.entry(f.anomaly_type.map_or("", |t| t.as_str())).or_default().push(r.id);
            found.push(r);
        }
        for change in tracker.push(iv.sample.timestamp, iv.hours, &f) {
            if let episode::Change::Closed(e) = change {
                let ids = open_ids.remove(e.anomaly_type.as_str()).unwrap_or_default();
                episodes.push(EpisodeView { episode: e, machine_id: machine, anomaly_ids: ids });
            }
        }
    }
    for e in tracker.drain() {
        let ids = open_ids.remove(e.anomaly_type.as_str()).unwrap_or_default();
        episodes.push(EpisodeView { episode: e, machine_id: machine, anomaly_ids: ids });
    }
    episodes.sort_by_key(|e| e.episode.start);
    Ok((found, episodes))
}

/// Episodes a detection job's result lists (every anomaly is saved).
pub const JOB_LISTED: usize = 100;

/// A detection job: [`detect`] over its plan, step by step, the result (without the
/// anomaly list) in the job's metrics.
pub async fn run_job(
    t: &mut super::jobs::Tracker,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<super::jobs::Done, String> {
    let plan: DetectPlan =
        serde_json::from_value(t.job.params.clone()).map_err(|e| format!("invalid job parameters: {e}"))?;
    let machine = t.job.machine_id;
    let name = match t.store().get_machine(machine).await {
        Ok(Some(m)) => m.name,
        Ok(None) => return Err(format!("machine {machine} no longer exists")),
        Err(e) => return Err(e.to_string()),
    };
    let started = std::time::Instant::now();
    let live = t.live().clone();
    let prepared = prepare(&live, machine, &plan).await.map_err(|e| e.body.message)?;
    if cancel.is_cancelled() {
        return Err("cancelled".into());
    }
    let loaded = prepared.data.rows.len();
    t.progress(20.0, format!("loaded {loaded} readings, {} of them in the window", prepared.in_window)).await;
    let out = judge_and_save(&live, machine, prepared).await.map_err(|e| e.body.message)?;
    let took = started.elapsed();
    t.progress(
        90.0,
        format!("judged and saved: {} flagged readings in {} episodes", out.found.len(), out.episodes.len()),
    )
    .await;
    let mut result = Detection::new(machine, name, &plan, out, JOB_LISTED);
    result.anomalies.clear();
    let message = format!(
        "{} readings judged: {} anomalies in {} episodes",
        result.readings_analyzed, result.anomalies_detected, result.episodes_detected
    );
    let mut metrics = serde_json::to_value(&result).map_err(|e| e.to_string())?;
    if let Some(m) = metrics.as_object_mut() {
        m.remove("anomalies");
        m.insert("took_ms".into(), json!(took.as_secs_f64() * 1e3));
    }
    Ok(super::jobs::Done { model_id: None, message, metrics })
}

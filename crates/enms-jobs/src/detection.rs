//! Batch anomaly detection over a window (at once, or as a detection job
//! for long windows), its episodes and their announcement, and the scores
//! of a window under the active model. The live detectors are in
//! [`super::live`].

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::detect::episode::{self, Episode};
use enms_analytics::detect::stream::StreamState;
use enms_analytics::detect::{AnomalyModel, Expectation, ModelSpec, Signal};
use enms_core::event::EventType;
use enms_store::AnomalyRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::live::{Live, Notice, episode_id, episode_record, record};
use super::{SignalRows, blocking, load_signal_rows};
use crate::error::JobError;

/// Reference data a batch detection fits on, before its window.
pub const REFERENCE_DAYS: i64 = 14;

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
    /// The stored episode's id (`GET /api/v1/anomaly/episodes`).
    pub id: Uuid,
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
pub async fn detect(live: &Live, machine: Uuid, plan: &DetectPlan) -> Result<DetectOutcome, JobError> {
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

pub async fn prepare(live: &Live, machine: Uuid, plan: &DetectPlan) -> Result<Prepared, JobError> {
    let (start, end) = (plan.start, plan.end);
    let baseline = if plan.use_baseline {
        let record = live.store.active_model(machine, "baseline").await?.ok_or_else(|| JobError::NoActiveModel {
            field: Some("use_baseline".into()),
            message: format!("machine {machine} has no active baseline; train one or set use_baseline to false"),
        })?;
        let model: BaselineModel = serde_json::from_value(record.body).map_err(JobError::internal)?;
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
        return Err(JobError::invalid(
            "empty_window",
            "start",
            format!("machine {machine} has no readings from {start} to {end}"),
        ));
    }
    Ok(Prepared { baseline, data, spec, start, in_window })
}

pub async fn judge_and_save(live: &Live, machine: Uuid, p: Prepared) -> Result<DetectOutcome, JobError> {
    let Prepared { baseline, data, spec, start, in_window } = p;
    let b = baseline.as_ref().map(|(_, m)| m.clone());
    let (found, episodes) = blocking(move || judge_window(&data, start, b.as_ref(), &spec, machine)).await??;
    let new = live.save(&found).await;
    let saved = new.len();
    let records: Vec<_> = episodes.iter().map(|e| episode_record(machine, &e.episode, "batch")).collect();
    live.save_episodes(&records).await;
    announce_episodes(live, &episodes, &found, &new).await;
    Ok(DetectOutcome { readings: in_window, found, episodes, saved, baseline_model_id: baseline.map(|(id, _)| id) })
}

/// One `anomaly_detected` per episode holding a newly saved anomaly (its
/// peak reading's, or the first new one's): a batch over months of history
/// tells of its episodes, not of every reading.
async fn announce_episodes(live: &Live, episodes: &[EpisodeView], found: &[AnomalyRecord], new: &[AnomalyRecord]) {
    let fresh: HashSet<Uuid> = new.iter().map(|a| a.id).collect();
    let by_id: HashMap<Uuid, &AnomalyRecord> = found.iter().map(|a| (a.id, a)).collect();
    let notices: Vec<Notice> = episodes
        .iter()
        .filter_map(|e| {
            let ids: Vec<&Uuid> = e.anomaly_ids.iter().filter(|id| fresh.contains(id)).collect();
            let peak = ids
                .iter()
                .filter_map(|id| by_id.get(id))
                .find(|a| a.timestamp == e.episode.peak_at)
                .or_else(|| ids.first().and_then(|id| by_id.get(id)))?;
            Some(Notice {
                kind: EventType::AnomalyDetected,
                episode_id: e.id,
                episode: e.episode.clone(),
                anomaly: (*peak).clone(),
                escalated: false,
            })
        })
        .collect();
    live.announce(&notices).await;
}

fn judge_window(
    data: &SignalRows,
    start: DateTime<Utc>,
    baseline: Option<&BaselineModel>,
    spec: &ModelSpec,
    machine: Uuid,
) -> Result<(Vec<AnomalyRecord>, Vec<EpisodeView>), JobError> {
    let model = AnomalyModel::train(&data.rows, &data.values, baseline, spec).map_err(JobError::from)?;
    let expectation = match baseline {
        Some(b) => Expectation::Baseline(b),
        None => Expectation::Profile,
    };
    let k = model.signals.len();
    let mut state = StreamState::default();
    let mut tracker = episode::Tracker::new(QUIET_READINGS);
    let mut found = Vec::new();
    let mut episodes = Vec::new();
    // Anomaly ids of each open episode, by type.
    let mut open_ids: HashMap<&'static str, Vec<Uuid>> = HashMap::new();
    for (i, iv) in data.rows.iter().enumerate() {
        let (f, _) = state.judge(&model, iv, &data.values[i * k..(i + 1) * k], &expectation);
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
                let id = episode_id(machine, e.anomaly_type.as_str(), e.start);
                episodes.push(EpisodeView { id, episode: e, machine_id: machine, anomaly_ids: ids });
            }
        }
    }
    for e in tracker.drain() {
        let ids = open_ids.remove(e.anomaly_type.as_str()).unwrap_or_default();
        let id = episode_id(machine, e.anomaly_type.as_str(), e.start);
        episodes.push(EpisodeView { id, episode: e, machine_id: machine, anomaly_ids: ids });
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
    let prepared = prepare(&live, machine, &plan).await.map_err(|e| e.to_string())?;
    if cancel.is_cancelled() {
        return Err("cancelled".into());
    }
    let loaded = prepared.data.rows.len();
    t.progress(20.0, format!("loaded {loaded} readings, {} of them in the window", prepared.in_window)).await;
    let out = judge_and_save(&live, machine, prepared).await.map_err(|e| e.to_string())?;
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

/// One reading's score under the active model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScorePoint {
    pub timestamp: DateTime<Utc>,
    /// In [0, 1]: one minus the share of training readings at least as unusual.
    pub score: f64,
    /// `normal`, `warning` or `critical`, as the active model judges it.
    pub severity: String,
    /// The contributing signal and its deviation in σ.
    pub signal: String,
    pub z: f64,
    /// What the model expects of the reading's power, and the spread σ
    /// around it at that level and operating state (`expected ± 1.96 σ`:
    /// the reading-level 95 % band). Absent when the model does not judge
    /// power.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_kw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_power_kw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_power_kw: Option<f64>,
}

/// Scores every reading of `[start, end)` under the machine's active
/// anomaly model, in order (the stuck and drift rules see the window's own
/// readings). Saves nothing.
pub async fn scores(
    live: &Live,
    machine: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(Uuid, Vec<ScorePoint>), JobError> {
    let (model_id, model, baseline) = live.active_or_stored(machine).await?.ok_or_else(|| JobError::NoActiveModel {
        field: None,
        message: format!("machine {machine} has no active anomaly model; train one first"),
    })?;
    let signals: Vec<Signal> = model.signals.iter().map(|m| m.signal.clone()).collect();
    let data = load_signal_rows(live.store.as_ref(), machine, start, end, &signals).await?;
    let points = blocking(move || {
        let expectation = match &baseline {
            Some(b) => Expectation::Baseline(b),
            None => Expectation::Profile,
        };
        let k = signals.len();
        let mut state = StreamState::default();
        data.rows
            .iter()
            .enumerate()
            .map(|(i, iv)| {
                let (f, _) = state.judge(&model, iv, &data.values[i * k..(i + 1) * k], &expectation);
                ScorePoint {
                    timestamp: iv.sample.timestamp,
                    score: f.score,
                    severity: f.severity.as_str().into(),
                    signal: f.signal,
                    z: f.z,
                    power_kw: f.power_kw,
                    expected_power_kw: f.expected_power_kw,
                    sigma_power_kw: f.sigma_power_kw,
                }
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok((model_id, points))
}

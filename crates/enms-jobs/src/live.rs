//! The live detectors: each ingested reading is scored against its
//! machine's active anomaly model right after it is stored; findings are
//! grouped into episodes as they arrive, and what an operator should hear
//! about is announced — `anomaly_detected` when an episode opens and again
//! when it escalates, `anomaly_updated` when it ends — while every flagged
//! reading is saved. Also model activation, and the announcing of batch
//! detection's episodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::detect::episode::{self, Change, Episode};
use enms_analytics::detect::{AnomalyModel, AnomalyType, Expectation, Finding, Recent};
use enms_analytics::series::{Interval, MAX_INTERVAL_H, Sample};
use enms_core::Reading;
use enms_core::event::EventType;
use enms_store::{AnomalyRecord, EpisodeRecord, ModelRecord, Store, StoreError};
use serde_json::{Value, json};
use uuid::Uuid;

use super::reading_value;
use crate::error::JobError;
use crate::outlet::Outlet;

/// Normal readings in a row that end a streaming episode.
pub const QUIET_READINGS: usize = episode::DEFAULT_QUIET;

/// One machine's live detector.
struct Detector {
    model_id: Uuid,
    model: AnomalyModel,
    baseline: Option<BaselineModel>,
    state: Mutex<MachineState>,
}

struct MachineState {
    last: Option<DateTime<Utc>>,
    recent: Recent,
    episodes: episode::Tracker,
    /// Each open episode's id and the anomaly that opened it, by type.
    open: HashMap<AnomalyType, (Uuid, AnomalyRecord)>,
}

impl Default for MachineState {
    fn default() -> Self {
        Self {
            last: None,
            recent: Recent::default(),
            episodes: episode::Tracker::new(QUIET_READINGS),
            open: HashMap::new(),
        }
    }
}

/// Something an operator should hear about: an episode opened, escalated
/// or ended, with the anomaly that caused it (for an end, the opening one).
pub struct Notice {
    pub kind: EventType,
    pub episode_id: Uuid,
    pub episode: Episode,
    pub anomaly: AnomalyRecord,
    pub escalated: bool,
}

#[derive(Clone)]
pub struct Live {
    pub(super) store: Arc<dyn Store>,
    outlet: Arc<dyn Outlet>,
    detectors: Arc<RwLock<HashMap<Uuid, Arc<Detector>>>>,
}

impl Live {
    pub fn new(store: Arc<dyn Store>, outlet: Arc<dyn Outlet>) -> Self {
        Self { store, outlet, detectors: Arc::default() }
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
            tracing::warn!(
                model = %record.id,
                "stored anomaly model unreadable (trained before calibrated thresholds?); streaming detection \
                 off for its machine until it is retrained"
            );
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

    /// The active model of a machine's live detector (id, model, baseline).
    pub fn active(&self, machine: Uuid) -> Option<(Uuid, AnomalyModel, Option<BaselineModel>)> {
        let map = self.detectors.read().ok()?;
        let d = map.get(&machine)?;
        Some((d.model_id, d.model.clone(), d.baseline.clone()))
    }

    /// [`Self::active`], or — when this instance has no detector for the
    /// machine yet — the active model read from the store. A model the
    /// store already calls active (activated a moment ago, here between
    /// the database write and the reload, or on another instance before
    /// its `model_updated` arrived) is then used at once, instead of the
    /// caller being told there is none while the model list says there is.
    pub async fn active_or_stored(
        &self,
        machine: Uuid,
    ) -> Result<Option<(Uuid, AnomalyModel, Option<BaselineModel>)>, StoreError> {
        if let Some(found) = self.active(machine) {
            return Ok(Some(found));
        }
        let Some(record) = self.store.active_model(machine, "anomaly").await? else { return Ok(None) };
        Ok(self.detector(record).await?.map(|d| (d.model_id, d.model, d.baseline)))
    }

    pub fn has_detector(&self, machine: Uuid) -> bool {
        self.detectors.read().is_ok_and(|m| m.contains_key(&machine))
    }

    /// Makes a model active, refreshes the machine's detector and announces
    /// `model_updated`.
    pub async fn activate(&self, id: Uuid) -> Result<ModelRecord, JobError> {
        if !self.store.activate_model(id).await? {
            return Err(JobError::not_found("model", id));
        }
        let record = self.store.get_model(id).await?.ok_or_else(|| JobError::not_found("model", id))?;
        self.reload(record.machine_id).await?;
        let data = json!({
            "model_id": record.id.to_string(),
            "machine_id": record.machine_id,
            "model_type": record.model_type,
            "version": record.version,
            "metrics": record.metrics,
            "message": format!("{} model version {} is now active", record.model_type, record.version),
        });
        if let Err(e) = self.outlet.publish(EventType::ModelUpdated, data).await {
            tracing::warn!(error = %e, "model_updated not published");
        }
        Ok(record)
    }

    /// Scores freshly stored readings; saves each anomaly and announces
    /// each episode's opening, escalation and end.
    pub async fn observe(&self, readings: &[Reading]) {
        let mut found = Vec::new();
        let mut notices = Vec::new();
        let mut episodes = Vec::new();
        {
            let Ok(detectors) = self.detectors.read() else { return };
            if detectors.is_empty() {
                return;
            }
            for r in readings {
                let Some(d) = detectors.get(&r.machine_id) else { continue };
                if let Some(record) = d.observe(r, &mut notices, &mut episodes) {
                    found.push(record);
                }
            }
        }
        if found.is_empty() && notices.is_empty() {
            return;
        }
        let new = self.save(&found).await;
        // An opening or escalation whose anomaly was already saved (a
        // re-sent reading) is not announced twice.
        let fresh: std::collections::HashSet<Uuid> = new.iter().map(|a| a.id).collect();
        notices.retain(|n| n.kind == EventType::AnomalyUpdated || fresh.contains(&n.anomaly.id));
        self.announce(&notices).await;
        // After the announcement: the episode row is one more commit, and
        // the operator should not wait for it.
        self.save_episodes(&episodes).await;
    }

    /// Stores anomalies (idempotently); answers those that were new.
    pub async fn save(&self, found: &[AnomalyRecord]) -> Vec<AnomalyRecord> {
        if found.is_empty() {
            return Vec::new();
        }
        match self.store.insert_anomalies(found).await {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(error = %e, "anomalies not saved");
                Vec::new()
            }
        }
    }

    /// Stores episodes as they stand (by id: an update replaces the row).
    pub async fn save_episodes(&self, episodes: &[EpisodeRecord]) {
        if episodes.is_empty() {
            return;
        }
        if let Err(e) = self.store.upsert_episodes(episodes).await {
            tracing::error!(error = %e, "episodes not saved");
        }
    }

    /// Publishes each notice.
    pub async fn announce(&self, notices: &[Notice]) {
        let mut names: HashMap<Uuid, String> = HashMap::new();
        for n in notices {
            let machine = n.anomaly.machine_id;
            if !names.contains_key(&machine)
                && let Ok(Some(m)) = self.store.get_machine(machine).await
            {
                names.insert(machine, m.name);
            }
            let data = episode_event(n, names.get(&machine).map(String::as_str));
            if let Err(e) = self.outlet.publish(n.kind, data).await {
                tracing::warn!(error = %e, kind = %n.kind, "anomaly event not published");
            }
        }
    }
}

impl Detector {
    fn observe(
        &self,
        r: &Reading,
        notices: &mut Vec<Notice>,
        episodes: &mut Vec<EpisodeRecord>,
    ) -> Option<AnomalyRecord> {
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
        let record = record(r.machine_id, &iv, &finding, "stream", Some(self.model_id));
        let state = &mut *state;
        for change in state.episodes.push(iv.sample.timestamp, iv.hours, &finding) {
            match (change, &record) {
                (Change::Opened(e), Some(a)) => {
                    let id = episode_id(r.machine_id, e.anomaly_type.as_str(), e.start);
                    state.open.insert(e.anomaly_type, (id, a.clone()));
                    notices.push(Notice {
                        kind: EventType::AnomalyDetected,
                        episode_id: id,
                        episode: e,
                        anomaly: a.clone(),
                        escalated: false,
                    });
                }
                (Change::Escalated(e), Some(a)) => {
                    let id = state.open.get(&e.anomaly_type).map_or_else(Uuid::new_v4, |(id, _)| *id);
                    notices.push(Notice {
                        kind: EventType::AnomalyDetected,
                        episode_id: id,
                        episode: e,
                        anomaly: a.clone(),
                        escalated: true,
                    });
                }
                (Change::Closed(e), _) => {
                    episodes.push(episode_record(r.machine_id, &e, "stream"));
                    if let Some((id, first)) = state.open.remove(&e.anomaly_type) {
                        notices.push(Notice {
                            kind: EventType::AnomalyUpdated,
                            episode_id: id,
                            episode: e,
                            anomaly: first,
                            escalated: false,
                        });
                    }
                }
                _ => {}
            }
        }
        // The episode this reading added to, as it stands now.
        if let Some(kind) = finding.anomaly_type
            && let Some(e) = state.episodes.open().find(|e| e.anomaly_type == kind)
        {
            episodes.push(episode_record(r.machine_id, e, "stream"));
        }
        record
    }
}

/// An episode's id: derived from machine, type and start, so batch and
/// streaming detection of the same episode, and re-runs over one window,
/// name the same row (FNV-1a, twice with different offsets, into 128 bits).
pub fn episode_id(machine: Uuid, kind: &str, start: DateTime<Utc>) -> Uuid {
    let fnv = |offset: u64| {
        let mut h = offset;
        for b in machine.as_bytes().iter().chain(kind.as_bytes()).chain(&start.timestamp_millis().to_le_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    Uuid::from_u64_pair(fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// An episode as the store keeps it.
pub fn episode_record(machine: Uuid, e: &Episode, source: &str) -> EpisodeRecord {
    EpisodeRecord {
        id: episode_id(machine, e.anomaly_type.as_str(), e.start),
        machine_id: machine,
        anomaly_type: e.anomaly_type.as_str().into(),
        severity: e.severity.as_str().into(),
        start: e.start,
        end: e.end,
        peak_at: e.peak_at,
        peak_score: e.peak_score,
        signal: e.signal.clone(),
        peak_value: e.peak_value,
        peak_expected: e.peak_expected,
        count: e.count as i64,
        actual_kwh: e.actual_kwh,
        expected_kwh: e.expected_kwh,
        open: e.open,
        source: source.into(),
        updated_at: Utc::now(),
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

/// The anomaly saved for a flagged reading.
pub fn record(
    machine: Uuid,
    iv: &Interval,
    f: &Finding,
    source: &str,
    model_id: Option<Uuid>,
) -> Option<AnomalyRecord> {
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

/// The `anomaly_detected` / `anomaly_updated` payload: the seeds' fields of
/// the anomaly that caused it (severity: the episode's highest), plus the
/// episode under `details.episode`.
pub fn episode_event(n: &Notice, machine_name: Option<&str>) -> Value {
    let a = &n.anomaly;
    let e = &n.episode;
    json!({
        "anomaly_id": a.id,
        "machine_id": a.machine_id,
        "machine_name": machine_name,
        "severity": e.severity.as_str(),
        "anomaly_type": a.anomaly_type,
        "metric": a.metric,
        "value": a.value,
        "expected_value": a.expected_value,
        "anomaly_score": a.anomaly_score,
        "timestamp": a.timestamp.to_rfc3339(),
        "details": {
            "deviation_sigma": a.deviation,
            "source": a.source,
            "escalated": n.escalated,
            "episode": {
                "id": n.episode_id,
                "start": e.start.to_rfc3339(),
                "end": e.end.to_rfc3339(),
                "peak_at": e.peak_at.to_rfc3339(),
                "peak_score": e.peak_score,
                "signal": e.signal,
                "peak_value": e.peak_value,
                "peak_expected": e.peak_expected,
                "count": e.count,
                "actual_kwh": e.actual_kwh,
                "expected_kwh": e.expected_kwh,
                "open": e.open,
            },
        },
    })
}

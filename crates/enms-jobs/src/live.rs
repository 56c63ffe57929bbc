//! The live detectors: each ingested reading is scored against its
//! machine's active anomaly model right after it is stored; findings are
//! grouped into episodes as they arrive, and what an operator should hear
//! about is announced — `anomaly_detected` when an episode opens and again
//! when it escalates, `anomaly_updated` when it ends — while every flagged
//! reading is saved. Also model activation, and the announcing of batch
//! detection's episodes.
//!
//! Each detector judges at the resolution its model learnt
//! (`enms_analytics::detect::stream`), keeps the flagged share of its last
//! stretch of data time (`detect::budget`), and asks for a refresh of its
//! model by data, budget or level shift (`crate::adapt`); while one runs,
//! the machine's readings are held and judged by the new model once it is
//! active, so the outcome depends on the data alone, not on its speed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use enms_analytics::baseline::BaselineModel;
use enms_analytics::detect::budget::Budget;
use enms_analytics::detect::episode::{self, Change, Episode};
use enms_analytics::detect::stream::StreamState;
use enms_analytics::detect::{AnomalyModel, AnomalyType, Expectation, Finding, Judging, MIN_TRAINING_ROWS};
use enms_analytics::series::{Interval, MAX_INTERVAL_H, Sample};
use enms_core::event::EventType;
use enms_core::{Reading, Resolution};
use enms_store::{AnomalyRecord, EpisodeRecord, ModelRecord, ReadingQuery, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::reading_value;
use crate::adapt::{self, Adaptation, Reason, Refresh};
use crate::error::JobError;
use crate::outlet::Outlet;

/// Normal readings in a row that end a streaming episode.
pub const QUIET_READINGS: usize = episode::DEFAULT_QUIET;
/// A model is stale only when its flags came in at least this many
/// separate runs: one long fault in the window is a fault, not a model
/// that no longer fits.
pub const STALE_RUNS: usize = 3;
/// Readings a new detector warms up on (its learnt fine spread, the
/// look-back rules): the machine's last hour, at most this many.
const WARM_UP_READINGS: u32 = 1_000;

/// One machine's live detector.
struct Detector {
    model_id: Uuid,
    model: AnomalyModel,
    baseline: Option<BaselineModel>,
    /// Where the model's training window ended (data time): refreshes by
    /// data count from here.
    trained_until: Option<DateTime<Utc>>,
    state: Mutex<MachineState>,
}

struct MachineState {
    last: Option<DateTime<Utc>>,
    stream: StreamState,
    episodes: episode::Tracker,
    /// Each open episode's id and the anomaly that opened it, by type.
    open: HashMap<AnomalyType, (Uuid, AnomalyRecord)>,
    /// The flagged share of the last stretch of data time.
    budget: Budget,
    /// Readings judged by the current model.
    judged: usize,
    /// Readings judged by this detector, and that count when each open
    /// episode opened (by its start): how much data a shift has lasted.
    seen: u64,
    seen_at_open: HashMap<DateTime<Utc>, u64>,
    /// Refreshes by data count from here (the training end, or a failed
    /// refresh's cutoff).
    refresh_from: Option<DateTime<Utc>>,
    /// The start of the episode a shift refresh was last asked for.
    shift_tried: Option<DateTime<Utc>>,
    /// A refresh asked for and the readings held meanwhile.
    pending: Option<Pending>,
    /// How the last reading was judged.
    judging: Option<Judging>,
}

struct Pending {
    reason: Reason,
    cutoff: DateTime<Utc>,
    held: Vec<Reading>,
}

impl MachineState {
    fn new(policy: &Adaptation) -> Self {
        Self {
            last: None,
            stream: StreamState::default(),
            episodes: episode::Tracker::new(QUIET_READINGS),
            open: HashMap::new(),
            budget: Budget::new(chrono::Duration::from_std(policy.budget_window).unwrap_or(chrono::Duration::days(1))),
            judged: 0,
            seen: 0,
            seen_at_open: HashMap::new(),
            refresh_from: None,
            shift_tried: None,
            pending: None,
            judging: None,
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

/// A machine's live detector as it stands (`GET /api/v1/machines/{id}/detector`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DetectorStatus {
    pub model_id: Uuid,
    /// The alarm budget: the share of data time the model is meant to flag.
    pub budget: f64,
    /// The interval the model learnt at, seconds.
    pub interval_s: f64,
    pub last_reading_at: Option<DateTime<Utc>>,
    /// Readings judged by this model here.
    pub judged: usize,
    /// The flagged share of the last budget window of data time (null until
    /// half of it is covered).
    pub flagged_share: Option<f64>,
    /// Hours of data in that window.
    pub window_hours: f64,
    /// How the last reading was judged: readings per training interval, and
    /// the fine spread learnt, in training σ (1 and 1 at the trained
    /// resolution).
    pub rate: f64,
    pub spread: f64,
    /// Fine readings the spread was learnt from.
    pub fine_readings: usize,
    pub open_episodes: usize,
    /// Data time from which the model is due for a refresh by data.
    pub refresh_due_after: Option<DateTime<Utc>>,
    /// The refresh running, by its reason (`data`, `budget`, `shift`), if any…
    pub refresh_pending: Option<&'static str>,
    /// …and the readings held for it.
    pub held: usize,
}

/// What judging a run of readings produced, handled after the locks.
#[derive(Default)]
struct Out {
    found: Vec<AnomalyRecord>,
    notices: Vec<Notice>,
    episodes: Vec<EpisodeRecord>,
    refreshes: Vec<Refresh>,
    alerts: Vec<Value>,
}

#[derive(Clone)]
pub struct Live {
    pub(super) store: Arc<dyn Store>,
    outlet: Arc<dyn Outlet>,
    detectors: Arc<RwLock<HashMap<Uuid, Arc<Detector>>>>,
    policy: Arc<Adaptation>,
    refreshes: mpsc::Sender<Refresh>,
    /// The refresher's end of the channel, until it is started.
    refresh_rx: Arc<Mutex<Option<mpsc::Receiver<Refresh>>>>,
}

impl Live {
    pub fn new(store: Arc<dyn Store>, outlet: Arc<dyn Outlet>) -> Self {
        Self::with_policy(store, outlet, Adaptation::default())
    }

    pub fn with_policy(store: Arc<dyn Store>, outlet: Arc<dyn Outlet>, policy: Adaptation) -> Self {
        let (refreshes, rx) = mpsc::channel(adapt::QUEUE);
        Self {
            store,
            outlet,
            detectors: Arc::default(),
            policy: Arc::new(policy),
            refreshes,
            refresh_rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// The adaptation settings.
    pub fn policy(&self) -> &Adaptation {
        &self.policy
    }

    /// The refresher's end of the refresh channel (once).
    pub(crate) fn take_refreshes(&self) -> Option<mpsc::Receiver<Refresh>> {
        self.refresh_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Loads every machine's active anomaly model.
    pub async fn reload_all(&self) -> Result<(), StoreError> {
        for m in self.store.list_machines().await? {
            self.reload(m.id).await?;
        }
        Ok(())
    }

    /// Rebuilds a machine's detector from its active models. The machine's
    /// stream state (open episodes, look-back, held readings) carries over
    /// to the new model; a first detector warms up on the machine's last
    /// hour of readings.
    pub async fn reload(&self, machine: Uuid) -> Result<(), StoreError> {
        let detector = match self.store.active_model(machine, "anomaly").await? {
            Some(record) => self.detector(record).await?,
            None => None,
        };
        let warm_up = match &detector {
            Some(_) if !self.has_detector(machine) => self.recent_readings(machine).await?,
            _ => Vec::new(),
        };
        {
            let mut map = self.detectors.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            match detector {
                Some(d) => {
                    match map.get(&machine) {
                        Some(old) => {
                            let mut old_state = old.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let mut state = std::mem::replace(&mut *old_state, MachineState::new(&self.policy));
                            state.stream.model_changed(old.model.interval_h, d.model.interval_h);
                            state.budget.reset();
                            state.judged = 0;
                            state.refresh_from = d.trained_until;
                            *d.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
                        }
                        None => d.warm_up(&warm_up),
                    }
                    map.insert(machine, Arc::new(d));
                }
                None => {
                    map.remove(&machine);
                }
            }
        }
        // Readings held for a refresh are judged by the new model now.
        self.release(machine, None, false).await;
        Ok(())
    }

    /// The machine's readings of the hour before its newest, oldest first.
    async fn recent_readings(&self, machine: Uuid) -> Result<Vec<Reading>, StoreError> {
        let Some(last) = self.store.get_machine(machine).await?.and_then(|m| m.last_reading_at) else {
            return Ok(Vec::new());
        };
        let query = ReadingQuery {
            machine_id: machine,
            start: last - chrono::Duration::hours(1),
            end: last + chrono::Duration::milliseconds(1),
            resolution: Resolution::Raw,
            limit: WARM_UP_READINGS,
        };
        let points = self.store.query_readings(&query).await?;
        Ok(points
            .into_iter()
            .map(|p| Reading {
                machine_id: machine,
                timestamp: p.timestamp,
                power_kw: p.power_kw,
                energy_kwh: p.energy_kwh,
                production_units: p.production_units,
                outdoor_temp_c: p.outdoor_temp_c,
                extra: p
                    .extra
                    .as_ref()
                    .and_then(Value::as_object)
                    .map(|o| o.iter().filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f))).collect())
                    .unwrap_or_default(),
            })
            .collect())
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
        let trained_until = record.metrics["period_end"].as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok());
        let mut state = MachineState::new(&self.policy);
        state.refresh_from = trained_until;
        Ok(Some(Detector { model_id: record.id, model, baseline, trained_until, state: Mutex::new(state) }))
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

    /// What a machine's live detector is doing (this instance's).
    pub fn status(&self, machine: Uuid) -> Option<DetectorStatus> {
        let map = self.detectors.read().ok()?;
        let d = map.get(&machine)?;
        let state = d.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let after = chrono::Duration::from_std(self.policy.refresh_after).unwrap_or(chrono::Duration::days(1));
        Some(DetectorStatus {
            model_id: d.model_id,
            budget: d.model.contamination,
            interval_s: d.model.interval_h * 3600.0,
            last_reading_at: state.last,
            judged: state.judged,
            flagged_share: state.budget.share(),
            window_hours: state.budget.judged_hours(),
            rate: state.judging.map_or(1.0, |j| j.rate),
            spread: state.judging.map_or(1.0, |j| j.spread),
            fine_readings: state.stream.fine_readings(),
            open_episodes: state.episodes.open().count(),
            refresh_due_after: state.refresh_from.map(|t| t + after),
            refresh_pending: state.pending.as_ref().map(|p| p.reason.as_str()),
            held: state.pending.as_ref().map_or(0, |p| p.held.len()),
        })
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
        let data = json!({
            "model_id": record.id.to_string(),
            "machine_id": record.machine_id,
            "model_type": record.model_type,
            "version": record.version,
            "metrics": record.metrics,
            "message": format!("{} model version {} is now active", record.model_type, record.version),
        });
        // Announced before the reload judges the readings a refresh held,
        // so the model is known by the time its findings arrive.
        if let Err(e) = self.outlet.publish(EventType::ModelUpdated, data).await {
            tracing::warn!(error = %e, "model_updated not published");
        }
        self.reload(record.machine_id).await?;
        Ok(record)
    }

    /// Scores freshly stored readings; saves each anomaly and announces
    /// each episode's opening, escalation and end.
    pub async fn observe(&self, readings: &[Reading]) {
        let mut out = Out::default();
        {
            let Ok(detectors) = self.detectors.read() else { return };
            if detectors.is_empty() {
                return;
            }
            for r in readings {
                let Some(d) = detectors.get(&r.machine_id) else { continue };
                let mut state = d.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                d.observe(&mut state, r, &self.policy, &mut out);
            }
        }
        self.finish(out).await;
    }

    /// Judges a machine's held readings with its current model (after a
    /// refresh: the new one; after a failed one, `failed`: the old one,
    /// which then waits another refresh amount before asking again).
    /// `cutoff` names the refresh they were held for (`None`: whichever).
    pub async fn release(&self, machine: Uuid, cutoff: Option<DateTime<Utc>>, failed: bool) {
        let mut out = Out::default();
        {
            let Ok(detectors) = self.detectors.read() else { return };
            let Some(d) = detectors.get(&machine) else { return };
            let mut state = d.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Held for a later refresh than the one that ended: not ours.
            if cutoff.is_some() && state.pending.as_ref().map(|p| p.cutoff) != cutoff {
                return;
            }
            let Some(pending) = state.pending.take() else { return };
            if failed {
                match pending.reason {
                    Reason::Data => {
                        state.refresh_from = Some(pending.cutoff);
                        state.judged = 0;
                    }
                    Reason::Budget { .. } => state.budget.reset(),
                    Reason::Shift { since } => state.shift_tried = Some(since),
                }
            }
            for r in &pending.held {
                d.observe(&mut state, r, &self.policy, &mut out);
            }
        }
        self.finish(out).await;
    }

    async fn finish(&self, out: Out) {
        let Out { found, mut notices, episodes, refreshes, alerts } = out;
        if !found.is_empty() || !notices.is_empty() {
            let new = self.save(&found).await;
            // An opening or escalation whose anomaly was already saved (a
            // re-sent reading) is not announced twice.
            let fresh: std::collections::HashSet<Uuid> = new.iter().map(|a| a.id).collect();
            notices.retain(|n| n.kind == EventType::AnomalyUpdated || fresh.contains(&n.anomaly.id));
            self.announce(&notices).await;
            // After the announcement: the episode row is one more commit,
            // and the operator should not wait for it.
            self.save_episodes(&episodes).await;
        }
        for alert in alerts {
            if let Err(e) = self.outlet.publish(EventType::SystemAlert, alert).await {
                tracing::warn!(error = %e, "system_alert not published");
            }
        }
        // Last: a refresh learns from the anomalies saved above (which
        // stretches to leave out), so they must be stored before it starts.
        for refresh in refreshes {
            let (machine, cutoff) = (refresh.machine, refresh.cutoff);
            if let Err(e) = self.refreshes.try_send(refresh) {
                tracing::warn!(%machine, error = %e, "model refresh not queued; the old model judges on");
                Box::pin(self.release(machine, Some(cutoff), true)).await;
            }
        }
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
    /// The interval a reading covers: the gap to the machine's previous
    /// one, or — out of order, the first seen, or after an outage — from
    /// its energy.
    fn interval(state: &mut MachineState, r: &Reading) -> Option<Interval> {
        let from_energy =
            (r.power_kw > 0.0 && r.energy_kwh > 0.0).then(|| (r.energy_kwh / r.power_kw).clamp(1e-4, MAX_INTERVAL_H));
        let hours = match state.last {
            Some(last) if r.timestamp > last => {
                let gap = (r.timestamp - last).num_milliseconds() as f64 / 3.6e6;
                // After an outage (a gap longer than an interval can be) the
                // reading's own energy says what it covers: a 5-second
                // reading after a night without data is a 5-second reading.
                // Not otherwise: a spike's power over its interval's energy
                // would read as a short interval.
                if gap > MAX_INTERVAL_H { from_energy.unwrap_or(MAX_INTERVAL_H) } else { gap }
            }
            _ => from_energy?,
        };
        state.last = state.last.max(Some(r.timestamp));
        Some(Interval { sample: sample(r), hours })
    }

    fn values(&self, r: &Reading) -> Vec<f64> {
        self.model.signals.iter().map(|m| reading_value(r, &m.signal).unwrap_or(f64::NAN)).collect()
    }

    fn expectation(&self) -> Expectation<'_> {
        match &self.baseline {
            Some(b) => Expectation::Baseline(b),
            None => Expectation::Profile,
        }
    }

    /// Judges readings without reporting them: what a new detector learns
    /// its stream state from.
    fn warm_up(&self, readings: &[Reading]) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in readings {
            let Some(iv) = Self::interval(&mut state, r) else { continue };
            state.stream.judge(&self.model, &iv, &self.values(r), &self.expectation());
        }
        // The look-back of the warm-up is history, not a finding in the making.
        state.stream.recent.clear_critical();
    }

    /// Whether the model should be refreshed before `r` is judged.
    fn due(&self, state: &MachineState, r: &Reading, policy: &Adaptation) -> Option<(Reason, Option<DateTime<Utc>>)> {
        let at = r.timestamp;
        let accept = chrono::Duration::from_std(policy.accept_after).unwrap_or(chrono::Duration::days(1));
        let lasted = |start: &DateTime<Utc>| state.seen - state.seen_at_open.get(start).copied().unwrap_or(state.seen);
        let shift = state.episodes.open().find(|e| {
            e.end - e.start >= accept
                && lasted(&e.start) >= MIN_TRAINING_ROWS as u64
                && state.shift_tried != Some(e.start)
        });
        if let Some(e) = shift {
            return Some((Reason::Shift { since: e.start }, Some(e.start)));
        }
        let budget = self.model.contamination;
        if state.episodes.open().next().is_none()
            && let Some(share) = state.budget.share()
            && share > policy.stale_factor * budget
            && state.budget.runs() >= STALE_RUNS
        {
            return Some((Reason::Budget { share, budget }, None));
        }
        let after = chrono::Duration::from_std(policy.refresh_after).unwrap_or(chrono::Duration::days(1));
        if state.refresh_from.is_some_and(|from| at - from >= after) && state.judged >= policy.refresh_min_readings {
            return Some((Reason::Data, None));
        }
        None
    }

    /// Judges one reading (or holds it while a refresh runs).
    fn observe(&self, state: &mut MachineState, r: &Reading, policy: &Adaptation, out: &mut Out) {
        if let Some(p) = &mut state.pending {
            if p.held.len() < adapt::MAX_HELD {
                p.held.push(r.clone());
                return;
            }
            tracing::warn!(machine = %r.machine_id, "too many readings held for a model refresh; judging with the old model");
        } else if state.last.is_some_and(|last| r.timestamp > last)
            && let Some((reason, floor)) = self.due(state, r, policy)
        {
            if !matches!(reason, Reason::Data) {
                out.alerts.push(alert(r.machine_id, &reason, self.model_id, r.timestamp));
            }
            // Asked for once: a budget counts afresh, a shift is not asked
            // for again (its episode goes on while the new model learns it).
            match &reason {
                Reason::Budget { .. } => state.budget.reset(),
                Reason::Shift { since } => state.shift_tried = Some(*since),
                Reason::Data => {}
            }
            out.refreshes.push(Refresh { machine: r.machine_id, cutoff: r.timestamp, reason: reason.clone(), floor });
            state.pending = Some(Pending { reason, cutoff: r.timestamp, held: vec![r.clone()] });
            return;
        }
        let Some(iv) = Self::interval(state, r) else { return };
        let (finding, judging) = state.stream.judge(&self.model, &iv, &self.values(r), &self.expectation());
        state.judging = Some(judging);
        state.judged += 1;
        state.seen += 1;
        state.budget.push(iv.sample.timestamp, iv.hours, finding.anomaly_type.is_some());
        let record = record(r.machine_id, &iv, &finding, "stream", Some(self.model_id));
        for change in state.episodes.push(iv.sample.timestamp, iv.hours, &finding) {
            match (change, &record) {
                (Change::Opened(e), Some(a)) => {
                    // Counted from the reading before it: the episode's own.
                    state.seen_at_open.insert(e.start, state.seen - 1);
                    let id = episode_id(r.machine_id, e.anomaly_type.as_str(), e.start);
                    state.open.insert(e.anomaly_type, (id, a.clone()));
                    out.notices.push(Notice {
                        kind: EventType::AnomalyDetected,
                        episode_id: id,
                        episode: e,
                        anomaly: a.clone(),
                        escalated: false,
                    });
                }
                (Change::Escalated(e), Some(a)) => {
                    let id = state.open.get(&e.anomaly_type).map_or_else(Uuid::new_v4, |(id, _)| *id);
                    out.notices.push(Notice {
                        kind: EventType::AnomalyDetected,
                        episode_id: id,
                        episode: e,
                        anomaly: a.clone(),
                        escalated: true,
                    });
                }
                (Change::Closed(e), _) => {
                    state.seen_at_open.remove(&e.start);
                    out.episodes.push(episode_record(r.machine_id, &e, "stream"));
                    if let Some((id, first)) = state.open.remove(&e.anomaly_type) {
                        out.notices.push(Notice {
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
            out.episodes.push(episode_record(r.machine_id, e, "stream"));
        }
        if let Some(record) = record {
            out.found.push(record);
        }
    }
}

/// The `system_alert` of a model found stale or a level shift accepted.
fn alert(machine: Uuid, reason: &Reason, model: Uuid, at: DateTime<Utc>) -> Value {
    let (alert_type, message) = match reason {
        Reason::Budget { share, budget } => (
            "model_stale",
            format!(
                "the anomaly model flagged {:.1} % of the last stretch of data against a budget of {:.1} %; \
                 refreshing it on the latest data",
                100.0 * share,
                100.0 * budget
            ),
        ),
        Reason::Shift { since } => (
            "level_shift_accepted",
            format!(
                "the machine has read differently since {}; taking that as its new normal and refreshing the model",
                since.to_rfc3339()
            ),
        ),
        Reason::Data => ("model_refresh", "refreshing the anomaly model on new data".to_owned()),
    };
    let mut details = reason.describe(at);
    details["machine_id"] = json!(machine);
    details["model_id"] = json!(model);
    json!({"alert_type": alert_type, "message": message, "severity": "warning", "source": "detector", "details": details})
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

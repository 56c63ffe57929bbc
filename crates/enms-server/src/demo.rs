//! The simulated factory of `--demo`: creates the demo machines, backfills
//! their history on first start (and any gap after a restart), then produces
//! live readings through the same ingest path as real data.

use chrono::{DateTime, Duration, DurationRound, Utc};
use enms_core::sim::{DEMO_MACHINES, Factory};
use enms_core::{MAX_BATCH_ROWS, MachineRecord, Reading};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::ServerError;
use crate::config::DemoConfig;
use crate::state::AppState;
use enms_jobs::detection::DetectPlan;
use enms_jobs::jobs::JobRequest;
use enms_jobs::training::{DEFAULT_CONTAMINATION, TrainRequest};

/// Spacing of backfilled history, as a typical interval meter reports.
const HISTORY_STEP: Duration = Duration::minutes(15);
/// The history ends at least this long before the start; the time between
/// is filled at the live interval, as if the meter had been streaming
/// already — so the detectors learn the live readings' own spread from
/// real fine data before the first live fault (docs/analytics.md,
/// *Resolution*), and the live charts open on a filled recent stretch.
const RECENT_AT_LIVE_INTERVAL: Duration = Duration::minutes(5);
/// At most this many recent readings per machine at the live interval.
const MAX_RECENT_READINGS: i32 = 1_000;

/// Makes sure the demo machines exist and their history is complete.
pub async fn prepare(state: &AppState, config: &DemoConfig) -> Result<Factory, ServerError> {
    let mut factory = Factory::new(config.seed);
    let now = Utc::now();
    let mut oldest_last: Option<DateTime<Utc>> = None;
    let mut fresh = false;
    for m in &DEMO_MACHINES {
        match state.store.get_machine(m.id).await? {
            Some(rec) => match rec.last_reading_at {
                Some(last) => oldest_last = Some(oldest_last.map_or(last, |o| o.min(last))),
                None => fresh = true,
            },
            None => {
                state.store.create_machine(&record(m, now)).await?;
                fresh = true;
            }
        }
    }
    let (history_start, end) = history_window(config);
    let start = if fresh {
        let plan = factory.plan_history(history_start, i64::from(config.history_days));
        state.store.record_injected(&plan).await?;
        history_start
    } else {
        oldest_last.map_or(end, |last| last.duration_trunc(HISTORY_STEP).unwrap_or(last))
    };
    for anomaly in state.store.list_injected().await? {
        factory.inject(anomaly);
    }
    if start < end {
        backfill(state, &factory, start, end, HISTORY_STEP).await?;
    }
    if fresh {
        let step = Duration::from_std(config.interval).unwrap_or(Duration::seconds(5));
        let now = Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap_or(now);
        let from = end.max(now - step * MAX_RECENT_READINGS);
        if from < now && config.history_end.is_none() {
            backfill(state, &factory, from, now, step).await?;
        }
    }
    Ok(factory)
}

/// Start and end of the backfilled history: it ends where configured or
/// now, on the 15-minute grid. One reading of the clock for both, so the two
/// cannot straddle a grid step.
fn history_window(config: &DemoConfig) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = config.history_end.unwrap_or_else(|| Utc::now() - RECENT_AT_LIVE_INTERVAL);
    let end = end.duration_trunc(HISTORY_STEP).unwrap_or(end);
    (end - Duration::days(i64::from(config.history_days)), end)
}

fn record(m: &enms_core::sim::DemoMachine, now: DateTime<Utc>) -> MachineRecord {
    MachineRecord {
        id: m.id,
        name: m.name.to_owned(),
        machine_type: m.machine_type.to_owned(),
        location: m.location.to_owned(),
        rated_power_kw: Some(m.rated_power_kw),
        created_at: now,
        last_reading_at: None,
    }
}

async fn backfill(
    state: &AppState,
    factory: &Factory,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Result<(), ServerError> {
    let t = std::time::Instant::now();
    let mut total = 0;
    let mut batch: Vec<Reading> = Vec::with_capacity(MAX_BATCH_ROWS);
    for reading in factory.history(start, end, step) {
        batch.push(reading);
        if batch.len() == MAX_BATCH_ROWS {
            total += flush(state, &mut batch).await?;
        }
    }
    total += flush(state, &mut batch).await?;
    tracing::info!(rows = total, from = %start, to = %end, elapsed_ms = t.elapsed().as_millis() as u64, "demo history backfilled");
    Ok(())
}

async fn flush(state: &AppState, batch: &mut Vec<Reading>) -> Result<usize, ServerError> {
    if batch.is_empty() {
        return Ok(0);
    }
    state.store.insert_readings(batch).await?;
    let n = batch.len();
    batch.clear();
    Ok(n)
}

/// On a first start, trains each demo machine's baseline and then its
/// anomaly model (on baseline residuals) as ordinary jobs, so their progress
/// shows live and detection works from the first minute; then runs
/// detection over each machine's whole history, also as jobs, so the faults
/// injected into it are findings (anomalies and episodes) when a visitor
/// first looks, not only after the next live one.
pub async fn train_first_models(state: AppState, config: DemoConfig) {
    // The baseline period covers the whole demo history, so analyses of any
    // part of it stay within the ranges the model has seen.
    let (start, end) = history_window(&config);
    let mut trained = Vec::new();
    for m in &DEMO_MACHINES {
        match state.store.active_model(m.id, "anomaly").await {
            Ok(None) => {}
            Ok(Some(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "demo models not checked");
                return;
            }
        }
        for (kind, use_baseline) in [("baseline", false), ("anomaly", true)] {
            let request = TrainRequest {
                use_baseline: Some(use_baseline),
                start: (kind == "baseline").then_some(start),
                end: Some(end),
                ..Default::default()
            };
            let req = request
                .into_job(m.id, kind, "manual", Some("demo start: first models".into()), None)
                .map(|(_, req)| req);
            let finished = match req {
                Ok(req) => state.analytics.jobs.submit(req).await,
                Err(e) => Err(e),
            };
            let finished = match finished {
                Ok(job) => state.analytics.jobs.wait(job.id).await,
                Err(e) => Err(e),
            };
            match finished {
                Ok(job) if kind == "anomaly" && job.status == enms_store::JobStatus::Completed => trained.push(m),
                Ok(_) => {}
                Err(e) => tracing::warn!(machine = m.name, kind, error = %e, "demo training not run"),
            }
        }
    }
    for m in trained {
        let plan = DetectPlan { start, end, contamination: DEFAULT_CONTAMINATION, use_baseline: true, signals: None };
        let request = serde_json::to_value(&plan).map(|params| JobRequest {
            machine_id: m.id,
            model_type: "detection".into(),
            trigger_type: "manual".into(),
            reason: Some("demo start: findings in the history".into()),
            params,
        });
        let submitted = match request {
            Ok(req) => state.analytics.jobs.submit(req).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = submitted {
            tracing::warn!(machine = m.name, error = %e, "demo history detection not run");
        }
    }
}

/// Produces one reading per demo machine every `config.interval` until `stop`.
pub async fn run_live(state: AppState, config: DemoConfig, mut factory: Factory, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_std(config.interval).unwrap_or(Duration::seconds(5));
    let mean_gap = Duration::from_std(config.fault_every).unwrap_or(Duration::minutes(10));
    let mut faults = factory.live_faults(Utc::now(), mean_gap);
    tracing::info!(first = %faults.next_at(), every = ?config.fault_every, "demo live faults scheduled");
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker.tick().await; // the first tick completes at once
    // The stream goes on from the newest stored reading: the time start-up
    // took (after the back-fill) is caught up at the live interval, so no
    // live reading covers a longer stretch than its own.
    let mut last = match state.store.get_machine(DEMO_MACHINES[0].id).await {
        Ok(Some(m)) => m.last_reading_at,
        _ => None,
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let now = Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap_or_else(|_| Utc::now());
        let mut stamps = Vec::new();
        if let Some(from) = last.filter(|l| now - *l > interval * 2 && now - *l < Duration::hours(1)) {
            let mut ts = from + interval;
            while ts < now {
                stamps.push(ts);
                ts += interval;
            }
        }
        stamps.push(now);
        last = Some(now);
        let mut readings: Vec<Reading> = Vec::with_capacity(stamps.len() * DEMO_MACHINES.len());
        for ts in stamps {
            if let Some(anomaly) = faults.due(ts, interval) {
                tracing::info!(machine = %anomaly.machine_id, description = %anomaly.description, "demo anomaly injected");
                if let Err(e) = state.store.record_injected(std::slice::from_ref(&anomaly)).await {
                    tracing::warn!(error = %e, "could not record the injected anomaly");
                }
                factory.inject(anomaly);
            }
            readings.extend(DEMO_MACHINES.iter().map(|m| factory.reading(m, ts, interval)));
        }
        for batch in readings.chunks(MAX_BATCH_ROWS) {
            if let Err(e) = state.ingest.store(batch).await {
                tracing::warn!(error = %e, "demo readings not stored");
            }
        }
    }
}

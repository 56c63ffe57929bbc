//! `--monitor-self`: the server records its own host as a machine of type
//! `host`, sampled with `enms-host` and stored through the ingest path
//! every reading takes (validation, durable commit, `metric_updated`,
//! streaming detection) — the same readings `enms agent` sends over HTTP.
//!
//! The machine is found by name, or created with the configured rated
//! power. A machine of that name that is not a host is left alone and the
//! monitor stops with an error in the log: it never writes host signals
//! into a compressor.

use enms_core::host::HOST_TYPE;
use enms_core::{MachineRecord, NewMachine};
use enms_host::{MonitorConfig, Sampler};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Starts the monitor when configured.
pub fn start(state: &AppState, stop: CancellationToken) -> Option<JoinHandle<()>> {
    let config = state.config.monitor.clone()?;
    Some(tokio::spawn(run(state.clone(), config, stop)))
}

async fn run(state: AppState, config: MonitorConfig, stop: CancellationToken) {
    let name = config.machine_name();
    // The store may be briefly away at start (PostgreSQL restarting): retry.
    let machine = loop {
        match register(&state, &name, config.rated_power_kw).await {
            Ok(Some(m)) => break m,
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, host = %name, "monitor: host machine not registered yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    };
    let rated = machine.rated_power_kw.unwrap_or(config.rated_power_kw);
    let sampler = match tokio::task::spawn_blocking(move || Sampler::new(rated)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::error!(error = %e, "monitor: this host cannot be sampled"),
        Err(e) => return tracing::error!(error = %e, "monitor: sampler failed to start"),
    };
    tracing::info!(host = %name, machine_id = %machine.id, measured_power = sampler.measures_power(),
        interval = ?config.interval, "monitoring this host");
    let mut sampler = Some(sampler);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + config.interval, config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // sysinfo reads /proc: a few milliseconds of blocking file I/O.
        let Some(mut s) = sampler.take() else { return };
        let Ok((s, sample)) = tokio::task::spawn_blocking(move || {
            let sample = s.sample();
            (s, sample)
        })
        .await
        else {
            return tracing::error!("monitor: sampling panicked");
        };
        sampler = Some(s);
        if let Err(e) = state.ingest.store(&[sample.reading(machine.id)]).await {
            tracing::warn!(error = %e.body.message, "monitor: sample not stored");
        }
    }
}

/// The host's machine, created when absent; `None` when the name belongs to
/// a machine of another type.
async fn register(state: &AppState, name: &str, rated_kw: f64) -> Result<Option<MachineRecord>, String> {
    if let Some(m) = state.store.find_machine_by_name(name).await.map_err(|e| e.to_string())? {
        if m.machine_type != HOST_TYPE {
            tracing::error!(name, machine_type = %m.machine_type,
                "monitor: a machine of this name exists and is not a host; set --monitor-name");
            return Ok(None);
        }
        return Ok(Some(m));
    }
    let new = NewMachine {
        id: None,
        name: name.to_owned(),
        machine_type: HOST_TYPE.to_owned(),
        location: "enms server".to_owned(),
        rated_power_kw: Some(rated_kw),
    };
    let record = new.validate(chrono::Utc::now()).map_err(|e| e.to_string())?;
    match state.store.create_machine(&record).await {
        Ok(()) => Ok(Some(record)),
        // Another instance of a scale-out registered it first.
        Err(enms_store::StoreError::Conflict { .. }) => {
            Ok(state.store.find_machine_by_name(name).await.map_err(|e| e.to_string())?)
        }
        Err(e) => Err(e.to_string()),
    }
}

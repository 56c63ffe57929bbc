//! `enms agent`: samples the host it runs on and sends the samples to a
//! server through the ordinary ingest path (`POST /api/v1/readings`).
//!
//! Two tasks share the spool (`enms_host::Spool`, behind a plain mutex
//! never held across an await):
//! - the sampler takes a sample every interval and appends it to the spool
//!   (flushed to disk) before anything else happens to it;
//! - the sender registers the host (finds the machine by name, or creates
//!   it as type `host`), then sends the spool's oldest samples in batches
//!   and commits them only after the server answered 2xx. A server away,
//!   slow or refusing for a while keeps them in the spool; it retries with
//!   backoff and then sends the backlog in order. Ingest is idempotent, so
//!   a batch re-sent after a crash between the answer and the commit
//!   stores nothing twice.
//!
//! Samples are spooled without a machine id and get the host's id when
//! sent: the agent can sample from its first second, before the server
//! has ever been reachable.
//!
//! A batch the server refuses for good (422: a reading past its retention,
//! or a value it deems impossible) can never be stored; it is logged and
//! dropped so it does not block the samples behind it. Everything else —
//! unreachable, 5xx, 429, 401/403 (a token being fixed) — is retried.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use enms_core::Machine;
use enms_core::host::HOST_TYPE;
use enms_host::{MonitorConfig, Sampler, Spool};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::AgentArgs;
use crate::client::{Client, ClientError};

/// Readings per request: a day of 5 s samples in 35 requests.
const BATCH: usize = 500;
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub async fn run(args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config =
        MonitorConfig { interval: args.interval, name: args.name.clone(), rated_power_kw: args.rated_power_kw };
    config.validate().map_err(|e| {
        let flag = match e.setting {
            "monitor interval" => "--interval",
            "monitor rated power" => "--rated-power-kw",
            _ => "--name",
        };
        format!("{flag}: {}", e.message)
    })?;
    let dir = args.spool.clone().unwrap_or_else(default_spool);
    let spool = Spool::open(&dir, args.max_spool_mib.saturating_mul(1 << 20))?;
    let pending = spool.pending_bytes();
    let spool = Arc::new(Mutex::new(spool));
    let rated = config.rated_power_kw;
    let sampler = tokio::task::spawn_blocking(move || Sampler::new(rated)).await??;
    let name = config.machine_name();
    eprintln!(
        "enms agent: sampling {name:?} every {:?} ({} power) → {}; spool {} ({pending} bytes unsent)",
        config.interval,
        if sampler.measures_power() { "measured" } else { "estimated" },
        args.client.server,
        dir.display(),
    );
    let stop = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let sender = Sender {
        client: Client::from_args(&args.client),
        spool: spool.clone(),
        name: name.clone(),
        rated_power_kw: config.rated_power_kw,
        machine: None,
    };
    let sending = tokio::spawn(sender.run(wake.clone(), stop.clone()));
    let sampling = tokio::spawn(sample_loop(sampler, config.interval, spool, wake, stop.clone()));
    shutdown_signal().await;
    stop.cancel();
    sampling.await??;
    // One last chance to send what is spooled; whatever is left stays on disk.
    let _ = tokio::time::timeout(Duration::from_secs(3), sending).await;
    Ok(())
}

fn default_spool() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/enms-agent"),
        None => PathBuf::from("enms-agent"),
    }
}

fn lock(spool: &Mutex<Spool>) -> MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|p| p.into_inner())
}

async fn sample_loop(
    sampler: Sampler,
    interval: Duration,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> Result<(), enms_host::HostError> {
    let mut sampler = Some(sampler);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let Some(s) = sampler.take() else { return Ok(()) };
        let spool = spool.clone();
        // Reading /proc and the fsync of the spool are blocking I/O.
        let (s, appended) = tokio::task::spawn_blocking(move || {
            let mut s = s;
            let reading = s.sample().reading(Uuid::nil());
            let appended = lock(&spool).append(&reading);
            (s, appended)
        })
        .await
        .map_err(|e| enms_host::HostError::Unsupported(format!("sampling panicked: {e}")))?;
        sampler = Some(s);
        match appended {
            Ok(()) => wake.notify_one(),
            // A full disk: keep sampling, the next append may succeed.
            Err(e) => tracing::error!(error = %e, "sample not spooled"),
        }
    }
}

struct Sender {
    client: Client,
    spool: Arc<Mutex<Spool>>,
    name: String,
    rated_power_kw: f64,
    machine: Option<Uuid>,
}

/// What to do after a failed attempt.
enum Failure {
    Retry(String),
    /// The server refused the batch for good.
    Refused(String),
    /// The machine is gone (deleted while the agent ran): register again.
    Unregistered,
}

impl Sender {
    async fn run(mut self, wake: Arc<Notify>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.send_all(&stop).await {
                Ok(()) => {
                    backoff = Duration::from_millis(500);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = wake.notified() => {}
                    }
                }
                Err(reason) => {
                    tracing::warn!(%reason, retry_in = ?backoff, "enms agent: server unavailable, samples kept in the spool");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sends until the spool is empty.
    async fn send_all(&mut self, stop: &CancellationToken) -> Result<(), String> {
        loop {
            let machine = match self.machine {
                Some(id) => id,
                None => {
                    let id = self.register().await?;
                    self.machine = Some(id);
                    id
                }
            };
            let batch = lock(&self.spool).peek(BATCH).map_err(|e| e.to_string())?;
            if batch.readings.is_empty() {
                if batch.end > 0 {
                    lock(&self.spool).commit(batch.end).map_err(|e| e.to_string())?;
                }
                return Ok(());
            }
            let mut readings = batch.readings;
            for r in &mut readings {
                r.machine_id = machine;
            }
            match self.post(&readings).await {
                Ok(()) => lock(&self.spool).commit(batch.end).map_err(|e| e.to_string())?,
                Err(Failure::Refused(reason)) => {
                    tracing::error!(%reason, dropped = readings.len(), "enms agent: the server refused a batch for good; dropped");
                    lock(&self.spool).commit(batch.end).map_err(|e| e.to_string())?;
                }
                Err(Failure::Unregistered) => self.machine = None,
                Err(Failure::Retry(reason)) => return Err(reason),
            }
            if stop.is_cancelled() {
                return Ok(());
            }
        }
    }

    async fn post(&self, readings: &[enms_core::Reading]) -> Result<(), Failure> {
        let answer: Result<serde_json::Value, ClientError> =
            self.client.post_json("/api/v1/readings", &json!({ "readings": readings })).await;
        match answer {
            Ok(_) => Ok(()),
            Err(ClientError::Api { status: 422, message, .. }) if message.contains("unknown machine") => {
                Err(Failure::Unregistered)
            }
            Err(ClientError::Api { status: 422, message, .. }) => Err(Failure::Refused(message)),
            Err(e) => Err(Failure::Retry(e.to_string())),
        }
    }

    /// The host's machine id: found by name, or created as a host.
    async fn register(&self) -> Result<Uuid, String> {
        let machines: Vec<Machine> = self.client.machines().await.map_err(|e| e.to_string())?;
        if let Some(m) = machines.iter().find(|m| m.name.eq_ignore_ascii_case(&self.name)) {
            if m.machine_type != HOST_TYPE {
                return Err(format!(
                    "machine {:?} exists and is of type {:?}, not host; give the agent another --name",
                    m.name, m.machine_type
                ));
            }
            return Ok(m.id);
        }
        let body = json!({"name": self.name, "type": HOST_TYPE, "rated_power_kw": self.rated_power_kw,
                          "location": ""});
        let created: Result<Machine, ClientError> = self.client.post_json("/api/v1/machines", &body).await;
        match created {
            Ok(m) => {
                tracing::info!(machine_id = %m.id, name = %m.name, "enms agent: host registered");
                Ok(m.id)
            }
            Err(ClientError::Api { status: 403, .. }) => Err(format!(
                "registering {:?} needs an admin token (or create the machine, type host, once with one)",
                self.name
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

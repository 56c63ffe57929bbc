//! Modbus TCP polling for enms: each configured meter is read on its
//! interval by a task of its own (`tokio-modbus`), its registers become a
//! reading, and the reading goes to a [`MeterSink`] — in a server, the same
//! ingest path as HTTP.
//!
//! A running energy counter gives each reading the energy used since the
//! previous poll (its step across a rollover at 2¹⁶ or 2³²); the first poll
//! after a start only learns the counter. A connect or read that fails or
//! takes longer than the meter's timeout drops the connection; the next try
//! waits twice as long each time (up to a minute). After `fail_after`
//! failures in a row the meter counts as not answering: one `system_alert`
//! goes out, no readings arrive (so the machine turns offline after
//! `offline_after`), and another alert says when it answers again.
//!
//! Layout: `config` (`[[modbus.meters]]` and its checks), `decode`
//! (register words → values, counter steps), this file (the poll loop and
//! [`MeterStatus`]).

pub mod config;
pub mod decode;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_modbus::client::{Context, Reader};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::{Kind, Meter, ModbusConfig, Register, WordOrder};

/// Longest wait between two tries at a meter that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where readings and alerts go, implemented by the server.
#[async_trait::async_trait]
pub trait MeterSink: Send + Sync + 'static {
    /// The id of the machine with this name or id (`Ok(None)`: none).
    async fn machine(&self, name_or_id: &str) -> Result<Option<Uuid>, String>;
    /// Stores readings through the ingest path; the error says why not.
    async fn store(&self, readings: &[enms_core::Reading]) -> Result<usize, String>;
    /// Raises a `system_alert` about a meter; `severity` is `warning` or `info`.
    async fn alert(&self, message: String, severity: &'static str);
}

/// One meter, as `/api/v1/health` shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MeterStatus {
    pub machine: String,
    pub address: String,
    /// `starting`, `ok`, `failing` (some failed polls) or `unreachable`
    /// (`fail_after` in a row).
    pub state: String,
    pub polls: u64,
    pub readings: u64,
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reading_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The running pollers.
#[derive(Clone, Default)]
pub struct Modbus {
    meters: Vec<Arc<Mutex<MeterStatus>>>,
}

impl Modbus {
    pub fn status(&self) -> Vec<MeterStatus> {
        self.meters.iter().map(|m| lock(m).clone()).collect()
    }
}

fn lock(m: &Mutex<MeterStatus>) -> std::sync::MutexGuard<'_, MeterStatus> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts one poller per meter; they run until `stop`. The configuration
/// must have passed [`ModbusConfig::validate`].
pub fn start(
    config: ModbusConfig,
    sink: Arc<dyn MeterSink>,
    stop: CancellationToken,
) -> (Modbus, Vec<tokio::task::JoinHandle<()>>) {
    let mut modbus = Modbus::default();
    let mut tasks = Vec::new();
    for meter in config.meters {
        let status = Arc::new(Mutex::new(MeterStatus {
            machine: meter.machine.clone(),
            address: format!("{}:{} unit {}", meter.host, meter.port, meter.unit),
            state: "starting".into(),
            ..MeterStatus::default()
        }));
        modbus.meters.push(status.clone());
        let poller = Poller { meter, sink: sink.clone(), status, ctx: None, counter: None, machine_id: None };
        tasks.push(tokio::spawn(poller.run(stop.clone())));
    }
    (modbus, tasks)
}

struct Poller {
    meter: Meter,
    sink: Arc<dyn MeterSink>,
    status: Arc<Mutex<MeterStatus>>,
    ctx: Option<Context>,
    /// The energy counter at the previous poll.
    counter: Option<f64>,
    machine_id: Option<Uuid>,
}

impl Poller {
    async fn run(mut self, stop: CancellationToken) {
        let mut failures_in_row: u32 = 0;
        let mut unreachable = false;
        loop {
            let outcome = tokio::select! {
                r = self.poll() => r,
                _ = stop.cancelled() => break,
            };
            let wait = match outcome {
                Ok(stored) => {
                    if unreachable {
                        let message = format!("meter {} answers again", self.meter.label());
                        tracing::info!(meter = %self.meter.label(), "meter answers again");
                        self.sink.alert(message, "info").await;
                    }
                    unreachable = false;
                    failures_in_row = 0;
                    let mut s = lock(&self.status);
                    s.polls += 1;
                    s.state = "ok".into();
                    if stored {
                        s.readings += 1;
                        s.last_reading_at = Some(Utc::now());
                    }
                    self.meter.interval()
                }
                Err(e) => {
                    // Whatever the connection was in the middle of is lost.
                    self.ctx = None;
                    failures_in_row += 1;
                    tracing::warn!(meter = %self.meter.label(), error = %e, failures = failures_in_row, "meter poll failed");
                    let now_unreachable = failures_in_row >= self.meter.fail_after;
                    {
                        let mut s = lock(&self.status);
                        s.polls += 1;
                        s.failures += 1;
                        s.last_error = Some(e.clone());
                        s.state = if now_unreachable { "unreachable" } else { "failing" }.into();
                    }
                    if now_unreachable && !unreachable {
                        unreachable = true;
                        let message = format!(
                            "meter {} does not answer ({} failed polls in a row): {e}",
                            self.meter.label(),
                            failures_in_row
                        );
                        self.sink.alert(message, "warning").await;
                    }
                    let doubled = self.meter.interval().saturating_mul(1 << failures_in_row.min(6));
                    doubled.min(MAX_BACKOFF)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
        }
        if let Some(mut ctx) = self.ctx.take() {
            let _ =
                tokio::time::timeout(self.meter.timeout(), tokio_modbus::client::Client::disconnect(&mut ctx)).await;
        }
    }

    /// One poll: `Ok(true)` when a reading was stored, `Ok(false)` when the
    /// poll only learnt the counter.
    async fn poll(&mut self) -> Result<bool, String> {
        let timeout = self.meter.timeout();
        let machine_id = match self.machine_id {
            Some(id) => id,
            None => {
                let id = self
                    .sink
                    .machine(&self.meter.machine)
                    .await?
                    .ok_or_else(|| format!("no machine named or with id {:?}", self.meter.machine))?;
                self.machine_id = Some(id);
                id
            }
        };
        if self.ctx.is_none() {
            let addr = tokio::net::lookup_host((self.meter.host.as_str(), self.meter.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.meter.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", self.meter.host))?;
            let slave = tokio_modbus::Slave(self.meter.unit);
            let ctx = tokio::time::timeout(timeout, tokio_modbus::client::tcp::connect_slave(addr, slave))
                .await
                .map_err(|_| format!("connect timed out after {} ms", self.meter.timeout_ms))?
                .map_err(|e| format!("connect: {e}"))?;
            self.ctx = Some(ctx);
        }
        let at = Utc::now().duration_trunc(chrono::Duration::milliseconds(1)).unwrap_or_else(|_| Utc::now());
        let mut values = Vec::with_capacity(self.meter.registers.len());
        for r in &self.meter.registers {
            let ctx = self.ctx.as_mut().ok_or("not connected")?;
            let words = tokio::time::timeout(timeout, ctx.read_holding_registers(r.address, r.kind.words()))
                .await
                .map_err(|_| format!("register {}: read timed out after {} ms", r.address, self.meter.timeout_ms))?
                .map_err(|e| format!("register {}: {e}", r.address))?
                .map_err(|e| format!("register {}: the meter answers exception {e:?}", r.address))?;
            let v = decode::value(r.kind, r.word_order, &words)
                .ok_or_else(|| format!("register {}: {words:?} is no {:?} value", r.address, r.kind))?;
            values.push((r, v));
        }
        let mut reading = Map::new();
        let mut extra = Map::new();
        let mut energy = None;
        for (r, v) in values {
            let scaled = v * r.scale;
            match r.field.as_str() {
                "energy_counter_kwh" => {
                    let modulus = r.kind.modulus().unwrap_or(f64::INFINITY);
                    energy = self.counter.map(|before| decode::counter_step(before, v, modulus) * r.scale);
                    self.counter = Some(v);
                }
                "power_kw" | "energy_kwh" | "production_units" | "outdoor_temp_c" => {
                    reading.insert(r.field.clone(), json!(scaled));
                }
                other => {
                    extra.insert(other.to_owned(), json!(scaled));
                }
            }
        }
        if let Some(e) = energy {
            reading.insert("energy_kwh".into(), json!(e));
        }
        if !reading.contains_key("energy_kwh") {
            return Ok(false);
        }
        reading.insert("machine_id".into(), json!(machine_id));
        reading.insert("timestamp".into(), json!(at.to_rfc3339()));
        if !extra.is_empty() {
            reading.insert("extra".into(), Value::Object(extra));
        }
        let body = serde_json::to_vec(&[Value::Object(reading)]).map_err(|e| e.to_string())?;
        let readings = enms_core::parse_batch(&body, Utc::now()).map_err(|e| format!("not a reading: {e}"))?;
        self.sink.store(&readings).await?;
        Ok(true)
    }
}

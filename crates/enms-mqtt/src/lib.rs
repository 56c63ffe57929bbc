//! MQTT ingest for enms: one client session at a broker, subscribed to the
//! configured topic filters, turning each message into readings and handing
//! them to a [`ReadingSink`] — in a server, the same ingest path as HTTP
//! (validation, durable commit, streaming detection).
//!
//! Delivery: the session is persistent (clean session off, a fixed client
//! id) and subscribed at QoS 1, and a message is acknowledged only once its
//! readings are stored — so what a PLC publishes while enms is down or its
//! database is unreachable waits at the broker and arrives later, and a
//! crash between storing and acknowledging gives a redelivery, which the
//! idempotent ingest (machine, timestamp) absorbs. A message that cannot be
//! a reading is acknowledged too, counted by reason and logged: it never
//! stops the subscription. When more than `alert_bad_share` of the last
//! [`ALERT_WINDOW`] messages were refused, a `system_alert` goes out.
//!
//! Events out (`[mqtt.publish]`): a relay task reads the durable events
//! after its position from an [`EventSource`] (in a server, the bus's
//! window and log) and publishes each, QoS 1, to `<prefix>/<type>`. It
//! never sits in the bus's path: a slow or absent broker only holds the
//! relay back (the client's queue is bounded), and the log keeps what it has
//! not sent yet. Falling behind the log's retention is counted as missed
//! and raises a `system_alert`.
//!
//! Layout: `config` (`[mqtt]` and its checks), `tls` (`mqtts://`: the
//! rustls client from the CA and client-certificate files), `decode`
//! (payload formats → readings), this file (the session loop, the relay and [`MqttStatus`]).

pub mod config;
pub mod decode;
pub mod tls;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use enms_core::Reading;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::{Format, MqttConfig, Outbound, Subscription};
use decode::{Pending, Refusal};
pub use enms_core::feed::{EventPage, EventSource};

/// The longest gap between two plain numbers that still makes a reading.
pub const MAX_NUMBER_GAP: Duration = Duration::from_secs(3600);
/// Messages the refused share is measured over.
pub const ALERT_WINDOW: usize = 50;
/// Least time between two bad-share alerts.
const ALERT_EVERY: Duration = Duration::from_secs(300);
/// Wait between reconnects, and between retries of a store that failed.
const RETRY: Duration = Duration::from_secs(1);

/// Where readings go, implemented by the server over its ingest path.
#[async_trait::async_trait]
pub trait ReadingSink: Send + Sync + 'static {
    /// The id of the machine with this name or id (`Ok(None)`: none).
    async fn machine(&self, name_or_id: &str) -> Result<Option<Uuid>, SinkError>;
    /// Stores readings durably (and runs whatever follows ingest).
    async fn store(&self, readings: &[Reading]) -> Result<usize, SinkError>;
    /// Raises a `system_alert` about the MQTT input.
    async fn alert(&self, message: String);
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The readings break a rule: the message is refused.
    #[error("{0}")]
    Refused(String),
    /// Storage is away: keep the message and try again.
    #[error("{0}")]
    Unavailable(String),
}

/// What `/api/v1/health` shows of the MQTT input.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MqttStatus {
    pub connected: bool,
    pub broker: String,
    pub client_id: String,
    /// Messages taken, per subscription (its topic filter).
    pub messages: BTreeMap<String, u64>,
    pub readings_stored: u64,
    pub rejected: u64,
    /// Refused messages by reason (`not_json`, `missing_field`,
    /// `invalid_reading`, `unknown_machine`, `no_machine`).
    pub rejected_by_reason: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rejection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Events published to the broker (`[mqtt.publish]`).
    pub events_published: u64,
    /// Events the relay fell too far behind to send (past the log's
    /// retention).
    pub events_missed: u64,
}

/// A running MQTT input: its status, shared with `/health`.
#[derive(Clone)]
pub struct Mqtt {
    status: Arc<Mutex<MqttStatus>>,
}

impl Mqtt {
    pub fn status(&self) -> MqttStatus {
        lock(&self.status).clone()
    }
}

fn lock(m: &Mutex<MqttStatus>) -> std::sync::MutexGuard<'_, MqttStatus> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the session; it runs until `stop`. The configuration must have
/// passed [`MqttConfig::validate`].
pub fn start(
    config: MqttConfig,
    sink: Arc<dyn ReadingSink>,
    events: Arc<dyn EventSource>,
    stop: CancellationToken,
) -> (Mqtt, tokio::task::JoinHandle<()>) {
    let status = Arc::new(Mutex::new(MqttStatus {
        broker: config.url.clone(),
        client_id: config.client_id.clone(),
        ..MqttStatus::default()
    }));
    let mqtt = Mqtt { status: status.clone() };
    let task = tokio::spawn(run(config, sink, events, status, stop));
    (mqtt, task)
}

async fn run(
    config: MqttConfig,
    sink: Arc<dyn ReadingSink>,
    events: Arc<dyn EventSource>,
    status: Arc<Mutex<MqttStatus>>,
    stop: CancellationToken,
) {
    let (broker, tls) = match config.broker().and_then(|b| Ok((b, tls::client_config(&config)?))) {
        Ok(b) => b,
        Err(e) => {
            lock(&status).last_error = Some(format!("{}: {}", e.setting, e.message));
            return;
        }
    };
    let mut options = MqttOptions::new(config.client_id.clone(), broker.host, broker.port);
    if let Some(tls) = tls {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    options.set_keep_alive(config.keep_alive());
    options.set_clean_session(false);
    options.set_manual_acks(true);
    if let Some(user) = &config.username {
        // Checked by validate; read again here so a rotated file is taken
        // on the next start.
        let password = config.password().ok().flatten().unwrap_or_default();
        options.set_credentials(user.clone(), password);
    }
    let (client, mut events_in) = AsyncClient::new(options, 64);
    let relay = config.publish.clone().map(|out| {
        let relay = Relay { out, client: client.clone(), source: events, sink: sink.clone(), status: status.clone() };
        tokio::spawn(relay.run(stop.clone()))
    });
    let mut input = Input {
        config: &config,
        sink,
        status: status.clone(),
        recent: VecDeque::new(),
        alerted: None,
        machines: HashMap::new(),
        numbers: HashMap::new(),
    };
    // Acks waiting for room in the client's request queue. `try_ack` fails
    // while the queue is full (a fast publisher), and a dropped ack stalls
    // the session: the broker stops sending once its in-flight window is
    // unacknowledged. Each poll of the event loop drains the queue, so the
    // acks go out in order as room frees up; the broker's window bounds how
    // many wait here.
    let mut acks: VecDeque<Publish> = VecDeque::new();
    loop {
        while let Some(p) = acks.front() {
            if client.try_ack(p).is_err() {
                break;
            }
            acks.pop_front();
        }
        let event = tokio::select! {
            e = events_in.poll() => e,
            _ = stop.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(broker = %config.url, session_present = ack.session_present, "mqtt connected");
                lock(&status).connected = true;
                for s in &config.subscriptions {
                    if let Err(e) = client.try_subscribe(s.broker_filter(), QoS::AtLeastOnce) {
                        tracing::warn!(topic = %s.topic, error = %e, "mqtt subscribe not sent");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let stored = tokio::select! {
                    done = input.take(&p) => done,
                    _ = stop.cancelled() => false,
                };
                // Unstored (stopping with the database away): no ack, so the
                // broker hands it to the next session.
                if !stored {
                    break;
                }
                acks.push_back(p);
            }
            Ok(_) => {}
            Err(e) => {
                // The broker sends the unacknowledged again in the next
                // session (stored ones are absorbed by the idempotent ingest);
                // an old packet id is never acknowledged into a new session.
                acks.clear();
                {
                    let mut s = lock(&status);
                    if s.connected {
                        tracing::warn!(broker = %config.url, error = %e, "mqtt connection lost; reconnecting");
                    }
                    s.connected = false;
                    s.last_error = Some(e.to_string());
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
    // Let the disconnect go out so the broker does not wait for a timeout.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(e) = events_in.poll().await {
            if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    lock(&status).connected = false;
    if let Some(task) = relay {
        let _ = task.await;
    }
}

/// Publishes the durable events after its position, in order.
struct Relay {
    out: Outbound,
    client: AsyncClient,
    source: Arc<dyn EventSource>,
    sink: Arc<dyn ReadingSink>,
    status: Arc<Mutex<MqttStatus>>,
}

/// Between two looks at the log when there was nothing new.
const RELAY_IDLE: Duration = Duration::from_millis(100);
const RELAY_PAGE: usize = 500;

impl Relay {
    async fn run(self, stop: CancellationToken) {
        // Validated: the configuration's types parse.
        let types = self.out.event_types().unwrap_or_default();
        // From the newest event at start: what came before was for the
        // clients of that time.
        let mut position = loop {
            match self.source.after(None, &types, 1).await {
                Ok(page) => break page.events.last().map(|(id, _, _)| *id).unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "mqtt relay cannot read the event log yet");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        loop {
            // Read before the page: a short page means nothing of ours up
            // to it, so the next read starts there instead of re-scanning.
            let head = self.source.head().await;
            let page = tokio::select! {
                p = self.source.after(Some(position), &types, RELAY_PAGE) => p,
                _ = stop.cancelled() => return,
            };
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "mqtt relay: event log not read");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = stop.cancelled() => return,
                    }
                    continue;
                }
            };
            if !page.complete {
                lock(&self.status).events_missed += 1;
                let message = format!(
                    "MQTT event relay to {} fell behind the event log after {position}; some events were not published",
                    self.out.prefix
                );
                tracing::warn!("{message}");
                self.sink.alert(message).await;
            }
            let short = page.events.len() < RELAY_PAGE;
            if page.events.is_empty() {
                if let Some(h) = head.filter(|h| short && *h > position) {
                    position = h;
                }
                tokio::select! {
                    _ = tokio::time::sleep(RELAY_IDLE) => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            for (id, kind, payload) in page.events {
                let topic = format!("{}/{}", self.out.prefix, kind.as_str());
                // Waits while the client's queue is full (the broker is
                // slow or away): the relay falls behind, the bus does not.
                let sent = tokio::select! {
                    r = self.client.publish(topic, QoS::AtLeastOnce, false, payload.to_vec()) => r,
                    _ = stop.cancelled() => return,
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "mqtt relay stopped");
                    return;
                }
                position = id;
                lock(&self.status).events_published += 1;
            }
            if let Some(h) = head.filter(|h| short && *h > position) {
                position = h;
            }
        }
    }
}

/// One message at a time: decode, resolve, store, count.
struct Input<'a> {
    config: &'a MqttConfig,
    sink: Arc<dyn ReadingSink>,
    status: Arc<Mutex<MqttStatus>>,
    /// Outcomes of the last messages (true: refused).
    recent: VecDeque<bool>,
    alerted: Option<Instant>,
    /// Machine ids by the name or id a topic or payload gave (lower case):
    /// one store lookup per machine, not one per message. Emptied when the
    /// store refuses readings, in case a machine was renamed or deleted.
    machines: HashMap<String, Uuid>,
    /// Plain numbers: when each (subscription, machine) last sent one.
    numbers: HashMap<(String, String), chrono::DateTime<Utc>>,
}

impl Input<'_> {
    /// True once the message is handled (stored, or refused for good).
    async fn take(&mut self, p: &Publish) -> bool {
        let Some((sub, named)) =
            self.config.subscriptions.iter().find_map(|s| s.matches(&p.topic).map(|named| (s, named)))
        else {
            // A topic of an old subscription the persistent session still holds.
            return true;
        };
        let topic_machine = named.iter().find(|(k, _)| k == "machine").map(|(_, v)| v.as_str());
        lock(&self.status).messages.entry(sub.topic.clone()).and_modify(|n| *n += 1).or_insert(1);
        let now = Utc::now();
        let outcome = match decode::decode(sub, &p.payload, topic_machine, now) {
            Ok(pending) if sub.format == Format::Number => match self.integrate(sub, pending, now) {
                pending if pending.is_empty() => Ok(Some(0)),
                pending => self.store(pending).await,
            },
            Ok(pending) => self.store(pending).await,
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok(Some(n)) => {
                lock(&self.status).readings_stored += n as u64;
                self.outcome(false).await;
                true
            }
            Ok(None) => false,
            Err(refusal) => {
                tracing::warn!(topic = %p.topic, reason = refusal.reason(), error = %refusal, "mqtt message refused");
                {
                    let mut s = lock(&self.status);
                    s.rejected += 1;
                    s.rejected_by_reason.entry(refusal.reason().into()).and_modify(|n| *n += 1).or_insert(1);
                    s.last_rejection = Some(format!("{}: {refusal}", p.topic));
                }
                self.outcome(true).await;
                true
            }
        }
    }

    /// Plain numbers: each reading's energy is its power over the time since
    /// the machine's previous number on this subscription. A first number,
    /// or one after more than [`MAX_NUMBER_GAP`], only starts the count.
    fn integrate(&mut self, sub: &Subscription, pending: Vec<Pending>, now: chrono::DateTime<Utc>) -> Vec<Pending> {
        pending
            .into_iter()
            .filter_map(|mut p| {
                let key = (sub.topic.clone(), p.machine.trim().to_lowercase());
                let before = self.numbers.insert(key, now)?;
                let hours = (now - before).num_microseconds()? as f64 / 3.6e9;
                if hours <= 0.0 || hours > MAX_NUMBER_GAP.as_secs_f64() / 3600.0 {
                    return None;
                }
                let kw = p.reading.get("power_kw").and_then(serde_json::Value::as_f64)?;
                p.reading.insert("energy_kwh".into(), serde_json::json!(kw * hours));
                Some(p)
            })
            .collect()
    }

    /// `Ok(None)`: never stored (the caller is stopping).
    async fn store(&mut self, pending: Vec<Pending>) -> Result<Option<usize>, Refusal> {
        let mut rows = Vec::with_capacity(pending.len());
        for p in pending {
            let key = p.machine.trim().to_lowercase();
            let id = loop {
                if let Some(id) = self.machines.get(&key) {
                    break *id;
                }
                match self.sink.machine(&p.machine).await {
                    Ok(Some(id)) => {
                        self.machines.insert(key.clone(), id);
                        break id;
                    }
                    Ok(None) => return Err(Refusal::UnknownMachine(p.machine)),
                    Err(e) => self.wait(&e).await,
                }
            };
            let mut reading = p.reading;
            reading.insert("machine_id".into(), serde_json::Value::String(id.to_string()));
            rows.push(serde_json::Value::Object(reading));
        }
        let body = serde_json::to_vec(&rows).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let readings = enms_core::parse_batch(&body, Utc::now()).map_err(|e| Refusal::Invalid(e.to_string()))?;
        loop {
            match self.sink.store(&readings).await {
                Ok(n) => return Ok(Some(n)),
                Err(SinkError::Refused(m)) => {
                    self.machines.clear();
                    return Err(Refusal::Invalid(m));
                }
                Err(e) => self.wait(&e).await,
            }
        }
    }

    async fn wait(&self, e: &SinkError) {
        tracing::warn!(error = %e, "mqtt readings not stored yet; retrying");
        lock(&self.status).last_error = Some(e.to_string());
        tokio::time::sleep(RETRY).await;
    }

    async fn outcome(&mut self, refused: bool) {
        self.recent.push_back(refused);
        if self.recent.len() > ALERT_WINDOW {
            self.recent.pop_front();
        }
        let bad = self.recent.iter().filter(|r| **r).count();
        let share = bad as f64 / self.recent.len() as f64;
        let full = self.recent.len() >= ALERT_WINDOW.min(10);
        if full && share > self.config.alert_bad_share && self.alerted.is_none_or(|t| t.elapsed() >= ALERT_EVERY) {
            self.alerted = Some(Instant::now());
            let last = lock(&self.status).last_rejection.clone().unwrap_or_default();
            self.sink
                .alert(format!(
                    "MQTT input {}: {bad} of the last {} messages refused ({:.0} %); last: {last}",
                    self.config.url,
                    self.recent.len(),
                    share * 100.0
                ))
                .await;
        }
    }
}

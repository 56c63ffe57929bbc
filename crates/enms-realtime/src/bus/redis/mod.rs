//! The Redis Streams bus, for several instances behind a load balancer.
//!
//! Every event is appended to one stream (`XADD … MAXLEN ~ N`); the stream
//! entry id *is* the event id, so ids are ordered across instances and a
//! client can resume on any instance. Each instance reads the stream with
//! `XREAD BLOCK` on a connection of its own ([`reader`]) into its local
//! window and fans out locally; the instance that published an event also
//! appends it to the store's durable log, which keeps history beyond the
//! stream's length and across Redis restarts (Redis here keeps nothing on
//! disk).
//!
//! History completeness: a `floor` key, set in the same script as the first
//! append into a fresh stream, records the newest id the stream cannot hold
//! (what existed before it was created); with the stream's
//! `max-deleted-entry-id` (trimming) it tells whether a resume from the
//! stream is complete, and otherwise the durable log answers, as on the
//! in-process bus.
//!
//! Outage ([`publisher`]): publishing never blocks on Redis. Events wait in a
//! bounded buffer and are appended, in order, when Redis answers again;
//! `publish` answers [`Accepted::Buffered`]. Health turns `degraded` and a
//! local `system_alert` goes to this instance's clients. Readers resume from
//! their last stream id, so nothing is lost or repeated.
//!
//! The seeds' plain pub/sub channels are bridged in ([`bridge`]).

mod bridge;
mod publisher;
mod reader;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use enms_core::event::{Event, EventId, EventType};
use enms_core::payload::validate_payload;
use enms_core::setting::{InvalidSetting, at_least_one};
use enms_store::Store;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::window::Window;
use super::{Accepted, BusConfig, BusError, BusStatus, EventBus, FanOut, Filter, Published, Replay, log};

/// Where the shared bus lives and how much it keeps.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Key prefix: the stream is `<prefix>:events`.
    pub prefix: String,
    /// Approximate stream length kept (`MAXLEN ~`).
    pub stream_max_len: usize,
    /// Events held while Redis is unreachable; beyond it publishing fails
    /// with 503.
    pub buffer: usize,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: "enms".into(), stream_max_len: 100_000, buffer: 10_000 }
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err(InvalidSetting::new("bus_url", format!("{:?}: use redis://HOST:PORT", self.url)));
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(InvalidSetting::new("bus_prefix", "must be a non-empty key prefix without spaces"));
        }
        at_least_one("stream_max_len", self.stream_max_len)?;
        at_least_one("bus_buffer", self.buffer)
    }
}

/// How long one command may take before the connection counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Entries read per `XRANGE` page when replaying from the stream.
const RANGE_PAGE: usize = 1000;

/// Exponential backoff between reconnects to Redis: 100 ms doubling to 5 s.
/// Only a handful of instances reconnect, so no jitter is needed (clients,
/// by the thousand, use full jitter).
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self(Self::MIN)
    }

    /// The delay to wait now; the next one doubles.
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        now
    }

    fn reset(&mut self) {
        self.0 = Self::MIN;
    }
}

/// A `system_alert` payload from the bus itself (`source: event_bus`).
fn bus_alert(alert_type: &str, message: &str, severity: &str) -> Option<Value> {
    let data = serde_json::json!({
        "alert_type": alert_type,
        "message": message,
        "severity": severity,
        "source": "event_bus",
    });
    validate_payload(EventType::SystemAlert, data, Utc::now()).ok()
}

struct Keys {
    stream: String,
    floor: String,
    bridged: String,
}

/// Connection health as the publisher and the reader see it.
#[derive(Default)]
struct Link {
    publisher_down: Option<String>,
    reader_down: Option<String>,
    buffered: usize,
}

struct Shared {
    client: redis::Client,
    keys: Keys,
    config: BusConfig,
    redis: RedisConfig,
    store: Arc<dyn Store>,
    window: RwLock<Window>,
    link: Mutex<Link>,
    /// A connection for history queries, reopened after a failure.
    query: Mutex<Option<MultiplexedConnection>>,
}

impl Shared {
    fn window(&self) -> std::sync::RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|p| p.into_inner())
    }

    fn window_mut(&self) -> std::sync::RwLockWriteGuard<'_, Window> {
        self.window.write().unwrap_or_else(|p| p.into_inner())
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connect(&self, response_timeout: Option<Duration>) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(response_timeout);
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    async fn query_connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        let cached = self.query.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let conn = self.connect(Some(COMMAND_TIMEOUT)).await?;
        *self.query.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn drop_query_connection(&self) {
        *self.query.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub(super) struct Publish {
    event_type: EventType,
    data: Value,
    reply: Option<oneshot::Sender<Result<Accepted, BusError>>>,
}

pub struct RedisBus {
    queue: mpsc::Sender<Publish>,
    shared: Arc<Shared>,
}

impl RedisBus {
    /// Connects (or starts degraded when Redis is down: it keeps retrying),
    /// loads the stream's tail into the window, and starts the reader, the
    /// publisher and the channel bridge.
    pub async fn start(
        store: Arc<dyn Store>,
        config: BusConfig,
        redis: RedisConfig,
        fan_out: Arc<dyn FanOut>,
    ) -> Result<Self, BusStartError> {
        let client = redis::Client::open(redis.url.as_str()).map_err(|e| BusStartError(e.to_string()))?;
        let keys = Keys {
            stream: format!("{}:events", redis.prefix),
            floor: format!("{}:events:floor", redis.prefix),
            bridged: format!("{}:bridged:", redis.prefix),
        };
        let logged = store.last_event_id().await.map_err(|e| BusStartError(e.to_string()))?.unwrap_or_default();
        let shared = Arc::new(Shared {
            client,
            keys,
            config,
            redis,
            store,
            window: RwLock::new(Window::new(logged)),
            link: Mutex::new(Link::default()),
            query: Mutex::new(None),
        });
        let start_after = reader::prefill(&shared).await;
        let (fanout, groups) = mpsc::channel(super::local::FANOUT_QUEUE);
        tokio::spawn(super::local::fan_out(fan_out, groups));
        let (queue, rx) = mpsc::channel(1024);
        tokio::spawn(reader::run(shared.clone(), start_after, fanout.clone()));
        tokio::spawn(publisher::Publisher::new(shared.clone(), fanout).run(rx));
        tokio::spawn(bridge::run(shared.clone(), queue.clone()));
        Ok(Self { queue, shared })
    }

    /// Matching stream entries after `after`, or `None` when the stream
    /// cannot vouch for everything after it (trimmed, recreated, or Redis
    /// unreachable).
    async fn stream_after(&self, after: EventId, filter: &Filter, limit: usize) -> Option<Vec<super::Delivery>> {
        let mut conn = self.shared.query_connection().await.ok()?;
        let result = reader::range_after(&mut conn, &self.shared.keys, after, filter, limit).await;
        if result.is_err() {
            self.shared.drop_query_connection();
        }
        result.ok().flatten()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusStartError(String);

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event_type: EventType, data: Value) -> Result<Accepted, BusError> {
        let data = validate_payload(event_type, data, Utc::now())?;
        let (reply, answer) = oneshot::channel();
        self.queue.send(Publish { event_type, data, reply: Some(reply) }).await.map_err(|_| BusError::Stopped)?;
        answer.await.map_err(|_| BusError::Stopped)?
    }

    async fn since(&self, after: Option<EventId>, filter: &Filter, limit: usize) -> Result<Replay, BusError> {
        let Some(after) = after else {
            if !filter.durable_only() {
                return Ok(Replay { events: self.shared.window().latest(filter, limit), complete: true });
            }
            return log::latest(self.shared.store.as_ref(), filter, limit).await;
        };
        if let Some(events) = self.shared.window().after(after, filter, limit) {
            return Ok(Replay { events, complete: true });
        }
        // Older than this instance's window, or newer (published elsewhere
        // and not read here yet): the stream has it, if it still holds it.
        if let Some(events) = self.stream_after(after, filter, limit).await {
            return Ok(Replay { events, complete: true });
        }
        log::replay(self.shared.store.as_ref(), after, filter, limit).await
    }

    fn status(&self) -> BusStatus {
        let window = self.shared.window();
        let link = self.shared.link();
        let error = link.publisher_down.clone().or_else(|| link.reader_down.clone());
        BusStatus {
            status: if error.is_some() { "degraded" } else { "ok" },
            kind: "redis",
            window_events: window.len(),
            last_event_id: window.last,
            buffered: Some(link.buffered),
            error,
        }
    }
}

/// Parses one stream entry (`type`, `ts` in Unix ms, `data` as JSON).
fn entry_event(id: &str, fields: &std::collections::HashMap<String, redis::Value>) -> Option<Event> {
    let text = |k: &str| match fields.get(k)? {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let event_type: EventType = text("type")?.parse().ok()?;
    let ts: i64 = text("ts")?.parse().ok()?;
    let data: Value = serde_json::from_str(&text("data")?).ok()?;
    Some(Event { event_type, id: id.parse().ok()?, timestamp: enms_core::timestamp::from_ms(ts), data })
}

fn published(id: &str, fields: &std::collections::HashMap<String, redis::Value>) -> Option<super::Delivery> {
    match entry_event(id, fields) {
        Some(event) => Some(Published::new(event)),
        None => {
            tracing::warn!(%id, "unreadable stream entry skipped");
            None
        }
    }
}

/// A `system_alert` for this instance's clients only (the shared bus is what
/// is failing). Its id follows the newest one seen here, so a client that
/// resumes from it misses nothing appended to the stream afterwards.
async fn local_alert(shared: &Shared, fanout: &mpsc::Sender<Vec<super::Delivery>>, message: &str, severity: &str) {
    let Some(data) = bus_alert("bus_degraded", message, severity) else { return };
    let delivery = {
        let mut window = shared.window_mut();
        let id = EventId { ms: window.last.ms, seq: window.last.seq + 1 };
        let delivery = Published::new(Event { event_type: EventType::SystemAlert, id, timestamp: Utc::now(), data });
        window.push(std::slice::from_ref(&delivery), &shared.config);
        delivery
    };
    let _ = fanout.send(vec![delivery]).await;
}

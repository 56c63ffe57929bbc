//! The real-time gateway: WebSocket streams and SSE over the local hub.
//!
//! Both transports share the connect rules here: parameters and filters, the
//! connection limit, and the order that makes resume lossless — register
//! with the hub first, then read history after the client's id, then send
//! history followed by live events, skipping any id already sent. Events
//! published between the two steps reach both the history and the queue and
//! are sent once.

pub mod compat;
pub mod credentials;
pub mod held;
mod messages;
pub mod params;
pub mod sse;
pub mod ws;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enms_core::event::{EventId, EventType, Severity};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Principal;
use crate::error::{ApiError, Code};
use crate::extract::Params;
use enms_realtime::bus::{Delivery, EventBus, Filter};
use enms_realtime::hub::{Hub, HubConfig, StreamKind, Subscription};

/// Tunables of the real-time gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Protocol pings; a client silent for two intervals is closed.
    pub ping_interval: Duration,
    /// WebSocket and SSE connections at once; the excess is refused with 503.
    pub max_connections: usize,
    /// A write blocked this long marks the client as slow.
    pub write_timeout: Duration,
    /// The fan-out's queue caps and socket writes.
    pub hub: HubConfig,
    /// Time given to connections to close on shutdown.
    pub drain_timeout: Duration,
    /// Most missed events replayed on resume.
    pub max_replay: usize,
    /// Connections one API token may hold at once (anonymous callers of an
    /// open server are only under `max_connections`).
    pub max_per_token: usize,
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        above_zero("ping_interval", self.ping_interval)?;
        above_zero("write_timeout", self.write_timeout)?;
        at_least_one("max_connections", self.max_connections)?;
        at_least_one("max_connections_per_token", self.max_per_token)?;
        at_least_one("max_replay", self.max_replay)?;
        self.hub.validate()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            max_connections: 10_000,
            write_timeout: Duration::from_secs(10),
            hub: HubConfig::default(),
            drain_timeout: Duration::from_secs(10),
            max_replay: 100_000,
            max_per_token: 500,
        }
    }
}

/// Open connections per API token.
type TokenCounts = Arc<Mutex<HashMap<uuid::Uuid, usize>>>;

/// Shared by all connections: configuration, the connection count, and the
/// drain signal.
#[derive(Clone)]
pub struct Gateway {
    pub hub: Hub,
    pub config: Arc<GatewayConfig>,
    open: Arc<AtomicUsize>,
    per_token: TokenCounts,
    drain: CancellationToken,
    tracker: TaskTracker,
    /// The credentials of the open streams, to end them with it.
    pub credentials: credentials::Credentials,
}

/// Held by a connection for its lifetime; releases its place in the limits.
pub struct Permit {
    open: Arc<AtomicUsize>,
    token: Option<(uuid::Uuid, TokenCounts)>,
    _token: tokio_util::task::task_tracker::TaskTrackerToken,
    _credential: Option<credentials::Registration>,
    ended: Option<CancellationToken>,
}

impl Permit {
    /// Resolves when the stream's credential ends (signed out, revoked,
    /// disabled, expired); never for an anonymous caller, whose stream
    /// holds nothing for it.
    pub fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let ended = self.ended.clone();
        async move {
            match ended {
                Some(t) => t.cancelled_owned().await,
                None => std::future::pending().await,
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some((id, counts)) = self.token.take() {
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&id);
                }
            }
        }
    }
}

impl Gateway {
    pub fn new(hub: Hub, config: GatewayConfig) -> Self {
        Self {
            hub,
            config: Arc::new(config),
            open: Arc::new(AtomicUsize::new(0)),
            per_token: Arc::default(),
            drain: CancellationToken::new(),
            tracker: TaskTracker::new(),
            credentials: credentials::Credentials::default(),
        }
    }

    /// Takes a place under the connection limit (503 when full) and under
    /// the caller's token limit (429 when that token holds too many).
    pub fn admit(&self, caller: Option<&Principal>) -> Result<Permit, ApiError> {
        if self.drain.is_cancelled() {
            return Err(ApiError::new(Code::ShuttingDown, "server is shutting down"));
        }
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        let (registration, ended) = match caller.and_then(|p| Some((p.credential.as_deref()?, p.session.is_some()))) {
            Some((hash, session)) => {
                let (r, ended) = self.credentials.register(hash, session);
                (Some(r), Some(ended))
            }
            None => (None, None),
        };
        let mut permit = Permit {
            open: self.open.clone(),
            token: None,
            _token: self.tracker.token(),
            _credential: registration,
            ended,
        };
        if before >= self.config.max_connections {
            return Err(ApiError::new(
                Code::TooManyConnections,
                format!("connection limit of {} reached; retry later", self.config.max_connections),
            ));
        }
        if let Some((id, name)) = caller.and_then(|p| Some((p.id?, &p.name))) {
            let mut counts = self.per_token.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(id).or_insert(0);
            if *n >= self.config.max_per_token {
                return Err(ApiError::new(
                    Code::TooManyConnectionsForToken,
                    format!("token {name:?} already holds {} connections, its limit", self.config.max_per_token),
                ));
            }
            *n += 1;
            permit.token = Some((id, self.per_token.clone()));
        }
        Ok(permit)
    }

    /// Tells every connection to close (1001 / end of stream).
    pub fn drain(&self) {
        self.drain.cancel();
    }

    pub fn draining(&self) -> &CancellationToken {
        &self.drain
    }

    /// Waits until every connection has closed, at most `deadline`.
    pub async fn wait_closed(&self, deadline: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait()).await.is_ok()
    }
}

/// What a client asked for when connecting.
pub struct ConnectRequest {
    pub client_id: String,
    pub filter: Filter,
    pub last_event_id: Option<EventId>,
}

/// The type set of a stream; `None` for every type.
pub fn stream_types(kind: StreamKind) -> Option<HashSet<EventType>> {
    use EventType::*;
    let set: &[EventType] = match kind {
        StreamKind::Dashboard | StreamKind::Custom | StreamKind::Sse => return None,
        StreamKind::Anomalies => &[AnomalyDetected, AnomalyUpdated],
        StreamKind::Training => &[TrainingStarted, TrainingProgress, TrainingCompleted, ModelUpdated],
        StreamKind::Events => &[SystemAlert],
    };
    Some(set.iter().copied().collect())
}

impl ConnectRequest {
    /// Reads `client_id`, `machine_id` (repeatable, or comma-separated),
    /// `min_severity`, `last_event_id` and, where the stream allows,
    /// `types`.
    pub fn from_params(params: &Params, kind: StreamKind, last_event_header: Option<&str>) -> Result<Self, ApiError> {
        let client_id = match params.get("client_id") {
            Some(id) => valid_client_id(id)?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut types = stream_types(kind);
        if let Some(asked) = parse_types(params)? {
            if types.is_some() {
                return Err(ApiError::invalid(
                    Code::InvalidParameter,
                    "types",
                    format!("the {} stream has a fixed type set; use /api/v1/ws?types=", kind.as_str()),
                ));
            }
            types = Some(asked);
        }
        let machine_ids = machine_ids(params)?;
        let min_severity = params.parse("min_severity", |v| v.parse::<Severity>())?;
        let last = params.get("last_event_id").or(last_event_header);
        let last_event_id = last
            .map(|v| v.parse::<EventId>().map_err(|m| ApiError::invalid(Code::InvalidParameter, "last_event_id", m)))
            .transpose()?;
        Ok(Self { client_id, filter: Filter { types, machine_ids, min_severity }, last_event_id })
    }
}

/// `types=a,b` (names or seed topics).
pub fn parse_types(params: &Params) -> Result<Option<HashSet<EventType>>, ApiError> {
    params.parse("types", |v| {
        let set = v
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse::<EventType>())
            .collect::<Result<HashSet<_>, _>>()?;
        if set.is_empty() { Err("types names no event type".to_owned()) } else { Ok(set) }
    })
}

/// Every `machine_id` value, each possibly a comma list; `None` when absent.
pub fn machine_ids(params: &Params) -> Result<Option<HashSet<String>>, ApiError> {
    let mut ids = HashSet::new();
    for value in params.all("machine_id") {
        if value.trim().is_empty() {
            return Err(ApiError::invalid(Code::InvalidParameter, "machine_id", "machine_id must not be empty"));
        }
        for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let id = uuid::Uuid::parse_str(m)
                .map_err(|_| ApiError::invalid(Code::InvalidParameter, "machine_id", format!("{m:?} is not a UUID")))?;
            ids.insert(id.to_string());
        }
    }
    Ok((!ids.is_empty()).then_some(ids))
}

fn valid_client_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ApiError::invalid(
            Code::InvalidParameter,
            "client_id",
            "client_id must be 1 to 128 characters of letters, digits, '-', '_', '.', ':'",
        ))
    }
}

/// A registered subscriber with the history it missed.
pub struct Attached {
    pub subscription: Subscription,
    pub backlog: Vec<Delivery>,
    pub recovered: bool,
}

/// Registers with the hub, then reads what was missed since `last_event_id`.
pub async fn attach(
    gateway: &Gateway,
    bus: &dyn EventBus,
    kind: StreamKind,
    request: &ConnectRequest,
) -> Result<Attached, ApiError> {
    let subscription = gateway.hub.subscribe(kind, request.filter.clone());
    let (backlog, recovered) = history(gateway, bus, request).await?;
    Ok(Attached { subscription, backlog, recovered })
}

/// What was missed since the request's `last_event_id`, and whether that is
/// all of it. Call only after registering with the hub.
pub async fn history(
    gateway: &Gateway,
    bus: &dyn EventBus,
    request: &ConnectRequest,
) -> Result<(Vec<Delivery>, bool), ApiError> {
    let Some(after) = request.last_event_id else { return Ok((Vec::new(), false)) };
    let limit = gateway.config.max_replay;
    let replay = bus.since(Some(after), &request.filter, limit + 1).await?;
    let mut backlog = replay.events;
    let truncated = backlog.len() > limit;
    backlog.truncate(limit);
    Ok((backlog, replay.complete && !truncated))
}

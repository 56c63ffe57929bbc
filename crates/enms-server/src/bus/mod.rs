//! The event bus: publishing assigns each event its ordered id, durable
//! events reach the store's log, a bounded window of recent events of every
//! type serves resume, and every event is handed once, already encoded, to
//! the local [`Hub`](crate::hub::Hub) for fan-out.
//!
//! [`local::InProcessBus`] is the embedded default; [`redis::RedisBus`]
//! shares one ordered stream between instances.

pub mod local;
mod log;
pub mod redis;
mod window;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use enms_core::event::{Event, EventId, EventType, Severity};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::ApiError;
use crate::gateway::socket::{OP_TEXT, frame_header};

pub use local::InProcessBus;

/// How much history the bus keeps: the in-memory replay window (every type)
/// and the durable log (durable types only).
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub window_events: usize,
    pub window_age: Duration,
    /// Durable events older than this are pruned from the log.
    pub log_age: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            window_events: 10_000,
            window_age: Duration::from_secs(3600),
            log_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// An event as delivered: the event, its JSON envelope encoded once, and
/// that envelope as a complete WebSocket text frame — the same bytes go to
/// every WebSocket client, so fan-out is one `send` of shared memory each.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    /// The JSON envelope (a slice of `frame`).
    pub text: Bytes,
    /// Server-to-client text frame: header + `text`.
    pub frame: Bytes,
    machine_id: Option<Box<str>>,
    severity: Option<Severity>,
}

pub type Delivery = Arc<Published>;

impl Published {
    pub fn new(event: Event) -> Delivery {
        // Serialising a `serde_json::Value` map with string keys cannot fail.
        let text = serde_json::to_vec(&event).unwrap_or_default();
        let (header, n) = frame_header(OP_TEXT, text.len());
        let mut frame = Vec::with_capacity(n + text.len());
        frame.extend_from_slice(&header[..n]);
        frame.extend_from_slice(&text);
        let frame = Bytes::from(frame);
        let machine_id = event.machine_id().map(Into::into);
        let severity = event.severity();
        Arc::new(Self { event, text: frame.slice(n..), frame, machine_id, severity })
    }

    pub fn id(&self) -> EventId {
        self.event.id
    }
}

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.event.serialize(s)
    }
}

/// Which events a reader wants. Events without a machine (system alerts) pass
/// a machine filter, and events without a severity pass a severity filter:
/// they concern everyone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `None`: every type.
    pub types: Option<HashSet<EventType>>,
    /// `None`: every machine; `Some(empty)`: only events about no machine.
    pub machine_ids: Option<HashSet<String>>,
    pub min_severity: Option<Severity>,
}

impl Filter {
    pub fn matches(&self, p: &Published) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&p.event.event_type))
            && self.machine_ids.as_ref().is_none_or(|ids| p.machine_id.as_deref().is_none_or(|m| ids.contains(m)))
            && self.min_severity.is_none_or(|min| p.severity.is_none_or(|s| s >= min))
    }

    /// True when every type this filter admits is kept in the durable log.
    pub fn durable_only(&self) -> bool {
        self.types.as_ref().is_some_and(|t| t.iter().all(|t| t.durable()))
    }
}

/// Events after a position, and whether that is everything that matched:
/// `complete` is false when the position is older than what the window and
/// the log still hold, so the reader must reload its state.
pub struct Replay {
    pub events: Vec<Delivery>,
    pub complete: bool,
}

/// What `/api/v1/health` reports about the bus.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BusStatus {
    /// `ok`, or `degraded` while the shared bus is unreachable.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// `local` (in-process) or `redis`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub window_events: usize,
    pub last_event_id: EventId,
    /// Events waiting for the shared bus to come back (Redis bus only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffered: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of a published event.
#[derive(Debug)]
pub enum Accepted {
    /// Ordered, visible to readers, and logged if durable.
    Published(Delivery),
    /// The shared bus is unreachable: the event waits in this instance's
    /// bounded buffer and gets its id when the bus is back.
    Buffered,
}

impl Accepted {
    pub fn id(&self) -> Option<EventId> {
        match self {
            Self::Published(d) => Some(d.id()),
            Self::Buffered => None,
        }
    }
}

#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Validates, assigns the id, logs (if durable) and fans out; returns once
    /// the event is visible to readers (or buffered, see [`Accepted`]).
    async fn publish(&self, event_type: EventType, data: Value) -> Result<Accepted, ApiError>;

    /// Matching events after `after` (or the latest ones when `None`), oldest
    /// first, at most `limit`.
    async fn since(&self, after: Option<EventId>, filter: &Filter, limit: usize) -> Result<Replay, ApiError>;

    fn status(&self) -> BusStatus;
}

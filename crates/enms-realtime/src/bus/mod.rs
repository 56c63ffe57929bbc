//! The event bus: publishing assigns each event its ordered id, durable
//! events reach the store's log, a bounded window of recent events of every
//! type serves resume, and every event is handed once, already encoded, to
//! a [`FanOut`] sink — in a server, the local [`Hub`](crate::hub::Hub).
//!
//! [`local::InProcessBus`] is the embedded default; [`redis::RedisBus`]
//! shares one ordered stream between instances.

pub mod local;
mod log;
pub mod redis;
mod window;

use std::time::Duration;

use enms_core::FieldError;
use enms_core::event::{EventId, EventType};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one};
use enms_store::StoreError;
use serde::Serialize;
use serde_json::Value;

pub use crate::envelope::{Delivery, FanOut, Filter, Published};
pub use local::InProcessBus;

/// Why the bus refused or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The payload does not fit its event type.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The bus's tasks have ended (the server is stopping).
    #[error("event bus stopped")]
    Stopped,
    /// The shared bus is unreachable and this instance's buffer is full.
    #[error("the shared event bus is unreachable and this instance's buffer is full; retry later")]
    BufferFull,
    /// A durable event could not be written to the log, so it was refused.
    #[error("event log unavailable")]
    LogUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How much history the bus keeps: the in-memory replay window (every type)
/// and the durable log (durable types only).
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub window_events: usize,
    pub window_age: Duration,
    /// Durable events older than this are pruned from the log.
    pub log_age: Duration,
}

impl BusConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one("window_events", self.window_events)?;
        above_zero("window_age", self.window_age)?;
        above_zero("log_retention", self.log_age)
    }
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
    /// `in-process` or `redis`.
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
    async fn publish(&self, event_type: EventType, data: Value) -> Result<Accepted, BusError>;

    /// Matching events after `after` (or the latest ones when `None`), oldest
    /// first, at most `limit`.
    async fn since(&self, after: Option<EventId>, filter: &Filter, limit: usize) -> Result<Replay, BusError>;

    fn status(&self) -> BusStatus;
}

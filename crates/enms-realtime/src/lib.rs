//! The real-time core of enms, without HTTP: the event bus that orders,
//! logs and replays events, and the hub that fans them out to live
//! subscribers.
//!
//! Data flow: a publisher calls [`bus::EventBus::publish`]; the bus
//! validates the payload, assigns the ordered id (in-process, or through a
//! Redis stream shared by instances), appends durable types to the store's
//! log, keeps every event in its replay window, encodes it once
//! ([`envelope::Published`]: JSON and a ready WebSocket frame from
//! [`wire`]) and hands it to its [`envelope::FanOut`] sink. In a server
//! that sink is the [`hub::Hub`], which writes the shared frame bytes to
//! each WebSocket's [`outbox::Outbox`] (batched through [`uring`] where the
//! kernel allows) or queues them for an SSE stream.
//!
//! Layout, leaves first: `wire` (framing) and `uring` (batched sends) →
//! `envelope` (what travels) → `outbox` (one socket's ordered writes) →
//! `hub` (every local subscriber) and `bus` (ordering, window, log, Redis).
//! The HTTP handshakes that attach connections to the hub live in the
//! server crate.

pub mod bus;
pub mod envelope;
pub mod hub;
pub mod outbox;
pub mod uring;
pub mod wire;

pub use bus::{BusConfig, BusError, EventBus, InProcessBus};
pub use envelope::{Delivery, FanOut, Filter, Published};
pub use hub::{Hub, HubConfig};

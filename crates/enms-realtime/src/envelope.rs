//! What travels from the bus to the subscribers: an event encoded once
//! ([`Published`], shared as a [`Delivery`]), the [`Filter`] a reader
//! applies, and the [`FanOut`] sink the bus hands each batch to. A leaf:
//! the bus and the hub both build on it, neither on the other.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use enms_core::event::{Event, EventId, EventType, Severity};
use serde::{Serialize, Serializer};

use crate::wire::{OP_TEXT, frame_header};

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

/// Where a bus hands every event it orders, once, already encoded: the
/// local hub in a server; a test's recorder in the bus contract suite.
/// Called from the bus's fan-out task; must not block on a reader.
#[async_trait::async_trait]
pub trait FanOut: Send + Sync + 'static {
    async fn dispatch(&self, batch: &[Delivery]);
}

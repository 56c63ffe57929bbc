//! The in-process event bus: assigns ordered ids, appends durable events to
//! the store's log, keeps a bounded window of recent events of every type for
//! replay, and hands each event to live subscribers.
//!
//! Publishing goes through one task fed by a bounded queue. Serialising there
//! keeps ids, the log and the window in the same order without holding a lock
//! across the log write; the window lock is only taken for pushes and reads.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use enms_core::event::{Event, EventId, EventType, Severity, validate_payload};
use enms_store::Store;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::error::ApiError;

/// How much recent history the bus keeps in memory for replay.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub window_events: usize,
    pub window_age: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { window_events: 10_000, window_age: Duration::from_secs(3600) }
    }
}

/// Which events a reader wants. Events without a machine (system alerts) pass
/// a machine filter, and events without a severity pass a severity filter:
/// they concern everyone.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub types: Option<HashSet<EventType>>,
    pub machine_ids: HashSet<String>,
    pub min_severity: Option<Severity>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&e.event_type))
            && (self.machine_ids.is_empty() || e.machine_id().is_none_or(|m| self.machine_ids.contains(m)))
            && self.min_severity.is_none_or(|min| e.severity().is_none_or(|s| s >= min))
    }
}

/// Events after a position, and whether that is everything: `complete` is
/// false when the window had moved past the position, so only durable events
/// could be recovered from the log.
pub struct Replay {
    pub events: Vec<Arc<Event>>,
    pub complete: bool,
}

struct Window {
    events: VecDeque<Arc<Event>>,
    /// Id of the newest event dropped from the window.
    evicted_up_to: Option<EventId>,
}

struct Publish {
    event_type: EventType,
    data: Value,
    reply: oneshot::Sender<Result<Arc<Event>, ApiError>>,
}

const PUBLISH_QUEUE: usize = 1024;
const LIVE_CAPACITY: usize = 4096;
/// Publishes handled together: one log transaction for all durable ones.
const MAX_GROUP: usize = 256;

#[derive(Clone)]
pub struct Bus {
    queue: mpsc::Sender<Publish>,
    window: Arc<RwLock<Window>>,
    live: broadcast::Sender<Arc<Event>>,
    store: Arc<dyn Store>,
}

impl Bus {
    /// Starts the publisher task; ids continue after the last logged one.
    pub async fn start(store: Arc<dyn Store>, config: BusConfig) -> Result<Self, enms_store::StoreError> {
        let last = store.last_event_id().await?.unwrap_or_default();
        let window = Arc::new(RwLock::new(Window { events: VecDeque::new(), evicted_up_to: Some(last) }));
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let publisher = Publisher { store: store.clone(), window: window.clone(), live: live.clone(), last, config };
        tokio::spawn(publisher.run(rx));
        Ok(Self { queue, window, live, store })
    }

    /// Validates and publishes; returns once the event is logged (if durable)
    /// and visible to readers.
    pub async fn publish(&self, event_type: EventType, data: Value) -> Result<Arc<Event>, ApiError> {
        let data = validate_payload(event_type, data, Utc::now())?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Publish { event_type, data, reply })
            .await
            .map_err(|_| ApiError::internal("event bus stopped"))?;
        answer.await.map_err(|_| ApiError::internal("event bus stopped"))?
    }

    /// Live events from now on (for WebSocket and SSE gateways).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    /// Matching events after `after` (or the latest ones when `None`), oldest
    /// first, at most `limit`.
    pub async fn since(&self, after: Option<EventId>, filter: &Filter, limit: usize) -> Result<Replay, ApiError> {
        {
            let window = self.window.read().map_err(|_| ApiError::internal("event window poisoned"))?;
            match after {
                None => {
                    let mut events: Vec<_> =
                        window.events.iter().rev().filter(|e| filter.matches(e)).take(limit).cloned().collect();
                    events.reverse();
                    return Ok(Replay { events, complete: true });
                }
                Some(after) if window.evicted_up_to.is_none_or(|evicted| after >= evicted) => {
                    let start = window.events.partition_point(|e| e.id <= after);
                    let events =
                        window.events.range(start..).filter(|e| filter.matches(e)).take(limit).cloned().collect();
                    return Ok(Replay { events, complete: true });
                }
                Some(_) => {}
            }
        }
        let mut cursor = after.unwrap_or_default();
        let mut events = Vec::new();
        loop {
            let page = self.store.events_after(cursor, 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.id;
            let full = page.len() == 1000;
            events.extend(page.into_iter().filter(|e| filter.matches(e)).map(Arc::new));
            if events.len() >= limit || !full {
                break;
            }
        }
        events.truncate(limit);
        Ok(Replay { events, complete: false })
    }
}

struct Publisher {
    store: Arc<dyn Store>,
    window: Arc<RwLock<Window>>,
    live: broadcast::Sender<Arc<Event>>,
    last: EventId,
    config: BusConfig,
}

impl Publisher {
    async fn run(mut self, mut rx: mpsc::Receiver<Publish>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
            self.publish_group(std::mem::take(&mut group)).await;
        }
    }

    async fn publish_group(&mut self, group: Vec<Publish>) {
        let now = Utc::now();
        let events: Vec<(Arc<Event>, oneshot::Sender<_>)> = group
            .into_iter()
            .map(|p| {
                self.last = self.last.next(now.timestamp_millis().max(0) as u64);
                let event = Event { event_type: p.event_type, id: self.last, timestamp: now, data: p.data };
                (Arc::new(event), p.reply)
            })
            .collect();
        let durable: Vec<Event> =
            events.iter().filter(|(e, _)| e.event_type.durable()).map(|(e, _)| (**e).clone()).collect();
        let logged = if durable.is_empty() { Ok(()) } else { self.store.append_events(&durable).await };
        if let Err(e) = &logged {
            tracing::error!(error = %e, "event log append failed; durable events refused");
        }
        let mut accepted = Vec::with_capacity(events.len());
        for (event, reply) in events {
            if event.event_type.durable() && logged.is_err() {
                let _ = reply.send(Err(ApiError::internal("event log unavailable")));
            } else {
                accepted.push(event.clone());
                let _ = reply.send(Ok(event));
            }
        }
        self.push(&accepted);
        for event in accepted {
            // No receivers is not an error: nobody is listening yet.
            let _ = self.live.send(event);
        }
    }

    fn push(&self, events: &[Arc<Event>]) {
        let Ok(mut window) = self.window.write() else { return };
        window.events.extend(events.iter().cloned());
        let oldest_allowed =
            Utc::now() - chrono::Duration::from_std(self.config.window_age).unwrap_or(chrono::Duration::MAX);
        while let Some(front) = window.events.front() {
            if window.events.len() <= self.config.window_events && front.timestamp >= oldest_allowed {
                break;
            }
            window.evicted_up_to = Some(front.id);
            window.events.pop_front();
        }
    }
}

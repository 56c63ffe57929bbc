//! The in-process bus, the embedded default.
//!
//! Publishing goes through one task fed by a bounded queue. Serialising there
//! keeps ids, the log, the window and the fan-out in the same order without
//! holding a lock across the log write; the window lock is only taken for
//! pushes and reads, never across an await.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use enms_core::event::{Event, EventId, EventType};
use enms_core::payload::validate_payload;
use enms_store::Store;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::window::Window;
use super::{Accepted, BusConfig, BusError, BusStatus, Delivery, EventBus, FanOut, Filter, Published, Replay, log};

struct Publish {
    event_type: EventType,
    data: Value,
    reply: oneshot::Sender<Result<Delivery, BusError>>,
}

const PUBLISH_QUEUE: usize = 1024;
/// Publishes handled together: one log transaction for all durable ones.
const MAX_GROUP: usize = 256;
/// Publish groups waiting for fan-out, and how many are taken at once.
pub(super) const FANOUT_QUEUE: usize = 256;
const FANOUT_BATCH: usize = 64;
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct InProcessBus {
    queue: mpsc::Sender<Publish>,
    window: Arc<RwLock<Window>>,
    store: Arc<dyn Store>,
}

impl InProcessBus {
    /// Starts the publisher task; ids continue after the last logged one and
    /// after this moment, so nothing issued before a restart is mistaken for
    /// something the window still holds.
    pub async fn start(
        store: Arc<dyn Store>,
        config: BusConfig,
        fan_out_to: Arc<dyn FanOut>,
    ) -> Result<Self, enms_store::StoreError> {
        let logged = store.last_event_id().await?.unwrap_or_default();
        let floor = store.event_log_floor().await?.unwrap_or_default();
        let boundary = logged.max(floor).max(EventId { ms: Utc::now().timestamp_millis().max(0) as u64, seq: 0 });
        let window = Arc::new(RwLock::new(Window::new(boundary)));
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (fanout, groups) = mpsc::channel(FANOUT_QUEUE);
        tokio::spawn(fan_out(fan_out_to, groups));
        let publisher = Publisher { store: store.clone(), window: window.clone(), fanout, last: boundary, config };
        tokio::spawn(publisher.run(rx));
        Ok(Self { queue, window, store })
    }

    fn read_window(&self) -> std::sync::RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event_type: EventType, data: Value) -> Result<Accepted, BusError> {
        let data = validate_payload(event_type, data, Utc::now())?;
        let (reply, answer) = oneshot::channel();
        self.queue.send(Publish { event_type, data, reply }).await.map_err(|_| BusError::Stopped)?;
        answer.await.map_err(|_| BusError::Stopped)?.map(Accepted::Published)
    }

    async fn since(&self, after: Option<EventId>, filter: &Filter, limit: usize) -> Result<Replay, BusError> {
        {
            let window = self.read_window();
            match after {
                None if !filter.durable_only() => {
                    return Ok(Replay { events: window.latest(filter, limit), complete: true });
                }
                // Durable types alone: the log holds them all, also from
                // before a restart or beyond the window.
                None => {}
                // Not an id this bus issued: the client must reload.
                Some(after) if after > window.last => return Ok(Replay { events: Vec::new(), complete: false }),
                Some(after) => {
                    if let Some(events) = window.after(after, filter, limit) {
                        return Ok(Replay { events, complete: true });
                    }
                }
            }
        }
        match after {
            Some(after) => log::replay(self.store.as_ref(), after, filter, limit).await,
            None => log::latest(self.store.as_ref(), filter, limit).await,
        }
    }

    fn status(&self) -> BusStatus {
        let window = self.read_window();
        BusStatus {
            status: if self.queue.is_closed() { "stopped" } else { "ok" },
            kind: "in-process",
            window_events: window.len(),
            last_event_id: window.last,
            buffered: None,
            error: None,
        }
    }
}

struct Publisher {
    store: Arc<dyn Store>,
    window: Arc<RwLock<Window>>,
    fanout: mpsc::Sender<Vec<Delivery>>,
    last: EventId,
    config: BusConfig,
}

impl Publisher {
    /// Runs until every bus handle is dropped; prunes the log on the side.
    async fn run(mut self, mut rx: mpsc::Receiver<Publish>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut group, MAX_GROUP) => {
                    if n == 0 {
                        break;
                    }
                    self.publish_group(std::mem::take(&mut group)).await;
                }
                _ = prune.tick() => {
                    tokio::spawn(prune_log(self.store.clone(), self.config.log_age));
                }
            }
        }
    }

    async fn publish_group(&mut self, group: Vec<Publish>) {
        let now = Utc::now();
        let events: Vec<(Delivery, oneshot::Sender<_>)> = group
            .into_iter()
            .map(|p| {
                self.last = self.last.next(now.timestamp_millis().max(0) as u64);
                let event = Event { event_type: p.event_type, id: self.last, timestamp: now, data: p.data };
                (Published::new(event), p.reply)
            })
            .collect();
        let durable: Vec<Event> =
            events.iter().filter(|(e, _)| e.event.event_type.durable()).map(|(e, _)| e.event.clone()).collect();
        let logged = if durable.is_empty() { Ok(()) } else { self.store.append_events(&durable).await };
        if let Err(e) = &logged {
            tracing::error!(error = %e, "event log append failed; durable events refused");
        }
        let mut accepted = Vec::with_capacity(events.len());
        let mut replies = Vec::with_capacity(events.len());
        for (event, reply) in events {
            if event.event.event_type.durable() && logged.is_err() {
                let _ = reply.send(Err(BusError::LogUnavailable));
            } else {
                accepted.push(event.clone());
                replies.push((reply, event));
            }
        }
        self.push(&accepted);
        // Answer once the event is in the window (readable and resumable);
        // the fan-out below writes to sockets and must not hold publishers.
        for (reply, event) in replies {
            let _ = reply.send(Ok(event));
        }
        // A full fan-out queue holds publishing back rather than grow.
        let _ = self.fanout.send(accepted).await;
    }

    fn push(&self, events: &[Delivery]) {
        self.window.write().unwrap_or_else(|p| p.into_inner()).push(events, &self.config);
    }
}

/// Writes events to subscribers, apart from the publisher so publishing is
/// never held up by sockets. Groups that queued up while the previous
/// fan-out ran go out together: one write per client for all of them.
pub(super) async fn fan_out(hub: Arc<dyn FanOut>, mut groups: mpsc::Receiver<Vec<Delivery>>) {
    let mut batch = Vec::with_capacity(FANOUT_BATCH);
    while groups.recv_many(&mut batch, FANOUT_BATCH).await > 0 {
        let events: Vec<Delivery> = batch.drain(..).flatten().collect();
        for chunk in events.chunks(MAX_GROUP) {
            hub.dispatch(chunk).await;
        }
    }
}

/// Drops durable events older than the log retention.
pub(super) async fn prune_log(store: Arc<dyn Store>, age: Duration) {
    let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    let before = EventId { ms: cutoff.timestamp_millis().max(0) as u64, seq: 0 };
    match store.prune_events(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "event log pruned"),
        Err(e) => tracing::warn!(error = %e, "event log pruning failed"),
    }
}

//! Local fan-out: every live subscriber of this instance (WebSocket or SSE
//! connection), its filter, and its bounded send queue.
//!
//! The bus's fan-out task hands each batch of events to [`Hub::dispatch`]
//! once, already encoded. For a WebSocket the hub writes the shared frame
//! bytes straight to the socket — a chunk of subscribers' sends in one
//! io_uring submission where the kernel allows (see `outbox` and
//! `uring`); for SSE it clones them into the subscriber's queue
//! with `try_send`. Nothing here waits for a reader. A subscriber whose backlog would pass its message or byte cap is
//! cut off and told it is slow; its connection closes with 4008 and the
//! client resumes from its last id. The registry lock is a plain `Mutex`,
//! held only to take the subscriber list, never across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use crate::envelope::{Delivery, FanOut, Filter};
pub use crate::outbox::QueueLimits;
use crate::outbox::{Offer, Outbox, SendBatch};

/// Subscribers served between two yields of a fan-out.
const YIELD_EVERY: usize = 64;

/// Fewest subscribers worth a part of their own in a parallel fan-out:
/// about a millisecond of sends, against a few microseconds to hand a
/// task to another worker.
const MIN_PART: usize = 128;

/// How the hub fans out: its queue caps and how it writes to sockets.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Per-connection send queue caps.
    pub queue: QueueLimits,
    /// Fan-out socket writes batched through io_uring where the kernel
    /// allows; false sends each with its own `send`.
    pub io_uring: bool,
    /// Most parts a fan-out to many subscribers is split into, each run on
    /// a worker thread at once; 0 means one per worker thread.
    pub fanout_parallelism: usize,
}

impl HubConfig {
    pub fn validate(&self) -> Result<(), enms_core::setting::InvalidSetting> {
        self.queue.validate()
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self { queue: QueueLimits::default(), io_uring: true, fanout_parallelism: 0 }
    }
}

/// What the gateway serves a subscriber on: one of the named WebSocket
/// streams, a custom type set, or SSE. Used for per-stream counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Dashboard,
    Anomalies,
    Training,
    Events,
    Custom,
    Sse,
}

impl StreamKind {
    pub const ALL: [StreamKind; 6] =
        [Self::Dashboard, Self::Anomalies, Self::Training, Self::Events, Self::Custom, Self::Sse];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Anomalies => "anomalies",
            Self::Training => "training",
            Self::Events => "events",
            Self::Custom => "custom",
            Self::Sse => "sse",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// State a subscriber shares with the hub.
struct Shared {
    queued_bytes: AtomicUsize,
    slow: AtomicBool,
    slow_signal: Notify,
}

/// Where a subscriber's events go: a queue its task drains (SSE), or its
/// WebSocket's socket, written from the dispatching task.
enum Sink {
    Queue(mpsc::Sender<Delivery>),
    Socket(Arc<Outbox>),
}

struct Slot {
    id: u64,
    /// Replaced by `subscribe`/`unsubscribe`; read once per dispatch batch.
    filter: RwLock<Filter>,
    sink: Sink,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Counters {
    connections: [AtomicUsize; 6],
    sent: AtomicU64,
    dropped: AtomicU64,
    slow_disconnects: AtomicU64,
}

/// Every subscriber, and the list a fan-out walks.
#[derive(Default)]
struct Registry {
    slots: HashMap<u64, Arc<Slot>>,
    /// Rebuilt by the first fan-out after a change, then shared by every
    /// fan-out until the next one: a dispatch costs one reference count,
    /// not one per subscriber, and a storm of connects rebuilds nothing
    /// until an event actually goes out.
    list: Option<Arc<[Arc<Slot>]>>,
}

impl Registry {
    fn list(&mut self) -> Arc<[Arc<Slot>]> {
        let slots = &self.slots;
        self.list.get_or_insert_with(|| slots.values().cloned().collect()).clone()
    }
}

struct Inner {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    limits: QueueLimits,
    /// Batch socket writes through io_uring (else one `send` each).
    uring: bool,
    /// Most parts one fan-out is split into.
    parallelism: usize,
    counters: Counters,
    /// Publish → handed to every local subscriber, one sample per event.
    delivery: metrics::Histogram,
}

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Figures for `/api/v1/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubStats {
    pub connections: usize,
    /// Open connections per stream (`dashboard`, `anomalies`, …, `sse`).
    #[schema(value_type = HashMap<String, usize>)]
    pub by_stream: HashMap<&'static str, usize>,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub slow_consumer_disconnects: u64,
    /// Socket writes are batched through io_uring (`[realtime] io_uring`
    /// and a kernel that allows it).
    pub io_uring: bool,
    /// Most parts, run on as many threads at once, that a fan-out to many
    /// subscribers is split into (`[realtime] fanout_parallelism`).
    pub fanout_parallelism: usize,
}

#[async_trait::async_trait]
impl FanOut for Hub {
    async fn dispatch(&self, batch: &[Delivery]) {
        Hub::dispatch(self, batch).await
    }
}

impl Hub {
    /// Takes the queue limits and the fan-out settings from `config`.
    /// io_uring is dropped, with a log line, where the kernel refuses it; a
    /// parallelism of 0 means one part per worker thread of the runtime
    /// this is called on.
    pub fn new(config: &HubConfig, delivery: metrics::Histogram) -> Self {
        let uring = config.io_uring && crate::uring::available();
        let parallelism = match config.fanout_parallelism {
            0 => tokio::runtime::Handle::try_current().map_or(1, |rt| rt.metrics().num_workers()),
            n => n,
        };
        tracing::debug!(io_uring = uring, parallelism, "fan-out");
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                next_id: AtomicU64::new(1),
                limits: config.queue,
                uring,
                parallelism,
                counters: Counters::default(),
                delivery,
            }),
        }
    }

    /// Registers a subscriber: from now on every matching dispatched event
    /// reaches its queue.
    pub fn subscribe(&self, kind: StreamKind, filter: Filter) -> Subscription {
        let (tx, rx) = mpsc::channel(self.inner.limits.messages.max(1));
        self.register(kind, filter, Sink::Queue(tx), Some(rx))
    }

    /// Registers a WebSocket whose events the hub writes to its socket.
    pub fn subscribe_socket(&self, kind: StreamKind, filter: Filter, outbox: Arc<Outbox>) -> Subscription {
        self.register(kind, filter, Sink::Socket(outbox), None)
    }

    fn register(
        &self,
        kind: StreamKind,
        filter: Filter,
        sink: Sink,
        rx: Option<mpsc::Receiver<Delivery>>,
    ) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            queued_bytes: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
            slow_signal: Notify::new(),
        });
        let slot = Arc::new(Slot { id, filter: RwLock::new(filter), sink, shared: shared.clone() });
        self.write_slots(|slots| {
            slots.insert(id, slot);
        });
        self.inner.counters.connections[kind.index()].fetch_add(1, Ordering::Relaxed);
        Subscription { id, kind, rx, shared, hub: self.clone() }
    }

    /// Hands events (in id order) to every matching subscriber without
    /// waiting for any of them. Socket writes happen here, one batch per
    /// [`YIELD_EVERY`] subscribers, and the loop yields after each: requests
    /// (and publishes, which then coalesce into the next group) are not held
    /// up by a large fan-out. A list long enough is cut into parts that run
    /// on the runtime's worker threads at once (see [`Hub::parts_for`]).
    pub async fn dispatch(&self, events: &[Delivery]) {
        let list = self.registry().list();
        let parts = self.parts_for(list.len());
        let outcome = if parts <= 1 {
            fan_out_part(&self.inner, events, &list).await
        } else {
            self.fan_out_parallel(events, list, parts).await
        };
        self.inner.counters.sent.fetch_add(outcome.written, Ordering::Relaxed);
        let now = chrono::Utc::now();
        for event in events {
            let age = (now - event.event.timestamp).to_std().unwrap_or_default();
            self.inner.delivery.record(age.as_secs_f64());
        }
        if outcome.overflowed.is_empty() && outcome.closed.is_empty() {
            return;
        }
        self.write_slots(|slots| {
            for id in &outcome.overflowed {
                if let Some(slot) = slots.remove(id) {
                    self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    slot.shared.slow.store(true, Ordering::Release);
                    slot.shared.slow_signal.notify_one();
                }
            }
            for id in &outcome.closed {
                slots.remove(id);
            }
        });
    }

    /// How many parts a fan-out to `subscribers` runs in: one per worker
    /// (`[realtime] fanout_parallelism`), but none smaller than
    /// [`MIN_PART`] — below that, waking another thread costs more than the
    /// sends it would take over.
    fn parts_for(&self, subscribers: usize) -> usize {
        self.inner.parallelism.min(subscribers / MIN_PART).max(1)
    }

    /// Runs the parts as tasks and waits for all of them. Order holds per
    /// subscriber because a dispatch ends only when every part has, so the
    /// next group's sends always come after this one's, whichever part or
    /// thread a subscriber lands in.
    async fn fan_out_parallel(&self, events: &[Delivery], list: Arc<[Arc<Slot>]>, parts: usize) -> PartOutcome {
        let events: Arc<[Delivery]> = events.into();
        let len = list.len();
        // Every part is spawned (none run inline): the last task spawned
        // waits in the worker's LIFO slot, which other workers cannot steal
        // from, so running part 0 here would serialise it behind this one.
        let tasks: Vec<_> = (0..parts)
            .map(|k| {
                let (inner, events, list) = (self.inner.clone(), events.clone(), list.clone());
                tokio::spawn(async move {
                    fan_out_part(&inner, &events, &list[k * len / parts..(k + 1) * len / parts]).await
                })
            })
            .collect();
        let mut total = PartOutcome::default();
        for task in tasks {
            match task.await {
                Ok(part) => total.merge(part),
                // A panic in a part is a bug; its batch was flushed while
                // unwinding, and the remaining parts still delivered.
                Err(e) => tracing::error!(error = %e, "a fan-out part failed"),
            }
        }
        total
    }

    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        let by_stream: HashMap<_, _> =
            StreamKind::ALL.iter().map(|k| (k.as_str(), c.connections[k.index()].load(Ordering::Relaxed))).collect();
        HubStats {
            connections: by_stream.values().sum(),
            by_stream,
            messages_sent: c.sent.load(Ordering::Relaxed),
            messages_dropped: c.dropped.load(Ordering::Relaxed),
            slow_consumer_disconnects: c.slow_disconnects.load(Ordering::Relaxed),
            io_uring: self.inner.uring,
            fanout_parallelism: self.inner.parallelism,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A poisoned lock means a panic mid-update of a plain map; the map
        // itself is still consistent, so keep serving.
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_slots(&self, f: impl FnOnce(&mut HashMap<u64, Arc<Slot>>)) {
        let mut registry = self.registry();
        f(&mut registry.slots);
        registry.list = None;
    }
}

/// What one part of a fan-out did: deliveries written, and the subscribers
/// to drop (overflowed: slow; closed: gone).
#[derive(Default)]
struct PartOutcome {
    written: u64,
    overflowed: Vec<u64>,
    closed: Vec<u64>,
}

impl PartOutcome {
    fn merge(&mut self, other: PartOutcome) {
        self.written += other.written;
        self.overflowed.extend(other.overflowed);
        self.closed.extend(other.closed);
    }
}

/// Sends `events` to the matching subscribers of `list`, in list order.
async fn fan_out_part(inner: &Inner, events: &[Delivery], list: &[Arc<Slot>]) -> PartOutcome {
    let mut out = PartOutcome::default();
    let mut matching: Vec<&Delivery> = Vec::with_capacity(events.len());
    let mut batch = SendBatch::new(inner.uring, YIELD_EVERY);
    for (n, slot) in list.iter().enumerate() {
        prefetch_ahead(list, n);
        let id = slot.id;
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            // Never across an await: the batch's outboxes are busy.
            batch.flush();
            tokio::task::yield_now().await;
        }
        let filter = slot.filter.read().unwrap_or_else(|p| p.into_inner());
        let tx = match &slot.sink {
            // A slow socket's outbox is closed and refuses by itself;
            // not reading `shared` here saves a cache miss per delivery.
            Sink::Socket(outbox) => {
                // Every matching event of the group in one write.
                matching.clear();
                matching.extend(events.iter().filter(|e| filter.matches(e)));
                if matching.is_empty() {
                    continue;
                }
                match outbox.offer(&matching, &mut batch) {
                    Offer::Slow => out.overflowed.push(id),
                    Offer::Sent | Offer::Queued => out.written += matching.len() as u64,
                }
                continue;
            }
            Sink::Queue(_) if slot.shared.slow.load(Ordering::Relaxed) => continue,
            Sink::Queue(tx) => tx,
        };
        for event in events {
            if !filter.matches(event) {
                continue;
            }
            let len = event.text.len();
            let queued = slot.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
            if queued + len > inner.limits.bytes {
                slot.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                out.overflowed.push(id);
                break;
            }
            match tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    out.overflowed.push(id);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    out.closed.push(id);
                    break;
                }
            }
        }
    }
    batch.flush();
    out
}

/// Starts loading what the fan-out touches next while this subscriber's send
/// runs: the slot two ahead, and the outbox of the next one (its slot was
/// asked for one step ago). Each is otherwise a cache miss per delivery —
/// the kernel's send in between evicts them — and `perf annotate` showed
/// those misses as most of the fan-out loop's own time.
fn prefetch_ahead(list: &[Arc<Slot>], n: usize) {
    if let Some(slot) = list.get(n + 2) {
        prefetch_lines(Arc::as_ptr(slot), size_of::<Slot>());
    }
    if let Some(Sink::Socket(outbox)) = list.get(n + 1).map(|s| &s.sink) {
        prefetch_lines(Arc::as_ptr(outbox), size_of::<Outbox>().min(256));
    }
}

/// Prefetches every cache line of `len` bytes from `p` (and the reference
/// counts in front of an `Arc`'s value).
fn prefetch_lines<T>(p: *const T, len: usize) {
    let start = p.cast::<u8>().wrapping_sub(16);
    for offset in (0..len + 16).step_by(64) {
        prefetch(start.wrapping_add(offset));
    }
}

/// A hint to the CPU to start loading `p`'s cache line.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program can observe and cannot
    // fault, whatever the address; `p` is a live allocation here anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The receiving end of one subscriber. Dropping it unregisters.
pub struct Subscription {
    id: u64,
    kind: StreamKind,
    /// `None` for socket subscribers: the hub writes for them.
    rx: Option<mpsc::Receiver<Delivery>>,
    shared: Arc<Shared>,
    hub: Hub,
}

impl Subscription {
    /// Waits for queued events and moves up to `max` into `buf`; 0 means the
    /// hub is gone.
    pub async fn recv_many(&mut self, buf: &mut Vec<Delivery>, max: usize) -> usize {
        let Some(rx) = self.rx.as_mut() else { return std::future::pending().await };
        let n = rx.recv_many(buf, max).await;
        let bytes: usize = buf[buf.len() - n..].iter().map(|d| d.text.len()).sum();
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        n
    }

    /// Unique per subscriber of this server, counting up from 1.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A handle that resolves once the hub cuts this subscriber off for
    /// being slow (usable while the subscription itself is borrowed).
    pub fn slow_signal(&self) -> SlowSignal {
        SlowSignal(self.shared.clone())
    }

    /// Replaces the filter (after `subscribe`/`unsubscribe` messages).
    pub fn set_filter(&self, filter: Filter) {
        let slot = self.hub.registry().slots.get(&self.id).cloned();
        if let Some(slot) = slot {
            *slot.filter.write().unwrap_or_else(|p| p.into_inner()) = filter;
        }
    }

    /// Counts deliveries written to the client.
    pub fn sent(&self, n: usize) {
        self.hub.inner.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records the close of a slow subscriber and the events it never got.
    pub fn closed_slow(&mut self) {
        let c = &self.hub.inner.counters;
        c.slow_disconnects.fetch_add(1, Ordering::Relaxed);
        let mut discarded = 0;
        if let Some(rx) = self.rx.as_mut() {
            while rx.try_recv().is_ok() {
                discarded += 1;
            }
        }
        c.dropped.fetch_add(discarded, Ordering::Relaxed);
    }
}

pub struct SlowSignal(Arc<Shared>);

impl SlowSignal {
    pub async fn wait(&self) {
        if self.0.slow.load(Ordering::Acquire) {
            return;
        }
        self.0.slow_signal.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.write_slots(|slots| {
            slots.remove(&self.id);
        });
        self.hub.inner.counters.connections[self.kind.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

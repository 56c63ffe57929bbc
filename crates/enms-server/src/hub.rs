//! Local fan-out: every live subscriber of this instance (WebSocket or SSE
//! connection), its filter, and its bounded send queue.
//!
//! The bus's fan-out task hands each batch of events to [`Hub::dispatch`]
//! once, already encoded. For a WebSocket the hub writes the shared frame
//! bytes straight to the socket — a chunk of subscribers' sends in one
//! io_uring submission where the kernel allows (see `gateway::socket` and
//! `gateway::uring`); for SSE it clones
//! them into the subscriber's queue with `try_send`. Nothing here waits for a
//! reader. A subscriber whose backlog would pass its message or byte cap is
//! cut off and told it is slow; its connection closes with 4008 and the
//! client resumes from its last id. The registry lock is a plain `Mutex`,
//! held only to take the subscriber list, never across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use crate::bus::{Delivery, Filter};
use crate::gateway::socket::{Offer, Outbox, SendBatch};

/// Subscribers served between two yields of a fan-out.
const YIELD_EVERY: usize = 64;

/// Caps on one subscriber's queue of undelivered events.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self { messages: 4096, bytes: 4 << 20 }
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
}

impl Hub {
    /// `uring` asks for io_uring batched writes; it is dropped, with a log
    /// line, where the kernel refuses io_uring.
    pub fn new(limits: QueueLimits, uring: bool, delivery: metrics::Histogram) -> Self {
        let uring = uring && crate::gateway::uring::available();
        tracing::debug!(io_uring = uring, "fan-out socket writes");
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                next_id: AtomicU64::new(1),
                limits,
                uring,
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
    /// up by a large fan-out.
    pub async fn dispatch(&self, events: &[Delivery]) {
        let mut overflowed = Vec::new();
        let mut closed = Vec::new();
        let mut written = 0;
        let mut matching: Vec<&Delivery> = Vec::with_capacity(events.len());
        let list = self.registry().list();
        let mut batch = SendBatch::new(self.inner.uring, YIELD_EVERY);
        for (n, slot) in list.iter().enumerate() {
            prefetch_ahead(&list, n);
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
                        Offer::Slow => overflowed.push(id),
                        Offer::Sent | Offer::Queued => written += matching.len() as u64,
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
                if queued + len > self.inner.limits.bytes {
                    slot.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    overflowed.push(id);
                    break;
                }
                match tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                        overflowed.push(id);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        closed.push(id);
                        break;
                    }
                }
            }
        }
        batch.flush();
        self.inner.counters.sent.fetch_add(written, Ordering::Relaxed);
        let now = chrono::Utc::now();
        for event in events {
            let age = (now - event.event.timestamp).to_std().unwrap_or_default();
            self.inner.delivery.record(age.as_secs_f64());
        }
        if overflowed.is_empty() && closed.is_empty() {
            return;
        }
        self.write_slots(|slots| {
            for id in &overflowed {
                if let Some(slot) = slots.remove(id) {
                    self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    slot.shared.slow.store(true, Ordering::Release);
                    slot.shared.slow_signal.notify_one();
                }
            }
            for id in &closed {
                slots.remove(id);
            }
        });
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

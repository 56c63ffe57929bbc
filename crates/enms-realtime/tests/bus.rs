//! The `EventBus` contract: one set of cases run on every bus — the
//! in-process bus and the Redis Streams bus (a `redis-server` of the test's
//! own on a free port) — each over a fresh SQLite store, as
//! `enms-store/tests/store.rs` does for the stores. What a publisher and a
//! reader rely on: ids that only go up, every accepted event handed to the
//! fan-out once and in order, bad payloads refused by field with nothing
//! published, replay after an id that is exact, durable events surviving a
//! restart of the bus through the store's log, and filters that hold.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enms_core::event::{EventId, EventType};
use enms_realtime::bus::redis::{RedisBus, RedisConfig};
use enms_realtime::bus::{Accepted, BusConfig, BusError};
use enms_realtime::{Delivery, EventBus, FanOut, Filter, InProcessBus};
use enms_store::Store;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// A fan-out sink that records what it is handed.
#[derive(Default)]
struct Recorder(Mutex<Vec<Delivery>>);

#[async_trait::async_trait]
impl FanOut for Recorder {
    async fn dispatch(&self, batch: &[Delivery]) {
        self.0.lock().expect("recorder").extend(batch.iter().cloned());
    }
}

impl Recorder {
    fn ids(&self) -> Vec<EventId> {
        self.0.lock().expect("recorder").iter().map(|d| d.id()).collect()
    }

    /// Waits until `n` events have been handed over.
    async fn wait_for(&self, n: usize) -> Vec<EventId> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ids = self.ids();
            if ids.len() >= n {
                return ids;
            }
            assert!(tokio::time::Instant::now() < deadline, "fan-out got {} of {n} events", ids.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A redis-server of this test's own, stopped when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "redis-server listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One kind of bus, able to start any number of buses over one store.
#[async_trait::async_trait]
trait Backend: Send + Sync {
    async fn start(&self, store: Arc<dyn Store>, fan_out: Arc<dyn FanOut>) -> Arc<dyn EventBus>;
    fn kind(&self) -> &'static str;
}

struct Local;

#[async_trait::async_trait]
impl Backend for Local {
    async fn start(&self, store: Arc<dyn Store>, fan_out: Arc<dyn FanOut>) -> Arc<dyn EventBus> {
        Arc::new(InProcessBus::start(store, BusConfig::default(), fan_out).await.expect("in-process bus"))
    }
    fn kind(&self) -> &'static str {
        "in-process"
    }
}

struct OnRedis {
    redis: Redis,
    prefix: String,
}

#[async_trait::async_trait]
impl Backend for OnRedis {
    async fn start(&self, store: Arc<dyn Store>, fan_out: Arc<dyn FanOut>) -> Arc<dyn EventBus> {
        let mut config = RedisConfig::new(format!("redis://127.0.0.1:{}", self.redis.port));
        config.prefix = self.prefix.clone();
        Arc::new(RedisBus::start(store, BusConfig::default(), config, fan_out).await.expect("redis bus"))
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let store = enms_store::connect(&url).await.expect("open sqlite");
    (dir, store)
}

fn alert(n: usize) -> Value {
    json!({"alert_type": "contract", "message": format!("alert {n}"), "severity": "warning"})
}

fn metric(n: usize) -> Value {
    json!({"metric_name": "load", "value": n})
}

fn published(a: Accepted) -> Delivery {
    match a {
        Accepted::Published(d) => d,
        Accepted::Buffered => panic!("a reachable bus orders at once"),
    }
}

fn only(types: &[EventType]) -> Filter {
    Filter { types: Some(types.iter().copied().collect::<HashSet<_>>()), ..Filter::default() }
}

async fn run_contract(backend: &dyn Backend) {
    ids_go_up_and_every_event_is_fanned_out_once_in_order(backend).await;
    a_bad_payload_is_refused_by_field_and_nothing_is_published(backend).await;
    replay_after_an_id_is_exact_and_filtered(backend).await;
    durable_events_outlive_the_bus_and_metrics_do_not(backend).await;
}

async fn ids_go_up_and_every_event_is_fanned_out_once_in_order(backend: &dyn Backend) {
    let (_dir, store) = sqlite().await;
    let sink = Arc::new(Recorder::default());
    let bus = backend.start(store, sink.clone()).await;
    assert_eq!(bus.status().kind, backend.kind());
    let mut ids = Vec::new();
    for n in 0..50 {
        let event = if n % 2 == 0 { (EventType::SystemAlert, alert(n)) } else { (EventType::MetricUpdated, metric(n)) };
        ids.push(published(bus.publish(event.0, event.1).await.expect("valid event")).id());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}: ids only go up: {ids:?}", backend.kind());
    assert_eq!(sink.wait_for(50).await, ids, "{}: fanned out once each, in order", backend.kind());
    assert_eq!(bus.status().last_event_id, ids[49]);
}

async fn a_bad_payload_is_refused_by_field_and_nothing_is_published(backend: &dyn Backend) {
    let (_dir, store) = sqlite().await;
    let sink = Arc::new(Recorder::default());
    let bus = backend.start(store, sink.clone()).await;
    let first = published(bus.publish(EventType::SystemAlert, alert(0)).await.expect("valid"));
    let bad = [
        (EventType::SystemAlert, json!({"message": "no type", "severity": "warning"}), "data.alert_type"),
        (EventType::MetricUpdated, json!({"metric_name": "load", "value": "high"}), "data.value"),
        (EventType::SystemAlert, json!([1, 2]), "data"),
    ];
    for (t, data, field) in bad {
        match bus.publish(t, data).await {
            Err(BusError::Invalid(e)) => assert_eq!(e.field, field, "{}", backend.kind()),
            other => panic!("{}: {field} is refused by field, got {other:?}", backend.kind()),
        }
    }
    let last = published(bus.publish(EventType::SystemAlert, alert(1)).await.expect("valid"));
    assert_eq!(sink.wait_for(2).await, vec![first.id(), last.id()], "{}: only the valid two", backend.kind());
    let replay = bus.since(Some(first.id()), &Filter::default(), 100).await.expect("replay");
    assert_eq!(replay.events.iter().map(|d| d.id()).collect::<Vec<_>>(), vec![last.id()]);
}

async fn replay_after_an_id_is_exact_and_filtered(backend: &dyn Backend) {
    let (_dir, store) = sqlite().await;
    let bus = backend.start(store, Arc::new(Recorder::default())).await;
    let mut all = Vec::new();
    for n in 0..20 {
        let (t, data) =
            if n % 4 == 0 { (EventType::MetricUpdated, metric(n)) } else { (EventType::SystemAlert, alert(n)) };
        all.push((t, published(bus.publish(t, data).await.expect("valid")).id()));
    }
    let after = all[9].1;
    let replay = bus.since(Some(after), &Filter::default(), 100).await.expect("replay");
    assert!(replay.complete, "{}: the window holds everything", backend.kind());
    let want: Vec<EventId> = all[10..].iter().map(|(_, id)| *id).collect();
    assert_eq!(replay.events.iter().map(|d| d.id()).collect::<Vec<_>>(), want, "{}", backend.kind());

    let metrics = bus.since(Some(after), &only(&[EventType::MetricUpdated]), 100).await.expect("replay");
    let want: Vec<EventId> =
        all[10..].iter().filter(|(t, _)| *t == EventType::MetricUpdated).map(|(_, id)| *id).collect();
    assert_eq!(metrics.events.iter().map(|d| d.id()).collect::<Vec<_>>(), want, "{}: filtered", backend.kind());

    let limited = bus.since(Some(after), &Filter::default(), 3).await.expect("replay");
    assert_eq!(limited.events.len(), 3, "{}: at most the limit, oldest first", backend.kind());
    assert_eq!(limited.events[0].id(), all[10].1);

    let latest = bus.since(None, &Filter::default(), 5).await.expect("latest");
    let want: Vec<EventId> = all[15..].iter().map(|(_, id)| *id).collect();
    assert_eq!(latest.events.iter().map(|d| d.id()).collect::<Vec<_>>(), want, "{}: the latest five", backend.kind());
}

async fn durable_events_outlive_the_bus_and_metrics_do_not(backend: &dyn Backend) {
    let (_dir, store) = sqlite().await;
    let before = {
        let bus = backend.start(store.clone(), Arc::new(Recorder::default())).await;
        let first = published(bus.publish(EventType::SystemAlert, alert(0)).await.expect("valid")).id();
        published(bus.publish(EventType::MetricUpdated, metric(1)).await.expect("valid"));
        let second = published(bus.publish(EventType::SystemAlert, alert(2)).await.expect("valid")).id();
        (first, second)
    };
    // A new bus over the same store, as after a restart: the durable log
    // answers for what the old window held.
    let sink = Arc::new(Recorder::default());
    let bus = backend.start(store, sink.clone()).await;
    let replay = bus.since(Some(before.0), &only(&[EventType::SystemAlert]), 100).await.expect("replay");
    assert_eq!(replay.events.iter().map(|d| d.id()).collect::<Vec<_>>(), vec![before.1], "{}", backend.kind());
    assert_eq!(replay.events[0].event.data["message"], "alert 2");
    let next = published(bus.publish(EventType::SystemAlert, alert(3)).await.expect("valid")).id();
    assert!(next > before.1, "{}: ids keep going up across the restart", backend.kind());
}

#[tokio::test]
async fn the_in_process_bus_keeps_the_contract() {
    run_contract(&Local).await;
}

#[tokio::test]
async fn the_redis_bus_keeps_the_contract() {
    let redis = Redis::start().await;
    let prefix = format!("contract-{}", std::process::id());
    run_contract(&OnRedis { redis, prefix }).await;
}

//! Several instances: a real `redis-server` of the test's own (so it can be
//! killed), a fresh PostgreSQL database on the machine's server, and two
//! enms instances sharing both, over real sockets.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;
use crate::wsclient::{Ws, alert};

/// A redis-server on a free port that can be killed and started again.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Self {
        let port = free_port();
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, empty: it keeps nothing on disk.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "redis-server listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A database of its own on the machine's PostgreSQL, dropped at the end.
pub struct Postgres {
    admin: sqlx::PgPool,
    pub name: String,
}

impl Postgres {
    pub async fn create() -> Self {
        let base = std::env::var("ENMS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL (ENMS_TEST_POSTGRES)");
        let name = format!("enms_it_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create db");
        Self { admin, name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.name)))
            .execute(&self.admin)
            .await
            .expect("drop db");
    }
}

/// An instance on the shared database and bus.
pub async fn instance(db: &Postgres, redis: &Redis) -> TestServer {
    let (db_url, bus_url) = (db.url(), redis.url());
    TestServer::with(move |c| {
        c.database_url = db_url;
        c.redis = Some(enms_server::RedisConfig::new(bus_url));
    })
    .await
}

/// Publishes an alert through `server`; its id, or `None` when buffered.
async fn publish(server: &TestServer, message: &str) -> Option<String> {
    let (status, body) = server.post("/api/v1/events", &alert(message)).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().map(str::to_owned)
}

/// Events published by the test (the bus's own alerts left out), as
/// (id, message) pairs, until `n` arrived.
async fn test_events(ws: &mut Ws, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = ws.next_json().await;
        if e["data"]["source"] == "event_bus" {
            continue;
        }
        out.push((e["id"].as_str().expect("id").to_owned(), e["data"]["message"].as_str().expect("msg").to_owned()));
    }
    out
}

fn messages(events: &[(String, String)]) -> Vec<String> {
    events.iter().map(|(_, m)| m.clone()).collect()
}

#[tokio::test]
async fn instances_share_one_ordered_stream_and_a_client_can_move_between_them() {
    let (redis, db) = (Redis::start().await, Postgres::create().await);
    let (a, b) = (instance(&db, &redis).await, instance(&db, &redis).await);
    let (mut on_a, _) = Ws::connect(&a, "/api/v1/ws/events").await;
    let (mut on_b, _) = Ws::connect(&b, "/api/v1/ws/events").await;
    let sent: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    for (i, m) in sent.iter().enumerate() {
        publish(if i % 2 == 0 { &a } else { &b }, m).await.expect("published, not buffered");
    }
    let (got_a, got_b) = (test_events(&mut on_a, 100).await, test_events(&mut on_b, 100).await);
    assert_eq!(messages(&got_a), sent, "every event, in publish order, on A");
    assert_eq!(got_a, got_b, "B sees the same events with the same ids in the same order");

    // A client of A leaves after 40 events and comes back through B.
    let resume_from = got_a[39].0.clone();
    on_a.close().await;
    let more: Vec<String> = (100..160).map(|i| format!("m{i}")).collect();
    for m in &more {
        publish(&a, m).await.expect("published");
    }
    let (mut moved, hello) = Ws::connect(&b, &format!("/api/v1/ws/events?last_event_id={resume_from}")).await;
    assert_eq!(hello["recovered"], true, "{hello}");
    let got = test_events(&mut moved, 120).await;
    assert_eq!(messages(&got), sent[40..].iter().chain(&more).cloned().collect::<Vec<_>>(), "no loss, no duplicate");
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

async fn bus_status(server: &TestServer) -> Value {
    let (_, health) = server.get("/api/v1/health").await;
    health["bus"].clone()
}

/// Polls health (bounded) until the bus reports `status`.
async fn await_bus(server: &TestServer, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bus = bus_status(server).await;
        if bus["status"] == status {
            return bus;
        }
        assert!(tokio::time::Instant::now() < deadline, "bus never became {status}: {bus}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_outage_loses_nothing_and_repeats_nothing() {
    let (mut redis, db) = (Redis::start().await, Postgres::create().await);
    let (a, b) = (instance(&db, &redis).await, instance(&db, &redis).await);
    let (mut on_a, _) = Ws::connect(&a, "/api/v1/ws/events").await;
    let (mut on_b, _) = Ws::connect(&b, "/api/v1/ws/events").await;
    for i in 0..20 {
        publish(&a, &format!("before{i}")).await.expect("published");
    }
    let before = test_events(&mut on_a, 20).await;
    assert_eq!(test_events(&mut on_b, 20).await, before);

    redis.kill();
    // Both instances stay up; what is published now waits in their buffers.
    let mut during = Vec::new();
    for i in 0..20 {
        let (server, m) = if i % 2 == 0 { (&a, format!("a{i}")) } else { (&b, format!("b{i}")) };
        publish(server, &m).await;
        during.push(m);
    }
    let degraded = await_bus(&a, "degraded").await;
    assert!(degraded["error"].as_str().is_some_and(|e| e.contains("redis")), "{degraded}");
    await_bus(&b, "degraded").await;
    // The local alert reaches the clients that are still connected.
    let warned = on_a.next_json().await;
    assert_eq!(
        (warned["type"].as_str(), warned["data"]["alert_type"].as_str()),
        (Some("system_alert"), Some("bus_degraded"))
    );

    redis.restart().await;
    await_bus(&a, "ok").await;
    await_bus(&b, "ok").await;
    let after_a = test_events(&mut on_a, 20).await;
    let after_b = test_events(&mut on_b, 20).await;
    let mut seen: Vec<String> = messages(&after_b);
    seen.sort();
    let mut expected = during.clone();
    expected.sort();
    assert_eq!(seen, expected, "every buffered event arrives once");
    assert_eq!(after_a, after_b, "both instances deliver them in the same order with the same ids");
    for i in 0..5 {
        publish(&b, &format!("later{i}")).await.expect("published again, not buffered");
    }
    assert_eq!(messages(&test_events(&mut on_a, 5).await), (0..5).map(|i| format!("later{i}")).collect::<Vec<_>>());
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

//! A server on a free port with its own temporary database, and a client
//! that returns status and JSON for assertions.

use std::path::Path;
use std::time::Duration;

use chrono::{Duration as Span, DurationRound, Utc};
use enms_server::{App, DemoConfig, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const C1: &str = "c0000000-0000-0000-0000-000000000001";

pub struct TestServer {
    pub url: String,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
}

pub fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("enms.db").display())
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let mut server = Self::start_in(&dir, tune).await;
        server._tmp = Some(tmp);
        server
    }

    pub async fn demo(seed: u64) -> Self {
        Self::demo_until(seed, None).await
    }

    /// A demo whose history ends at `history_end` (`None`: now).
    pub async fn demo_until(seed: u64, history_end: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        let demo = DemoConfig {
            seed,
            interval: Duration::from_millis(100),
            history_days: 60,
            history_end,
            ..DemoConfig::default()
        };
        Self::with(|c| c.demo = Some(demo)).await
    }

    /// Starts on the database in `dir`, which outlives the server.
    pub async fn start_in(dir: &Path, tune: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_on(dir, "127.0.0.1:0", tune).await
    }

    /// Starts on the database in `dir` at `bind` (a port of a stopped
    /// server, to restart it where its clients reconnect).
    pub async fn start_on(dir: &Path, bind: &str, tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new(db_url(dir));
        tune(&mut config);
        let base = config.base_path.clone();
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App::build(config).await.expect("build app");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Self {
            url: format!("http://{addr}{base}"),
            _tmp: None,
            stop: Some(stop),
            task: Some(task),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// Graceful stop: in-flight requests finish and the database is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }

    /// A request to `path` carrying the server's current token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        respond(self.request(reqwest::Method::GET, path).send().await).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        respond(self.request(reqwest::Method::DELETE, path).send().await).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        respond(self.request(reqwest::Method::POST, path).json(body).send().await).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        respond(self.request(reqwest::Method::PATCH, path).json(body).send().await).await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self.request(method, path).header("content-type", content_type);
        respond(req.body(body).send().await).await
    }

    pub async fn create_machine(&self, name: &str) -> String {
        let (status, body) = self.post("/api/v1/machines", &json!({"name": name, "type": "compressor"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Number of stored readings of a machine, counted by the server.
    pub async fn count(&self, machine: &str) -> u64 {
        let (status, body) = self
            .get(&format!("/api/v1/machines/{machine}/readings?start=2000-01-01T00:00:00Z&resolution=1d&limit=100000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["points"].as_array().expect("points").iter().map(|p| p["samples"].as_u64().expect("samples")).sum()
    }
}

pub async fn respond(resp: Result<reqwest::Response, reqwest::Error>) -> (StatusCode, Value) {
    let resp = resp.expect("request reaches the server");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, value)
}

/// Asserts the structured error body and returns it.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    let err = &got.1["error"];
    assert_eq!(err["code"], code, "{}", got.1);
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
    err.clone()
}

/// `n` readings of `machine`, 15 minutes apart, ending a day ago.
pub fn readings(machine: &str, n: usize, kw: f64) -> Vec<Value> {
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let end = chrono::DurationRound::duration_trunc(end, chrono::Duration::minutes(15)).expect("trunc");
    (0..n)
        .map(|i| {
            let ts = end - chrono::Duration::minutes(15 * (n - 1 - i) as i64);
            json!({"machine_id": machine, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw / 4.0,
                   "production_units": 10.0, "outdoor_temp_c": 11.5})
        })
        .collect()
}

/// Seven days of 15-minute readings ending now: 10 kW idle, 10 + 2·units
/// while producing (06–22), with small deterministic noise.
pub fn factory_week(machine: &str) -> Vec<Value> {
    let end = Utc::now().duration_trunc(Span::minutes(15)).expect("trunc");
    let n = 7 * 96;
    (0..n)
        .map(|i| {
            let ts = end - Span::minutes(15 * (n - 1 - i) as i64);
            let hour = chrono::Timelike::hour(&ts);
            let units = if (6..22).contains(&hour) { 5.0 + (i % 5) as f64 } else { 0.0 };
            let kw = 10.0 + 8.0 * units + ((i * 7919) % 41) as f64 / 40.0 - 0.5;
            json!({"machine_id": machine, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw / 4.0,
                   "production_units": units, "outdoor_temp_c": 9.0 + (i % 24) as f64 * 0.3})
        })
        .collect()
}

pub async fn seeded_machine(s: &TestServer, name: &str) -> String {
    let id = s.create_machine(name).await;
    let (status, body) = s.post("/api/v1/readings", &json!({"readings": factory_week(&id)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

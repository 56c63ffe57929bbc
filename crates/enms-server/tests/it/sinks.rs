//! Where notifications land in tests: a webhook receiver on a real socket
//! that answers what the test scripts, and an SMTP sink that really speaks
//! SMTP (aiosmtpd, scripts/smtp-sink). Shared with the binary's tests.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
}

#[derive(Clone, Default)]
struct Log {
    got: Arc<Mutex<Vec<Got>>>,
    /// Statuses to answer, in order; 200 once it is empty.
    script: Arc<Mutex<VecDeque<u16>>>,
}

/// A webhook receiver on a real socket.
pub struct Receiver {
    pub url: String,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

async fn take(State(log): State<Log>, uri: Uri, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    log.got.lock().expect("lock").push(Got { path: uri.path().to_owned(), headers, body, raw });
    let code = log.script.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(code).expect("status")
}

impl Receiver {
    pub async fn start(port: u16, script: &[u16]) -> Self {
        let log = Log::default();
        log.script.lock().expect("lock").extend(script);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(take).with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, log, task }
    }

    pub fn got(&self) -> Vec<Got> {
        self.log.got.lock().expect("lock").clone()
    }

    /// Waits until `check` holds for what arrived.
    pub async fn until(&self, what: &str, check: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.got();
            if check(&got) {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: receiver got {got:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// aiosmtpd on a free port, writing each message as a JSON line.
pub struct SmtpSink {
    pub port: u16,
    out: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let python = std::env::var("ENMS_TEST_SMTP_PYTHON")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/smtp-venv/bin/python").to_owned());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp-sink/sink.py");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("mails.jsonl");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new(&python)
            .args([script, "--port", &port.to_string(), "--out", out.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the SMTP sink ({python}; scripts/smtp-sink/setup makes it): {e}"));
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the SMTP sink listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, out, child, _dir: dir }
    }

    pub fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("sink line"))
            .collect()
    }

    pub async fn until(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mails = self.mails();
            if check(&mails) {
                return mails;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: sink holds {mails:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header's text, or "".
pub fn header<'a>(g: &'a Got, name: &str) -> &'a str {
    g.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

//! A WebSocket test client over a real socket that speaks the enms protocol.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::common::TestServer;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub fn ws_url(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.url.replacen("http://", "ws://", 1))
}

impl Ws {
    /// Connects and returns the client with its `connection` message.
    pub async fn connect(server: &TestServer, path: &str) -> (Self, Value) {
        let (inner, _) = connect_async(ws_url(server, path)).await.expect("websocket connects");
        let mut ws = Self { inner };
        let hello = ws.next_json().await;
        assert_eq!(
            (hello["type"].as_str(), hello["status"].as_str()),
            (Some("connection"), Some("connected")),
            "{hello}"
        );
        (ws, hello)
    }

    /// Next text message as JSON; fails on close or after [`WAIT`].
    pub async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("a message arrives in time")
                .expect("stream open")
                .expect("valid frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next `n` events (messages with an `id`).
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let v = self.next_json().await;
            assert!(v["id"].is_string(), "expected an event, got {v}");
            out.push(v);
        }
        out
    }

    pub async fn send_json(&mut self, v: Value) {
        self.inner.send(Message::text(v.to_string())).await.expect("send");
    }

    pub async fn ask(&mut self, v: Value) -> Value {
        self.send_json(v).await;
        self.next_json().await
    }

    /// Reads until the server's close frame; returns its code and reason.
    /// Events before it are returned too.
    pub async fn until_close(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.inner.next()).await.expect("close arrives in time") {
                Some(Ok(Message::Close(frame))) => return (frame, events),
                Some(Ok(Message::Text(t))) => events.push(serde_json::from_str(&t).expect("json")),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket failed before a close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

pub fn close_code(frame: &Option<CloseFrame>) -> u16 {
    frame.as_ref().map(|f| u16::from(f.code)).expect("a close frame with a code")
}

pub fn alert(message: &str) -> Value {
    json!({"type": "system_alert", "data": {"alert_type": "test", "message": message, "severity": "info", "source": "it"}})
}

pub fn anomaly(machine: &str, severity: &str, kind: &str) -> Value {
    json!({"type": "anomaly_detected", "data": {"machine_id": machine, "severity": severity, "anomaly_type": kind, "value": 1.0}})
}

/// Publishes `system_alert`s with these messages from a task of its own,
/// one after the other.
pub fn spawn_alerts(server: &TestServer, messages: Vec<String>) -> tokio::task::JoinHandle<()> {
    let url = format!("{}/api/v1/events", server.url);
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        for m in messages {
            let r = http.post(&url).json(&alert(&m)).send().await;
            assert_eq!(r.expect("publish").status(), reqwest::StatusCode::ACCEPTED);
        }
    })
}

/// Publishes through the HTTP API and returns the event id.
pub async fn publish(server: &TestServer, event: &Value) -> String {
    let (status, body) = server.post("/api/v1/events", event).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

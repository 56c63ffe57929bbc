//! A WebSocket event stream for the CLI: authenticates, greets, and on any
//! drop reconnects with full-jitter backoff and resumes after the last
//! event it returned, so callers see every event once, in order.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::Client;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The server pings every 25 s by default; silence past this means the
/// connection is gone even if TCP has not noticed.
const SILENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The server refused the handshake (bad token, bad filter): retrying
    /// would not help.
    #[error("{url} refused the stream ({status}): {message}")]
    Refused { url: String, status: u16, message: String },
    #[error("bad stream URL {0}")]
    Url(String),
}

pub struct EventStream {
    client: Client,
    /// Path and query without `last_event_id`.
    path: String,
    last_id: Option<String>,
    socket: Option<Socket>,
    failures: u32,
    /// Said once per reconnect, on stderr.
    pub quiet: bool,
}

impl EventStream {
    /// Connects (failing fast if the server refuses) and reads the greeting.
    pub async fn open(client: Client, path: String, since: Option<String>) -> Result<Self, StreamError> {
        let mut stream = Self { client, path, last_id: since, socket: None, failures: 0, quiet: false };
        match stream.connect().await {
            Ok(socket) => stream.socket = Some(socket),
            Err(Attempt::Refused(e)) => return Err(e),
            Err(Attempt::Failed(e)) => return Err(StreamError::Url(format!("{}: {e}", stream.url()))),
        }
        Ok(stream)
    }

    fn url(&self) -> String {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        match &self.last_id {
            Some(id) => format!("{}{}last_event_id={id}", self.client.ws_url(&self.path), sep),
            None => self.client.ws_url(&self.path),
        }
    }

    /// The next event (a message with an `id`), reconnecting as needed;
    /// only a refusal ends the stream.
    pub async fn next(&mut self) -> Result<Value, StreamError> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            let frame = tokio::time::timeout(SILENCE, socket.next()).await;
            let message = match frame {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => {
                    self.lost(&format!("connection failed: {e}"));
                    continue;
                }
                Ok(None) => {
                    self.lost("connection ended");
                    continue;
                }
                Err(_) => {
                    self.lost("no frame for 60 s");
                    continue;
                }
            };
            match message {
                Message::Text(text) => {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                    if let Some(id) = v["id"].as_str() {
                        self.last_id = Some(id.to_owned());
                        return Ok(v);
                    }
                }
                Message::Close(frame) => {
                    let why = frame.map(|f| format!("closed {} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    self.lost(&why);
                }
                Message::Ping(p) => {
                    let _ = socket.send(Message::Pong(p)).await;
                }
                _ => {}
            }
        }
    }

    fn lost(&mut self, why: &str) {
        self.socket = None;
        if !self.quiet {
            eprintln!("stream lost ({why}); reconnecting");
        }
    }

    async fn reconnect(&mut self) -> Result<(), StreamError> {
        loop {
            tokio::time::sleep(backoff(self.failures)).await;
            match self.connect().await {
                Ok(socket) => {
                    self.failures = 0;
                    self.socket = Some(socket);
                    if !self.quiet {
                        eprintln!("reconnected; resuming after {}", self.last_id.as_deref().unwrap_or("the start"));
                    }
                    return Ok(());
                }
                Err(Attempt::Refused(e)) => return Err(e),
                Err(Attempt::Failed(e)) => {
                    self.failures += 1;
                    if !self.quiet {
                        eprintln!("reconnect failed ({e}); retrying");
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<Socket, Attempt> {
        let url = self.url();
        let mut request = url.as_str().into_client_request().map_err(|e| Attempt::Failed(e.to_string()))?;
        if let Some(token) = self.client.token() {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Attempt::Refused(StreamError::Url("the token has characters a header cannot carry".into()))
            })?;
            request.headers_mut().insert("authorization", value);
        }
        let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(WsError::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(body);
                // 503 (full, draining) and 502/504 from a proxy are worth retrying.
                if status >= 500 {
                    return Err(Attempt::Failed(format!("{status} {message}")));
                }
                return Err(Attempt::Refused(StreamError::Refused { url, status, message }));
            }
            Err(e) => return Err(Attempt::Failed(e.to_string())),
        };
        // The greeting comes first; wait for it so "connected" means it.
        match tokio::time::timeout(SILENCE, socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"connection\"") => {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["recovered"] == false && self.last_id.is_some() && !self.quiet {
                    eprintln!("warning: events were missed beyond the server's retention; continuing live");
                }
                Ok(socket)
            }
            _ => Err(Attempt::Failed("no greeting from the server".into())),
        }
    }
}

enum Attempt {
    Refused(StreamError),
    Failed(String),
}

/// Full jitter: a random wait up to 250 ms · 2^failures, capped.
fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_millis(250).saturating_mul(1 << failures.min(6)).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    cap.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

//! The seed monitor's WebSockets: `/api/ws/ws` pushes each host sample as
//! its flat JSON, `/api/ws/alerts` pushes anomalies and system alerts.
//!
//! They are views of the same bus as our own streams: a hub subscription
//! with a filter (`metric_updated` carrying a host's values; or
//! `anomaly_detected` and `system_alert`), each event reshaped per
//! connection. That reshaping is why they do not take the shared-frame path
//! of `ws.rs` — the seed's clients expect its shapes — and why they carry
//! no ids and no resume: the seed had neither. Clients that need lossless
//! delivery use `/api/v1/ws/{stream}`.
//!
//! The upgrade, the connection limit and the drain on shutdown are the
//! gateway's; a connection counts under the `custom` stream.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use enms_core::event::{EventType, Severity};
use enms_core::host::FlatSample;
use enms_realtime::bus::{Delivery, Filter};
use enms_realtime::hub::{StreamKind, Subscription};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use uuid::Uuid;

use super::Permit;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::Params;
use crate::state::AppState;

/// Events taken from the subscription per wake-up.
const BATCH: usize = 64;

#[derive(Clone, Copy)]
enum Feed {
    Metrics,
    Alerts,
}

/// The seed's metrics WebSocket.
#[utoipa::path(get, path = "/api/ws/ws", tag = "seed compatibility", operation_id = "seed_ws_metrics",
    description = "WebSocket: each host sample, as it is stored, in the flat JSON of `GET /api/metrics/current`; \
        the newest sample is sent on connect. No ids or resume (use `/api/v1/ws/dashboard` for that).",
    params(("host" = Option<String>, Query, description = "Only this host's samples (a machine name)")),
    responses(
        (status = 101, description = "Upgraded"),
        (status = 404, description = "No such host (`unknown_host`)", body = ErrorResponse),
        (status = 426, description = "Not a WebSocket handshake (`websocket_upgrade_required`)", body = ErrorResponse),
        (status = 503, description = "The server's connection limit is reached, or it is shutting down", body = ErrorResponse),
    ))]
pub async fn metrics(state: State<AppState>, params: Params, req: Request) -> Result<Response, ApiError> {
    open(Feed::Metrics, state, params, req).await
}

/// The seed's alerts WebSocket.
#[utoipa::path(get, path = "/api/ws/alerts", tag = "seed compatibility", operation_id = "seed_ws_alerts",
    description = "WebSocket: `{\"type\": \"alert\", ...}` for every anomaly detected and every system alert, \
        with severity, machine, message and the event's data.",
    params(("min_severity" = Option<Severity>, Query, description = "Only alerts of this severity or above")),
    responses(
        (status = 101, description = "Upgraded"),
        (status = 426, description = "Not a WebSocket handshake (`websocket_upgrade_required`)", body = ErrorResponse),
        (status = 503, description = "The server's connection limit is reached, or it is shutting down", body = ErrorResponse),
    ))]
pub async fn alerts(state: State<AppState>, params: Params, req: Request) -> Result<Response, ApiError> {
    open(Feed::Alerts, state, params, req).await
}

async fn open(
    feed: Feed,
    State(state): State<AppState>,
    params: Params,
    mut req: Request,
) -> Result<Response, ApiError> {
    let mut filter = Filter::default();
    let mut host = None;
    match feed {
        Feed::Metrics => {
            filter.types = Some([EventType::MetricUpdated].into());
            if let Some(name) = params.get("host") {
                let m = crate::hosts::pick(&state, Some(name)).await?;
                filter.machine_ids = Some([m.id.to_string()].into());
                host = Some(m);
            }
        }
        Feed::Alerts => {
            filter.types = Some([EventType::AnomalyDetected, EventType::SystemAlert].into());
            filter.min_severity = params.parse("min_severity", |v| v.parse::<Severity>())?;
        }
    }
    let accept = super::ws::handshake_key(req.headers())?;
    let permit = state.gateway.admit(req.extensions().get::<Principal>())?;
    // Subscribed before the 101, so nothing published after it is missed.
    let subscription = state.gateway.hub.subscribe(StreamKind::Custom, filter);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        let config = WebSocketConfig::default().max_message_size(Some(super::ws::MAX_CLIENT_MESSAGE));
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        let mut conn = Connection { state, socket, subscription, names: HashMap::new(), _permit: permit };
        if let (Feed::Metrics, Some(m)) = (feed, host.as_ref()) {
            conn.names.insert(m.id, m.name.clone());
        }
        conn.run(feed, host.map(|m| m.name)).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

struct Connection {
    state: AppState,
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    subscription: Subscription,
    /// Host names by machine id, looked up once per connection.
    names: HashMap<Uuid, String>,
    _permit: Permit,
}

impl Connection {
    async fn run(&mut self, feed: Feed, host: Option<String>) {
        if let Feed::Metrics = feed
            && let Some(first) = self.newest(host).await
            && self.socket.send(Message::text(first)).await.is_err()
        {
            return;
        }
        let draining = self.state.gateway.draining().clone();
        let ended = self._permit.ended();
        tokio::pin!(ended);
        let mut batch: Vec<Delivery> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                () = draining.cancelled() => {
                    let close = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                    let _ = self.socket.send(Message::Close(Some(close))).await;
                    return;
                }
                () = &mut ended => {
                    let code = CloseCode::from(super::ws::CLOSE_CREDENTIAL_ENDED);
                    let close = CloseFrame { code, reason: "signed out, revoked or expired".into() };
                    let _ = self.socket.send(Message::Close(Some(close))).await;
                    return;
                }
                n = self.subscription.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    for d in batch.drain(..) {
                        let Some(text) = self.shape(feed, &d).await else { continue };
                        if self.socket.feed(Message::text(text)).await.is_err() {
                            return;
                        }
                    }
                    if self.socket.flush().await.is_err() {
                        return;
                    }
                    self.subscription.sent(n);
                }
                msg = self.socket.next() => match msg {
                    // Tungstenite answers pings itself; anything else the
                    // client sends is ignored, as the seed did.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// The newest sample (of `host`, else of the host that sampled last).
    async fn newest(&mut self, host: Option<String>) -> Option<String> {
        let m = crate::hosts::pick(&self.state, host.as_deref()).await.ok()?;
        let sample = crate::hosts::latest(&self.state, &m).await.ok()??;
        serde_json::to_string(&sample).ok()
    }

    async fn shape(&mut self, feed: Feed, d: &Delivery) -> Option<String> {
        let e = &d.event;
        match feed {
            Feed::Metrics => {
                let values = e.data.get("values")?.as_object()?;
                let extra = values.iter().filter_map(|(k, v)| v.as_f64().map(|n| (k.clone(), n))).collect();
                if !FlatSample::is_host_sample(&extra) {
                    return None;
                }
                let id: Uuid = e.machine_id()?.parse().ok()?;
                let name = self.name(id).await?;
                let at = e.data.get("timestamp").and_then(Value::as_str).and_then(enms_core::timestamp::parse)?;
                let power = e.data.get("value").and_then(Value::as_f64).unwrap_or(0.0);
                serde_json::to_string(&FlatSample::new(id, &name, at, power, &extra)).ok()
            }
            Feed::Alerts => {
                let machine_id = e.machine_id();
                let machine_name = match machine_id.and_then(|m| m.parse().ok()) {
                    Some(id) => self.name(id).await,
                    None => None,
                };
                let message = alert_message(e.event_type, &e.data, machine_name.as_deref());
                let alert = json!({
                    "type": "alert",
                    "event_type": e.event_type.as_str(),
                    "event_id": e.id,
                    "timestamp": e.timestamp,
                    "severity": e.data.get("severity").cloned().unwrap_or(Value::Null),
                    "machine_id": machine_id,
                    "machine_name": machine_name,
                    "message": message,
                    "data": e.data,
                });
                Some(alert.to_string())
            }
        }
    }

    async fn name(&mut self, id: Uuid) -> Option<String> {
        if let Some(n) = self.names.get(&id) {
            return Some(n.clone());
        }
        let m = self.state.store.get_machine(id).await.ok()??;
        self.names.insert(id, m.name.clone());
        Some(m.name)
    }
}

/// One line a person can read: what happened to which machine.
fn alert_message(kind: EventType, data: &Value, machine: Option<&str>) -> String {
    let text = |k: &str| data.get(k).and_then(Value::as_str);
    let machine = machine.unwrap_or("a machine");
    match kind {
        EventType::AnomalyDetected => {
            let what = text("anomaly_type").unwrap_or("anomaly");
            match (data.get("value").and_then(Value::as_f64), data.get("expected_value").and_then(Value::as_f64)) {
                (Some(v), Some(x)) => {
                    format!("{what} on {machine}: {} {v:.2}, expected {x:.2}", text("metric").unwrap_or("value"))
                }
                _ => format!("{what} on {machine}"),
            }
        }
        _ => text("message").unwrap_or("system alert").to_owned(),
    }
}

//! WebSocket streams: `/api/v1/ws/{dashboard,anomalies,training,events}` and
//! `/api/v1/ws?types=`.
//!
//! The handshake is answered here (after the parameters are validated and
//! the connection is admitted, so refusals get an HTTP error body). After
//! the upgrade the raw `TcpStream` goes into an [`Outbox`] that the hub
//! writes events to directly; the connection task only reads client
//! messages (through tungstenite), answers them, pings, writes what the
//! socket could not take at once, and closes.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::held::{HeldStream, HoldHandshake};
use super::messages::{self, ClientMessage};
use super::{ConnectRequest, Permit, history, stream_types};
use crate::auth::{Principal, offered_subprotocols};
use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::Params;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use enms_core::event::{EventType, Severity};
use enms_realtime::bus::Filter;
use enms_realtime::hub::{SlowSignal, StreamKind, Subscription};
use enms_realtime::outbox::{Offer, Outbox, ReadSide};
use enms_realtime::wire::{OP_CLOSE, OP_PING, OP_TEXT};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tungstenite::Message;
use tungstenite::protocol::{Role, WebSocketConfig};

/// Client frames and messages larger than this close the connection with 1009.
pub const MAX_CLIENT_MESSAGE: usize = 64 << 10;
/// Tungstenite's per-connection read buffer (it grows for a larger message,
/// up to the 64 KiB cap): client messages are pings and subscriptions of a
/// few dozen bytes, and 10,000 idle connections must stay within 8 KiB each.
const READ_BUFFER: usize = 256;
/// Time for pending bytes and the close frame to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time then given to the client to answer the close before we hang up.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

pub const CLOSE_SHUTDOWN: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_PING_TIMEOUT: u16 = 4000;
pub const CLOSE_SLOW: u16 = 4008;
/// The stream's credential ended: signed out, revoked, disabled or
/// expired (HTTP's 401 in the private range). Sign in again, then resume.
pub const CLOSE_CREDENTIAL_ENDED: u16 = 4401;

/// A live WebSocket stream of one kind.
#[utoipa::path(get, path = "/api/v1/ws/{stream}", tag = "events", operation_id = "websocket_stream",
    description = "A WebSocket of one stream's event types: `dashboard` (all), `anomalies` \
        (`anomaly_detected`, `anomaly_updated`), `training` (`training_*`, `model_updated`), `events` (`system_alert`). \
        The messages are described in docs/protocol.md.",
    params(
        ("stream" = String, Path, pattern = "^(dashboard|anomalies|training|events)$", description = "dashboard, anomalies, training or events"),
        ("machine_id" = Option<Vec<Uuid>>, Query, style = Form, explode = true, description = "Only events about these machines"),
        ("min_severity" = Option<Severity>, Query, description = "Only anomalies of this severity or above"),
        super::params::ConnectParams,
    ),
    responses(
        (status = 101, description = "Upgraded; the first message is `{\"type\": \"connection\", ...}`"),
        (status = 404, description = "No such stream (`not_found`)", body = ErrorResponse),
        (status = 426, description = "Not a WebSocket handshake (`websocket_upgrade_required`)", body = ErrorResponse),
        (status = 429, description = "The token holds its limit of connections (`too_many_connections_for_token`)", body = ErrorResponse),
        (status = 503, description = "The server's connection limit is reached, or it is shutting down", body = ErrorResponse),
    ))]
pub async fn named(
    Path(stream): Path<String>,
    state: State<AppState>,
    params: Params,
    req: Request,
) -> Result<Response, ApiError> {
    let kind = match stream.as_str() {
        "dashboard" => StreamKind::Dashboard,
        "anomalies" => StreamKind::Anomalies,
        "training" => StreamKind::Training,
        "events" => StreamKind::Events,
        other => return Err(ApiError::not_found("stream", other)),
    };
    open(kind, state, params, req).await
}

/// A live WebSocket stream of chosen event types.
#[utoipa::path(get, path = "/api/v1/ws", tag = "events", operation_id = "websocket_custom",
    description = "A WebSocket of any set of event types (`types=`). The messages are described in docs/protocol.md.",
    params(super::params::FilterParams, super::params::ConnectParams),
    responses(
        (status = 101, description = "Upgraded; the first message is `{\"type\": \"connection\", ...}`"),
        (status = 426, description = "Not a WebSocket handshake (`websocket_upgrade_required`)", body = ErrorResponse),
        (status = 429, description = "The token holds its limit of connections (`too_many_connections_for_token`)", body = ErrorResponse),
        (status = 503, description = "The server's connection limit is reached, or it is shutting down", body = ErrorResponse),
    ))]
pub async fn custom(state: State<AppState>, params: Params, req: Request) -> Result<Response, ApiError> {
    open(StreamKind::Custom, state, params, req).await
}

/// The `Sec-WebSocket-Accept` value, or why this is not a WebSocket handshake.
pub(super) fn handshake_key(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let refuse = |m: &str| ApiError::new(Code::WebsocketUpgradeRequired, m);
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return Err(refuse("this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade"));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err(refuse("Sec-WebSocket-Version must be 13"));
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or_else(|| refuse("missing Sec-WebSocket-Key"))?;
    HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key.as_bytes())).map_err(ApiError::internal)
}

/// Validates and admits before upgrading, so a bad request or a full server
/// gets an HTTP error body rather than a dropped socket.
async fn open(
    kind: StreamKind,
    State(state): State<AppState>,
    params: Params,
    mut req: Request,
) -> Result<Response, ApiError> {
    // Parameters first, so a client learns what is wrong with them even
    // before it gets the handshake right.
    let request = ConnectRequest::from_params(&params, kind, None)?;
    let accept = handshake_key(req.headers())?;
    let permit = state.gateway.admit(req.extensions().get::<Principal>())?;
    let protocol = subprotocol(req.headers());
    let hold = req.extensions().get::<HoldHandshake>().cloned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<HeldStream>>() else {
            return tracing::error!("websocket upgrade over an unexpected transport");
        };
        let (stream, handshake) = parts.io.into_inner().into_parts();
        let _ = stream.set_nodelay(true);
        serve(stream, handshake, parts.read_buf.to_vec(), state, kind, request, permit).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    // Nothing can fail from here: hyper's 101 waits for the greeting.
    if let Some(hold) = hold {
        hold.hold();
    }
    Ok(response)
}

/// The subprotocol to answer with. Browsers put the token in the offered
/// list (`["enms", "bearer.<token>"]`) and refuse the connection unless the
/// server picks one of the offers: `enms` when offered, else the bearer
/// entry itself.
fn subprotocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let offered: Vec<&str> = offered_subprotocols(headers).collect();
    let pick = offered.iter().find(|p| **p == "enms").or_else(|| offered.iter().find(|p| p.starts_with("bearer.")))?;
    HeaderValue::from_str(pick).ok()
}

/// Why a connection loop stopped.
enum Stop {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    Close(u16, &'static str),
}

struct Connection {
    outbox: Arc<Outbox>,
    sub: Subscription,
    /// Resolves when the hub cuts the client off as slow or the server drains.
    stop: Pin<Box<dyn Future<Output = Stop> + Send>>,
    filter: Filter,
    allowed: Option<HashSet<EventType>>,
    state: AppState,
}

async fn serve(
    stream: TcpStream,
    handshake: Vec<u8>,
    read_buf: Vec<u8>,
    state: AppState,
    kind: StreamKind,
    request: ConnectRequest,
    _permit: Permit,
) {
    // The set-up and the close are boxed: their state would otherwise count
    // in the size of every idle connection.
    let ended = _permit.ended();
    let Some((mut conn, mut reader, slow_from_start)) =
        Box::pin(start(stream, handshake, read_buf, state, kind, request, ended)).await
    else {
        return;
    };
    let stop = if slow_from_start { Stop::Close(CLOSE_SLOW, "slow consumer") } else { conn.run(&mut reader).await };
    Box::pin(conn.finish(stop, reader)).await;
}

/// Registers, sends the greeting and the missed events, and sets up the reader.
async fn start(
    stream: TcpStream,
    handshake: Vec<u8>,
    read_buf: Vec<u8>,
    state: AppState,
    kind: StreamKind,
    request: ConnectRequest,
    ended: impl Future<Output = ()> + Send + 'static,
) -> Option<(Connection, WebSocketStream<ReadSide>, bool)> {
    let outbox = Outbox::new(stream, state.gateway.config.hub.queue, request.last_event_id);
    // Register first, then read history: nothing published in between is lost.
    let sub = state.gateway.hub.subscribe_socket(kind, request.filter.clone(), outbox.clone());
    let (backlog, recovered) = match history(&state.gateway, state.bus.as_ref(), &request).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "websocket history unavailable");
            return None;
        }
    };
    let hello = messages::connection(&request.client_id, kind.as_str(), recovered, state.bus.status().last_event_id);
    outbox.greet(handshake, Bytes::from(hello));
    let slow_from_start = outbox.go_live(&backlog) == Offer::Slow;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let reader =
        WebSocketStream::from_partially_read(ReadSide(outbox.clone()), read_buf, Role::Server, Some(config)).await;
    let conn = Connection {
        stop: stop_signal(state.gateway.draining().clone(), sub.slow_signal(), ended),
        outbox,
        sub,
        allowed: stream_types(kind).or_else(|| request.filter.types.clone()),
        filter: request.filter,
        state,
    };
    Some((conn, reader, slow_from_start))
}

impl Connection {
    async fn run(&mut self, reader: &mut WebSocketStream<ReadSide>) -> Stop {
        let interval = self.state.gateway.config.ping_interval;
        let write_timeout = self.state.gateway.config.write_timeout;
        let mut ping = tokio::time::interval_at(Instant::now() + first_ping(interval, self.sub.id()), interval);
        let mut last_heard = Instant::now();
        loop {
            let outbox = self.outbox.clone();
            let step = tokio::select! {
                biased;
                stop = &mut self.stop => Err(stop),
                r = drain_pending(&outbox, write_timeout) => r,
                incoming = reader.next() => {
                    last_heard = Instant::now();
                    // Rare next to deliveries; boxed to keep idle connections small.
                    Box::pin(self.on_incoming(incoming)).await
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= 2 * interval {
                        Err(Stop::Close(CLOSE_PING_TIMEOUT, "no answer to pings"))
                    } else {
                        self.outbox.send(OP_PING, Bytes::new());
                        Ok(())
                    }
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    async fn on_incoming(&mut self, incoming: Option<Result<Message, tungstenite::Error>>) -> Result<(), Stop> {
        match incoming {
            None | Some(Ok(Message::Close(_))) => Err(Stop::Gone),
            Some(Err(tungstenite::Error::Capacity(_))) => Err(Stop::Close(CLOSE_TOO_BIG, "message too big")),
            Some(Err(_)) => Err(Stop::Gone),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Binary(_))) => {
                self.reply(messages::error("binary_not_supported", "send JSON text messages"));
                Ok(())
            }
            Some(Ok(Message::Text(text))) => {
                let answer = self.on_message(&text);
                self.reply(answer);
                Ok(())
            }
        }
    }

    fn on_message(&mut self, text: &str) -> String {
        let message = match messages::parse(text) {
            Ok(m) => m,
            Err((code, message)) => return messages::error(code, &message),
        };
        let ack = match &message {
            ClientMessage::Ping => return messages::pong(),
            ClientMessage::Subscribe { .. } => "subscribed",
            ClientMessage::Unsubscribe { .. } => "unsubscribed",
        };
        match messages::apply(&self.filter, message, self.allowed.as_ref()) {
            Ok(filter) => {
                self.sub.set_filter(filter.clone());
                self.filter = filter;
                messages::acknowledgement(ack, &self.filter)
            }
            Err((code, message)) => messages::error(code, &message),
        }
    }

    fn reply(&self, text: String) {
        self.outbox.send(OP_TEXT, Bytes::from(text));
    }

    /// Sends the close frame after whatever is pending, then reads until the
    /// client answers or hangs up, within a bounded time. Reading to the end
    /// matters: closing a socket with unread input (a pong, the client's
    /// close) sends a reset, and a reset makes the client's kernel discard
    /// the data — close frame included — it had not read yet.
    async fn finish(mut self, stop: Stop, mut reader: WebSocketStream<ReadSide>) {
        self.outbox.close_events();
        let Stop::Close(code, reason) = stop else { return };
        if code == CLOSE_SLOW {
            self.sub.closed_slow();
        }
        drop(self.sub);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.outbox.send(OP_CLOSE, Bytes::from(payload));
        if let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, self.outbox.flush()).await {
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Some(Ok(message)) = reader.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// Waits until the outbox has bytes the socket did not take, then writes
/// them; only returns on failure. A write blocked past `write_timeout` makes
/// the client a slow consumer.
async fn drain_pending(outbox: &Outbox, write_timeout: Duration) -> Result<(), Stop> {
    loop {
        if !outbox.has_pending() {
            outbox.wake.notified().await;
        }
        // Boxed: the timer is only needed while a backlog is written.
        match Box::pin(tokio::time::timeout(write_timeout, outbox.flush())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Stop::Gone),
            Err(_) => return Err(Stop::Close(CLOSE_SLOW, "slow consumer")),
        }
    }
}

/// When a connection sends its first ping: between half and one interval,
/// spread by the subscriber number (golden-ratio steps cover the range
/// evenly). Clients that connect together — all of them after a restart —
/// would otherwise be pinged, and answer, in one burst every interval, and
/// events published meanwhile would wait behind it.
fn first_ping(interval: Duration, subscriber: u64) -> Duration {
    let spread = (subscriber.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    interval.mul_f64(0.5 + 0.5 * spread)
}

fn stop_signal(
    drain: CancellationToken,
    slow: SlowSignal,
    ended: impl Future<Output = ()> + Send + 'static,
) -> Pin<Box<dyn Future<Output = Stop> + Send>> {
    Box::pin(async move {
        tokio::select! {
            biased;
            _ = drain.cancelled() => Stop::Close(CLOSE_SHUTDOWN, "server shutting down"),
            _ = slow.wait() => Stop::Close(CLOSE_SLOW, "slow consumer"),
            () = ended => Stop::Close(CLOSE_CREDENTIAL_ENDED, "signed out, revoked or expired"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Duration, first_ping};

    #[test]
    fn first_pings_spread_over_the_second_half_of_an_interval() {
        let interval = Duration::from_secs(20);
        let mut tenths = [0; 10];
        for id in 1..=1000 {
            let at = first_ping(interval, id);
            assert!(at >= interval / 2 && at <= interval, "{at:?}");
            tenths[((at.as_secs_f64() - 10.0) as usize).min(9)] += 1;
        }
        // Even: every tenth of the range gets its share, within 20 %.
        assert!(tenths.iter().all(|&n| (80..=120).contains(&n)), "{tenths:?}");
    }
}

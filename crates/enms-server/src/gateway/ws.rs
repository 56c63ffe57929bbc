//! WebSocket streams: `/api/v1/ws/{dashboard,anomalies,training,events}` and
//! `/api/v1/ws?types=`.
//!
//! One task per connection waits on its hub queue, the socket, the ping
//! timer and the drain signal. Everything queued when it wakes goes out in
//! one socket write (frames are fed into tungstenite's buffer and flushed
//! once). The event bytes are the ones the bus encoded; only the two-to-ten
//! byte frame header is written per client.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use enms_core::event::{EventId, EventType};
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::messages::{self, ClientMessage};
use super::{Attached, ConnectRequest, Permit, attach, stream_types};
use crate::bus::Filter;
use crate::error::ApiError;
use crate::extract::Params;
use crate::hub::{SlowSignal, StreamKind, Subscription};
use crate::state::AppState;

/// Client frames and messages larger than this close the connection with 1009.
pub const MAX_CLIENT_MESSAGE: usize = 64 << 10;
/// Tungstenite's per-connection read buffer; client messages are small, and
/// 10,000 idle connections must stay within a few KiB each.
const READ_BUFFER: usize = 1024;
/// Frames accumulate up to this before a write is forced; we flush after
/// each batch anyway, so it only bounds one batch.
const WRITE_BUFFER: usize = 64 << 10;
/// Events written per socket write at most.
const BATCH: usize = 32;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub const CLOSE_SHUTDOWN: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_PING_TIMEOUT: u16 = 4000;
pub const CLOSE_SLOW: u16 = 4008;

/// `GET /api/v1/ws/{stream}`.
pub async fn named(
    Path(stream): Path<String>,
    state: State<AppState>,
    params: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let kind = match stream.as_str() {
        "dashboard" => StreamKind::Dashboard,
        "anomalies" => StreamKind::Anomalies,
        "training" => StreamKind::Training,
        "events" => StreamKind::Events,
        other => return Err(ApiError::not_found("stream", other)),
    };
    open(kind, state, params, upgrade).await
}

/// `GET /api/v1/ws?types=a,b`.
pub async fn custom(
    state: State<AppState>,
    params: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    open(StreamKind::Custom, state, params, upgrade).await
}

/// Validates and admits before upgrading, so a bad request or a full server
/// gets an HTTP error body rather than a dropped socket.
async fn open(
    kind: StreamKind,
    State(state): State<AppState>,
    params: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let request = ConnectRequest::from_params(&params, kind, None)?;
    let upgrade = upgrade
        .map_err(|e| ApiError::new(StatusCode::UPGRADE_REQUIRED, "websocket_upgrade_required", e.body_text()))?;
    let permit = state.gateway.admit()?;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + 2 * MAX_CLIENT_MESSAGE)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(socket, state, kind, request, permit).await {
                tracing::debug!(error = %e, "websocket ended");
            }
        }))
}

/// Why a connection loop stopped.
enum Stop {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    Close(u16, &'static str),
}

struct Connection {
    socket: WebSocket,
    sub: Subscription,
    /// Resolves when the hub cuts the client off as slow or the server
    /// drains. Built once: registering fresh waiters on every loop turn cost
    /// more than the rest of a delivery's user-space work.
    stop: Pin<Box<dyn Future<Output = Stop> + Send>>,
    filter: Filter,
    allowed: Option<HashSet<EventType>>,
    /// Newest event id written; anything not newer is a duplicate.
    last_sent: Option<EventId>,
    state: AppState,
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    kind: StreamKind,
    request: ConnectRequest,
    _permit: Permit,
) -> Result<(), ApiError> {
    let Attached { subscription, backlog, recovered } =
        attach(&state.gateway, state.bus.as_ref(), kind, &request).await?;
    let last_event_id = state.bus.status().last_event_id;
    let mut conn = Connection {
        socket,
        stop: stop_signal(state.gateway.draining().clone(), subscription.slow_signal()),
        sub: subscription,
        allowed: stream_types(kind).or_else(|| request.filter.types.clone()),
        filter: request.filter,
        last_sent: request.last_event_id,
        state,
    };
    let hello = messages::connection(&request.client_id, kind.as_str(), recovered, last_event_id);
    // Boxed so their state does not count in every idle connection's size.
    let stop = match Box::pin(conn.start(hello, backlog)).await {
        Ok(()) => conn.run().await,
        Err(stop) => stop,
    };
    Box::pin(conn.finish(stop)).await;
    Ok(())
}

impl Connection {
    async fn start(&mut self, hello: String, backlog: Vec<crate::bus::Delivery>) -> Result<(), Stop> {
        self.socket.feed(Message::Text(hello.into())).await.map_err(|_| Stop::Gone)?;
        for chunk in backlog.chunks(BATCH) {
            self.write_events(chunk).await?;
        }
        if backlog.is_empty() {
            self.guarded(|s| s.flush()).await?;
        }
        Ok(())
    }

    async fn run(&mut self) -> Stop {
        let interval = self.state.gateway.config.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        let mut last_heard = Instant::now();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let step = tokio::select! {
                biased;
                stop = &mut self.stop => Err(stop),
                n = self.sub.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        Err(Stop::Close(CLOSE_SHUTDOWN, "server shutting down"))
                    } else {
                        let r = self.write_events(&batch).await;
                        batch.clear();
                        r
                    }
                }
                incoming = self.socket.recv() => {
                    last_heard = Instant::now();
                    // Rare next to deliveries; boxed to keep idle connections small.
                    Box::pin(self.on_incoming(incoming)).await
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= 2 * interval {
                        Err(Stop::Close(CLOSE_PING_TIMEOUT, "no answer to pings"))
                    } else {
                        self.guarded(|s| s.send(Message::Ping(Default::default()))).await
                    }
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Writes the events not sent yet in one flush.
    async fn write_events(&mut self, events: &[crate::bus::Delivery]) -> Result<(), Stop> {
        let mut n = 0;
        for event in events {
            if self.last_sent.is_some_and(|last| event.id() <= last) {
                continue;
            }
            self.last_sent = Some(event.id());
            let text: Utf8Bytes = event.text.clone();
            self.guarded(|s| s.feed(Message::Text(text))).await?;
            n += 1;
        }
        if n > 0 {
            self.guarded(|s| s.flush()).await?;
            self.sub.sent(n);
        }
        Ok(())
    }

    async fn on_incoming(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Result<(), Stop> {
        match incoming {
            None | Some(Ok(Message::Close(_))) => Err(Stop::Gone),
            Some(Err(e)) if too_big(&e) => Err(Stop::Close(CLOSE_TOO_BIG, "message too big")),
            Some(Err(_)) => Err(Stop::Gone),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Binary(_))) => {
                self.reply(messages::error("binary_not_supported", "send JSON text messages")).await
            }
            Some(Ok(Message::Text(text))) => {
                let answer = self.on_message(&text);
                self.reply(answer).await
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

    async fn reply(&mut self, text: String) -> Result<(), Stop> {
        self.guarded(|s| s.send(Message::Text(text.into()))).await
    }

    /// Runs a socket write, giving up when the client is slow, stalled past
    /// the write timeout, or the server drains.
    async fn guarded<'a, F, Fut>(&'a mut self, write: F) -> Result<(), Stop>
    where
        F: FnOnce(&'a mut WebSocket) -> Fut,
        Fut: Future<Output = Result<(), axum::Error>> + 'a,
    {
        let timeout = self.state.gateway.config.write_timeout;
        let mut write = std::pin::pin!(write(&mut self.socket));
        // Most writes complete at once: only a blocked one arms the timer.
        if let Poll::Ready(r) = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            return r.map_err(|_| Stop::Gone);
        }
        let stop = &mut self.stop;
        // The blocked path is boxed: its timer would otherwise sit in every
        // idle connection's state.
        Box::pin(async move {
            tokio::select! {
                r = tokio::time::timeout(timeout, write) => match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Stop::Gone),
                    Err(_) => Err(Stop::Close(CLOSE_SLOW, "slow consumer")),
                },
                stop = stop => Err(stop),
            }
        })
        .await
    }

    /// Sends the close frame (after whatever is already buffered) and waits
    /// a bounded time for it to leave.
    async fn finish(mut self, stop: Stop) {
        let Stop::Close(code, reason) = stop else { return };
        if code == CLOSE_SLOW {
            self.sub.closed_slow();
        }
        // Nothing more will be queued for us; let the hub forget this client now.
        drop(self.sub);
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

fn stop_signal(drain: CancellationToken, slow: SlowSignal) -> Pin<Box<dyn Future<Output = Stop> + Send>> {
    Box::pin(async move {
        tokio::select! {
            biased;
            _ = drain.cancelled() => Stop::Close(CLOSE_SHUTDOWN, "server shutting down"),
            _ = slow.wait() => Stop::Close(CLOSE_SLOW, "slow consumer"),
        }
    })
}

/// Tungstenite reports an oversize frame or message as a capacity error.
fn too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

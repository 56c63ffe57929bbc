//! Server-sent events: `GET /api/v1/events/stream`, the same filters and ids
//! as the WebSocket streams, resuming from `Last-Event-ID` (or
//! `last_event_id=`). Each event is written as three body chunks — a small
//! `id:`/`event:` header, the shared JSON bytes, and the blank line — so the
//! encoded event is not copied per client.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use enms_core::event::EventId;
use tokio_util::sync::CancellationToken;

use super::{Attached, ConnectRequest, Permit, attach, messages};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::Params;
use crate::state::AppState;
use enms_realtime::bus::Delivery;
use enms_realtime::hub::{SlowSignal, StreamKind, Subscription};

const BATCH: usize = 64;
/// Browsers' EventSource reconnects after this many milliseconds.
const RETRY_MS: u32 = 2000;

/// The live event stream as server-sent events.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", operation_id = "event_stream",
    description = "Server-sent events: a `connection` event, then every matching event with its id \
        (`id:`), type (`event:`) and envelope as `data:`. Resumes after `Last-Event-ID` or `last_event_id`.",
    params(
        super::params::FilterParams,
        super::params::ConnectParams,
        ("Last-Event-ID" = Option<EventId>, Header, description = "Sent by browsers when they reconnect"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 429, description = "The token holds its limit of connections (`too_many_connections_for_token`)", body = ErrorResponse),
        (status = 503, description = "The server's connection limit is reached, or it is shutting down", body = ErrorResponse),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Option<Extension<Principal>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_header = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let request = ConnectRequest::from_params(&params, StreamKind::Sse, last_header)?;
    let permit = state.gateway.admit(caller.as_ref().map(|c| &c.0))?;
    let Attached { subscription, backlog, recovered } =
        attach(&state.gateway, state.bus.as_ref(), StreamKind::Sse, &request).await?;
    let hello = messages::connection(&request.client_id, "sse", recovered, state.bus.status().last_event_id);
    let mut out = VecDeque::new();
    out.push_back(Bytes::from(format!("retry: {RETRY_MS}\nevent: connection\ndata: {hello}\n\n")));
    let mut sse = SseStream {
        out,
        slow: subscription.slow_signal(),
        sub: subscription,
        last_sent: request.last_event_id,
        drain: state.gateway.draining().clone(),
        ended: Box::pin(permit.ended()),
        keepalive: {
            let every = state.gateway.config.ping_interval;
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
        },
        done: false,
        batch: Vec::with_capacity(BATCH),
        _permit: permit,
    };
    sse.push_events(&backlog);
    let body = Body::from_stream(futures_util::stream::unfold(sse, |mut s| async move {
        s.next_chunk().await.map(|chunk| (Ok::<_, Infallible>(chunk), s))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: do not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct SseStream {
    out: VecDeque<Bytes>,
    sub: Subscription,
    slow: SlowSignal,
    last_sent: Option<EventId>,
    drain: CancellationToken,
    /// The credential's end (see `credentials`).
    ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    keepalive: tokio::time::Interval,
    done: bool,
    /// Reused between wake-ups: no allocation per chunk.
    batch: Vec<Delivery>,
    _permit: Permit,
}

impl SseStream {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        while self.out.is_empty() && !self.done {
            tokio::select! {
                biased;
                _ = self.drain.cancelled() => self.end("server_shutting_down", "server shutting down"),
                () = &mut self.ended => {
                    self.end("credential_ended", "signed out, revoked or expired: sign in again, then resume");
                }
                _ = self.slow.wait() => {
                    self.sub.closed_slow();
                    self.end("slow_consumer", "slow consumer: reconnect with Last-Event-ID");
                }
                n = self.sub.recv_many(&mut self.batch, BATCH) => {
                    if n == 0 {
                        self.done = true;
                    }
                    let batch = std::mem::take(&mut self.batch);
                    self.push_events(&batch);
                    self.batch = batch;
                    self.batch.clear();
                }
                _ = self.keepalive.tick() => self.out.push_back(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
        self.out.pop_front()
    }

    fn push_events(&mut self, events: &[Delivery]) {
        let mut n = 0;
        for event in events {
            if self.last_sent.is_some_and(|last| event.id() <= last) {
                continue;
            }
            self.last_sent = Some(event.id());
            let head = format!("id: {}\nevent: {}\ndata: ", event.id(), event.event.event_type.as_str());
            self.out.push_back(Bytes::from(head));
            self.out.push_back(event.text.clone());
            self.out.push_back(Bytes::from_static(b"\n\n"));
            n += 1;
        }
        self.sub.sent(n);
    }

    /// Final `error` event, then the end of the body.
    fn end(&mut self, code: &str, message: &str) {
        let text = messages::error(code, message);
        self.out.push_back(Bytes::from(format!("event: error\ndata: {text}\n\n")));
        self.done = true;
    }
}

//! `GET /metrics` (Prometheus text format) and the middleware that counts
//! every routed HTTP request by route pattern, method and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Outermost route layer, so refusals (401, 403, 429) are counted too.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    state.telemetry.http_request(method.as_str(), &route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Copies the gateway's and bus's own counters in, then renders.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    description = "Prometheus text format: connections, messages, delivery latency, HTTP requests, ingested \
        rows, jobs and bus health; docs/api.md lists the series.",
    responses((status = 200, description = "Prometheus exposition text", content_type = "text/plain", body = String)))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    let t = &state.telemetry;
    let ws = state.gateway.hub.stats();
    for (stream, n) in &ws.by_stream {
        t.gauge("enms_ws_connections", &[("stream", (*stream).to_owned())]).set(*n as f64);
    }
    t.counter("enms_ws_messages_sent_total", &[]).absolute(ws.messages_sent);
    t.counter("enms_ws_messages_dropped_total", &[]).absolute(ws.messages_dropped);
    t.counter("enms_ws_slow_consumer_disconnects_total", &[]).absolute(ws.slow_consumer_disconnects);
    let bus = state.bus.status();
    let up = if bus.status == "ok" { 1.0 } else { 0.0 };
    t.gauge("enms_bus_up", &[("kind", bus.kind.to_owned())]).set(up);
    t.gauge("enms_bus_buffered_events", &[]).set(bus.buffered.unwrap_or(0) as f64);
    t.gauge("enms_bus_window_events", &[]).set(bus.window_events as f64);
    t.gauge("enms_uptime_seconds", &[]).set(state.started.elapsed().as_secs_f64());
    if let Some(mqtt) = state.mqtt.get() {
        let m = mqtt.status();
        t.gauge("enms_mqtt_up", &[]).set(if m.connected { 1.0 } else { 0.0 });
        for (topic, n) in &m.messages {
            t.counter("enms_mqtt_messages_total", &[("subscription", topic.clone())]).absolute(*n);
        }
        for (reason, n) in &m.rejected_by_reason {
            t.counter("enms_mqtt_rejected_total", &[("reason", reason.clone())]).absolute(*n);
        }
        t.counter("enms_mqtt_readings_total", &[]).absolute(m.readings_stored);
    }
    for m in state.modbus.get().map(|m| m.status()).unwrap_or_default() {
        let labels = [("machine", m.machine.clone())];
        t.gauge("enms_modbus_meter_up", &labels).set(if m.state == "ok" { 1.0 } else { 0.0 });
        t.counter("enms_modbus_polls_total", &labels).absolute(m.polls);
        t.counter("enms_modbus_poll_failures_total", &labels).absolute(m.failures);
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.render()).into_response()
}

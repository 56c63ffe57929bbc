//! `GET /api/v1/health`: is the server and its database answering, and how
//! the real-time side is doing.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;
use enms_realtime::bus::BusStatus;
use enms_realtime::hub::HubStats;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    #[schema(value_type = String, pattern = "^(ok|degraded)$")]
    status: &'static str,
    version: &'static str,
    uptime_s: f64,
    demo: bool,
    database: Database,
    websocket: HubStats,
    bus: BusStatus,
    auth: AuthStatus,
    /// The MQTT input, when `[mqtt]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<enms_mqtt::MqttStatus>,
    /// Each Modbus meter, when `[modbus]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    modbus: Option<Vec<enms_modbus::MeterStatus>>,
    /// The notifier, when `[notify]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<enms_notify::NotifyStatus>,
}

/// Lets the dashboard know whether to ask for a token.
#[derive(Serialize, utoipa::ToSchema)]
struct AuthStatus {
    required: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Database {
    #[schema(value_type = String, pattern = "^(ok|error)$")]
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// 200 when healthy; 503 with `status: degraded` when the database fails, so
/// load balancers take the instance out.
#[utoipa::path(get, path = "/api/v1/health", tag = "health", operation_id = "health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer; `status` is `degraded`", body = Health),
    ))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let t = Instant::now();
    let ping = state.store.ping().await;
    let latency_ms = t.elapsed().as_secs_f64() * 1e3;
    let (status, db_status, error) = match ping {
        Ok(()) => (StatusCode::OK, "ok", None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, "error", Some(e.to_string())),
    };
    let body = Health {
        status: if status == StatusCode::OK { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs_f64(),
        demo: state.config.demo.is_some(),
        database: Database { status: db_status, latency_ms, error },
        websocket: state.gateway.hub.stats(),
        bus: state.bus.status(),
        auth: AuthStatus { required: state.auth.config.required },
        mqtt: state.mqtt.get().map(|m| m.status()),
        modbus: state.modbus.get().map(|m| m.status()),
        notify: state.notify.get().map(|n| n.status()),
    };
    (status, Json(body))
}

/// The same answer at the root, where the seed monitor's README curls it.
#[utoipa::path(get, path = "/health", tag = "seed compatibility", operation_id = "seed_health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer; `status` is `degraded`", body = Health),
    ))]
pub async fn root(state: State<AppState>) -> (StatusCode, Json<Health>) {
    health(state).await
}

//! The HTTP surface: one module per resource, thin handlers over the store
//! and the ingest path.

mod anomalies;
mod demo;
mod events;
mod health;
mod kpis;
mod machines;
mod metrics;
mod models;
mod readings;
mod tokens;
mod training;
mod ui;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::auth;
use crate::error::ApiError;
use crate::gateway;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let base = state.config.base_path.trim_end_matches('/').to_owned();
    let cors = cors(&state.config.auth.cors_origins);
    let app = Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/machines", get(machines::list).post(machines::create))
        .route("/api/v1/machines/{id}", get(machines::get).patch(machines::update).delete(machines::delete))
        .route("/api/v1/machines/{id}/readings", get(readings::query))
        .route("/api/v1/machines/{id}/kpis", get(kpis::kpis))
        .route("/api/v1/baseline/train/{id}", post(training::train_baseline))
        .route("/api/v1/model-performance/retrain/trigger", post(training::retrain_trigger))
        .route("/api/v1/training/jobs", get(training::list_jobs))
        .route("/api/v1/training/jobs/{id}", get(training::get_job))
        .route("/api/v1/training/jobs/{id}/cancel", post(training::cancel_job))
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/models/{id}", get(models::get))
        .route("/api/v1/models/{id}/activate", post(models::activate))
        .route("/api/v1/anomaly/detect", post(anomalies::detect))
        .route("/api/v1/anomaly/detect/{id}", post(anomalies::detect_machine))
        .route("/api/v1/anomaly/recent", get(anomalies::recent))
        .route("/api/v1/anomalies/{id}", get(anomalies::get))
        .route("/api/v1/anomalies/{id}/acknowledge", post(anomalies::acknowledge))
        .route("/api/v1/readings", post(readings::ingest))
        .route("/api/v1/readings/import", post(readings::import))
        .route("/api/v1/demo/injected", get(demo::injected))
        .route("/api/v1/events", get(events::playback).post(events::publish))
        .route("/api/v1/events/stream", get(gateway::sse::stream))
        .route("/api/v1/ws", get(gateway::ws::custom))
        .route("/api/v1/ws/{stream}", get(gateway::ws::named))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/", get(ui::index))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/assets/{*path}", get(ui::asset))
        .route("/ui/{*page}", get(ui::index))
        .route("/metrics", get(metrics::scrape))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let app = if base.is_empty() {
        app
    } else {
        // `nest` does not route the bare prefix with a trailing slash to "/".
        Router::new().route(&format!("{base}/"), get(ui::index)).with_state(state).nest(&base, app).fallback(not_found)
    };
    app.layer(cors).layer(TraceLayer::new_for_http())
}

/// Browsers on the listed origins may call the API; with none listed only
/// the dashboard's own origin can. Tokens travel in headers, not cookies,
/// so credentials mode is never needed.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id")])
        .max_age(std::time::Duration::from_secs(3600))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", format!("no route for {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("method not allowed on {}", uri.path()))
}

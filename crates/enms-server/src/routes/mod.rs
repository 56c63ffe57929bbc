//! The HTTP surface: one module per resource, thin handlers over the store
//! and the ingest path.

mod anomalies;
mod demo;
mod events;
mod health;
mod kpis;
mod machines;
mod models;
mod readings;
mod training;
mod ui;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::gateway;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let base = state.config.base_path.trim_end_matches('/').to_owned();
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
        .route("/", get(ui::index))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/assets/{*path}", get(ui::asset))
        .route("/ui/{*page}", get(ui::index))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let app = if base.is_empty() {
        app
    } else {
        // `nest` does not route the bare prefix with a trailing slash to "/".
        Router::new().route(&format!("{base}/"), get(ui::index)).with_state(state).nest(&base, app).fallback(not_found)
    };
    app.layer(TraceLayer::new_for_http())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", format!("no route for {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("method not allowed on {}", uri.path()))
}

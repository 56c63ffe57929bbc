//! `GET /api/v1/demo/injected`: the anomalies the demo factory injected, so
//! detection recall can be measured against known truth.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use enms_core::sim::{AnomalyKind, DEMO_MACHINES};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::state::AppState;

/// An anomaly the demo factory injected into its readings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Injected {
    id: Uuid,
    machine_id: Uuid,
    #[schema(value_type = String)]
    machine_name: &'static str,
    kind: AnomalyKind,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    magnitude: f64,
    description: String,
}

#[utoipa::path(get, path = "/api/v1/demo/injected", tag = "operations", operation_id = "demo_injected",
    responses(
        (status = 200, description = "The injected anomalies, the ground truth for detection recall", body = Vec<Injected>),
        (status = 404, description = "The server is not running with `--demo` (`demo_disabled`)", body = ErrorResponse),
    ))]
pub async fn injected(State(state): State<AppState>) -> Result<Json<Vec<Injected>>, ApiError> {
    if state.config.demo.is_none() {
        return Err(ApiError::new(Code::DemoDisabled, "the server is not running with --demo"));
    }
    let list = state.store.list_injected().await?;
    Ok(Json(
        list.into_iter()
            .map(|a| Injected {
                machine_name: DEMO_MACHINES.iter().find(|m| m.id == a.machine_id).map_or("?", |m| m.name),
                id: a.id,
                machine_id: a.machine_id,
                kind: a.kind,
                start: a.start,
                end: a.end,
                magnitude: a.magnitude,
                description: a.description,
            })
            .collect(),
    ))
}

//! `GET /api/v1/demo/injected`: the anomalies the demo factory injected, so
//! detection recall can be measured against known truth.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use enms_core::sim::{AnomalyKind, DEMO_MACHINES};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
pub struct Injected {
    id: Uuid,
    machine_id: Uuid,
    machine_name: &'static str,
    kind: AnomalyKind,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    magnitude: f64,
    description: String,
}

pub async fn injected(State(state): State<AppState>) -> Result<Json<Vec<Injected>>, ApiError> {
    if state.config.demo.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "demo_disabled", "the server is not running with --demo"));
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

//! `GET /api/v1/machines/{id}/scores?start&end`: every reading's score under
//! the machine's active anomaly model, so a user or another tool can choose
//! its own threshold, and the machine page can draw it under the power chart;
//! and `GET /api/v1/machines/{id}/detector`, the live detector's state.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;
use enms_jobs::detection::{self, ScorePoint};
use enms_jobs::live::DetectorStatus;

/// Longest window one scores request covers.
const MAX_DAYS: i64 = 92;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Scores {
    machine_id: Uuid,
    /// The active anomaly model that scored.
    model_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Oldest first.
    scores: Vec<ScorePoint>,
}

#[utoipa::path(get, path = "/api/v1/machines/{id}/scores", tag = "analytics", operation_id = "machine_scores",
    params(
        ("id" = Uuid, Path, description = "Machine id"),
        ("start" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default `end` minus 24 h"),
        ("end" = Option<DateTime<Utc>>, Query, description = "RFC 3339; default now; at most 92 days after `start`"),
    ),
    responses(
        (status = 200, description = "Each reading's score in [0, 1] under the active anomaly model", body = Scores),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "The machine has no active anomaly model (`no_active_model`)", body = ErrorResponse),
        (status = 422, description = "start not before end, or a window over 92 days", body = ErrorResponse),
    ))]
pub async fn scores(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Scores>, ApiError> {
    let id = path_id(&id)?;
    state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    let (start, end) = params.start_end(MAX_DAYS, "a scores window")?;
    let (model_id, scores) = detection::scores(&state.analytics.live, id, start, end).await?;
    Ok(Json(Scores { machine_id: id, model_id, start, end, scores }))
}

/// `GET /api/v1/machines/{id}/detector`: what the machine's live detector
/// is doing on this instance — the resolution it judges at, its realised
/// flagged share against the budget, and its refresh.
#[utoipa::path(get, path = "/api/v1/machines/{id}/detector", tag = "analytics", operation_id = "machine_detector",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses(
        (status = 200, description = "The live detector: budget and realised share, resolution, refresh", body = DetectorStatus),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "No live detector: no active anomaly model, or streaming is off (`no_active_model`)", body = ErrorResponse),
    ))]
pub async fn detector(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<DetectorStatus>, ApiError> {
    let id = path_id(&id)?;
    state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    state.analytics.live.status(id).map(Json).ok_or_else(|| {
        enms_jobs::JobError::NoActiveModel {
            field: None,
            message: format!("machine {id} has no live detector: no active anomaly model here, or streaming is off"),
        }
        .into()
    })
}

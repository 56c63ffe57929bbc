//! Models: `GET /api/v1/models?machine_id=&model_type=` and
//! `POST /api/v1/models/{id}/activate` (which publishes `model_updated`).

use axum::Json;
use axum::extract::{Path, State};
use enms_store::ModelRecord;

use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Params, path_id};
use crate::state::AppState;
use enms_jobs::KEPT_MODEL_TYPES;

#[utoipa::path(get, path = "/api/v1/models", tag = "analytics", operation_id = "list_models",
    params(
        ("machine_id" = Option<Uuid>, Query),
        ("model_type" = Option<String>, Query, pattern = "^(baseline|anomaly|forecast)$", description = "baseline, anomaly or forecast (the forecasts forecast jobs kept)"),
    ),
    responses((status = 200, description = "Models, newest version first", body = Vec<ModelRecord>)))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<Vec<ModelRecord>>, ApiError> {
    let machine = params.uuid("machine_id")?;
    let kind = params.parse("model_type", |v| {
        if KEPT_MODEL_TYPES.contains(&v) {
            Ok(v.to_owned())
        } else {
            Err("model_type must be baseline, anomaly or forecast".into())
        }
    })?;
    Ok(Json(state.store.list_models(machine, kind.as_deref()).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "analytics", operation_id = "get_model",
    params(("id" = Uuid, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model", body = ModelRecord),
        (status = 404, description = "No such model (`not_found`)", body = ErrorResponse),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ModelRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.store.get_model(id).await?.ok_or_else(|| ApiError::not_found("model", id))?))
}

/// Deactivates the machine's previous model of that type in the same
/// transaction and publishes `model_updated`.
#[utoipa::path(post, path = "/api/v1/models/{id}/activate", tag = "analytics", operation_id = "activate_model",
    params(("id" = Uuid, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model, now active", body = ModelRecord),
        (status = 404, description = "No such model (`not_found`)", body = ErrorResponse),
    ))]
pub async fn activate(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ModelRecord>, ApiError> {
    let id = path_id(&id)?;
    let mut record = state.analytics.live.activate(id).await?;
    record.active = true;
    Ok(Json(record))
}

//! Training: `POST /api/v1/baseline/train/{machine_id}`, the seeds'
//! `POST /api/v1/model-performance/retrain/trigger`, and the job list,
//! detail and cancel endpoints.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use enms_store::{JobQuery, JobRecord, JobStatus};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::analytics::jobs::{MODEL_TYPES, TRIGGER_TYPES};
use crate::analytics::training::TrainRequest;
use crate::error::ApiError;
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;

async fn known_machine(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    match state.store.get_machine(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("machine", id)),
    }
}

async fn submit(
    state: &AppState,
    machine_id: Uuid,
    model_type: &str,
    trigger_type: &str,
    reason: Option<String>,
    body: TrainRequest,
) -> Result<JobRecord, ApiError> {
    known_machine(state, machine_id).await?;
    state.analytics.jobs.submit(body.into_job(machine_id, model_type, trigger_type, reason)?).await
}

pub async fn train_baseline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<TrainRequest>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let machine = path_id(&id)?;
    let job = submit(&state, machine, "baseline", "manual", None, body).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

fn one_of(params: &Params, key: &str, allowed: &[&str], default: Option<&str>) -> Result<String, ApiError> {
    match params.get(key).or(default) {
        Some(v) if allowed.contains(&v) => Ok(v.to_owned()),
        Some(v) => Err(ApiError::invalid(
            "invalid_parameter",
            key,
            format!("{key} must be one of {}; got {v:?}", allowed.join(", ")),
        )),
        None => Err(ApiError::invalid("missing_parameter", key, format!("{key} is required ({})", allowed.join(", ")))),
    }
}

/// The seeds' trigger: everything in the query string.
pub async fn retrain_trigger(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let model_type = one_of(&params, "model_type", &MODEL_TYPES, None)?;
    let trigger_type = one_of(&params, "trigger_type", &TRIGGER_TYPES, Some("manual"))?;
    let machine = params
        .get("machine_id")
        .ok_or_else(|| ApiError::invalid("missing_parameter", "machine_id", "machine_id is required"))?;
    let machine = Uuid::parse_str(machine)
        .map_err(|_| ApiError::invalid("invalid_id", "machine_id", format!("{machine:?} is not a UUID")))?;
    let reason = params.get("reason").map(|r| r.chars().take(500).collect());
    let body = TrainRequest {
        use_baseline: Some(model_type == "anomaly" && has_baseline(&state, machine).await?),
        ..Default::default()
    };
    let job = submit(&state, machine, &model_type, &trigger_type, reason, body).await?;
    Ok(Json(
        json!({"triggered": true, "trigger_type": trigger_type, "training_job_id": job.id, "model_type": model_type, "status": job.status}),
    ))
}

async fn has_baseline(state: &AppState, machine: Uuid) -> Result<bool, ApiError> {
    Ok(state.store.active_model(machine, "baseline").await?.is_some())
}

pub async fn list_jobs(State(state): State<AppState>, params: Params) -> Result<Json<Vec<JobRecord>>, ApiError> {
    let machine_id = params.uuid("machine_id")?;
    let status = params.parse("status", |v| {
        JobStatus::parse(v).ok_or_else(|| "status must be queued, running, completed, failed or cancelled".to_owned())
    })?;
    let limit = params.bounded("limit", 50u32, 1000)?;
    Ok(Json(state.store.list_jobs(&JobQuery { machine_id, status, limit }).await?))
}

pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.store.get_job(id).await?.ok_or_else(|| ApiError::not_found("training job", id))?))
}

pub async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.analytics.jobs.cancel(id).await?))
}

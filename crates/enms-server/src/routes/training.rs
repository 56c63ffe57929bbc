//! Training: `POST /api/v1/baseline/train/{machine_id}`, the seeds'
//! `POST /api/v1/model-performance/retrain/trigger`, and the job list,
//! detail and cancel endpoints.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use enms_store::{JobQuery, JobRecord, JobStatus};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;
use enms_jobs::jobs::{MODEL_TYPES, TRIGGER_TYPES};
use enms_jobs::training::{AnomalyTrainRequest, TrainRequest, check_contamination, precheck_anomaly};

/// Validates, checks that an anomaly model's window can be trained on, and
/// queues; nothing is stored when any check fails.
async fn submit(
    state: &AppState,
    machine_id: Uuid,
    model_type: &str,
    trigger_type: &str,
    reason: Option<String>,
    body: TrainRequest,
) -> Result<JobRecord, ApiError> {
    let machine =
        state.store.get_machine(machine_id).await?.ok_or_else(|| ApiError::not_found("machine", machine_id))?;
    let (plan, job) = body.into_job(machine_id, model_type, trigger_type, reason, machine.last_reading_at)?;
    if model_type == "anomaly" {
        precheck_anomaly(state.store.as_ref(), machine_id, &plan).await?;
    } else {
        // Said now, not as a failed job: the window's raw readings are gone.
        enms_jobs::require_raw(state.store.as_ref(), plan.start).await?;
    }
    Ok(state.analytics.jobs.submit(job).await?)
}

/// Queues a baseline fit; progress arrives as `training_*` events.
#[utoipa::path(post, path = "/api/v1/baseline/train/{id}", tag = "analytics", operation_id = "train_baseline",
    params(("id" = Uuid, Path, description = "Machine id")),
    request_body(content = Option<TrainRequest>, description = "Optional; every field has a default"),
    responses(
        (status = 202, description = "Queued", body = JobRecord),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "A job for this machine and model type is already queued or running \
            (`job_in_progress`)", body = ErrorResponse),
    ))]
pub async fn train_baseline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<TrainRequest>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let machine = path_id(&id)?;
    let job = submit(&state, machine, "baseline", "manual", None, body).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Queues an anomaly model's training over a chosen period; progress
/// arrives as `training_*` events.
#[utoipa::path(post, path = "/api/v1/anomaly/train/{id}", tag = "analytics", operation_id = "train_anomaly_model",
    params(("id" = Uuid, Path, description = "Machine id")),
    request_body(content = Option<AnomalyTrainRequest>, description = "Optional; every field has a default"),
    responses(
        (status = 202, description = "Queued", body = JobRecord),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "A job for this machine and model type is already queued or running \
            (`job_in_progress`)", body = ErrorResponse),
        (status = 422, description = "start after end, contamination outside (0, 0.5], unknown, missing or \
            constant features (`invalid_feature`), or too few readings in the window (`insufficient_data`)",
            body = ErrorResponse),
    ))]
pub async fn train_anomaly(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<AnomalyTrainRequest>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let machine = path_id(&id)?;
    let job = submit(&state, machine, "anomaly", "manual", None, body.into()).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

fn one_of(params: &Params, key: &str, allowed: &[&str], default: Option<&str>) -> Result<String, ApiError> {
    match params.get(key).or(default) {
        Some(v) if allowed.contains(&v) => Ok(v.to_owned()),
        Some(v) => Err(ApiError::invalid(
            Code::InvalidParameter,
            key,
            format!("{key} must be one of {}; got {v:?}", allowed.join(", ")),
        )),
        None => {
            Err(ApiError::invalid(Code::MissingParameter, key, format!("{key} is required ({})", allowed.join(", "))))
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Triggered {
    triggered: bool,
    trigger_type: String,
    training_job_id: Uuid,
    model_type: String,
    status: JobStatus,
}

/// The seeds' trigger: everything in the query string. An anomaly model uses
/// the active baseline's residuals when there is one.
#[utoipa::path(post, path = "/api/v1/model-performance/retrain/trigger", tag = "analytics", operation_id = "trigger_retrain",
    params(
        ("model_type" = String, Query, pattern = "^(baseline|anomaly)$", description = "baseline or anomaly"),
        ("machine_id" = Uuid, Query),
        ("trigger_type" = Option<String>, Query, pattern = "^(manual|scheduled|drift)$", description = "manual (default), scheduled or drift"),
        ("reason" = Option<String>, Query, description = "Kept with the job (first 500 characters)"),
        ("start" = Option<DateTime<Utc>>, Query, description = "Training period start, RFC 3339"),
        ("end" = Option<DateTime<Utc>>, Query, description = "Training period end, RFC 3339; default just after the newest reading"),
        ("contamination" = Option<f64>, Query, minimum = 0.0001, maximum = 0.5, description = "Anomaly models: the alarm budget"),
    ),
    responses(
        (status = 200, description = "Queued", body = Triggered),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "A job for this machine and model type is already queued or running \
            (`job_in_progress`)", body = ErrorResponse),
    ))]
pub async fn retrain_trigger(State(state): State<AppState>, params: Params) -> Result<Json<Triggered>, ApiError> {
    let model_type = one_of(&params, "model_type", &MODEL_TYPES, None)?;
    let trigger_type = one_of(&params, "trigger_type", &TRIGGER_TYPES, Some("manual"))?;
    let machine = params
        .get("machine_id")
        .ok_or_else(|| ApiError::invalid(Code::MissingParameter, "machine_id", "machine_id is required"))?;
    let machine = Uuid::parse_str(machine)
        .map_err(|_| ApiError::invalid(Code::InvalidId, "machine_id", format!("{machine:?} is not a UUID")))?;
    let reason = params.get("reason").map(|r| r.chars().take(500).collect());
    let start = params.time("start")?;
    let end = params.time("end")?;
    let contamination = params
        .parse("contamination", |v| v.parse::<f64>().map_err(|_| format!("{v:?} is not a number")))?
        .map(check_contamination)
        .transpose()?;
    let body = TrainRequest {
        start,
        end,
        contamination,
        use_baseline: Some(model_type == "anomaly" && has_baseline(&state, machine).await?),
        ..Default::default()
    };
    let job = submit(&state, machine, &model_type, &trigger_type, reason, body).await?;
    Ok(Json(Triggered { triggered: true, trigger_type, training_job_id: job.id, model_type, status: job.status }))
}

async fn has_baseline(state: &AppState, machine: Uuid) -> Result<bool, ApiError> {
    Ok(state.store.active_model(machine, "baseline").await?.is_some())
}

#[utoipa::path(get, path = "/api/v1/training/jobs", tag = "analytics", operation_id = "list_jobs",
    params(
        ("machine_id" = Option<Uuid>, Query),
        ("status" = Option<JobStatus>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 50"),
    ),
    responses((status = 200, description = "Jobs, newest first", body = Vec<JobRecord>)))]
pub async fn list_jobs(State(state): State<AppState>, params: Params) -> Result<Json<Vec<JobRecord>>, ApiError> {
    let machine_id = params.uuid("machine_id")?;
    let status = params.parse("status", |v| {
        JobStatus::parse(v).ok_or_else(|| "status must be queued, running, completed, failed or cancelled".to_owned())
    })?;
    let limit = params.bounded("limit", 50u32, 1000)?;
    Ok(Json(state.store.list_jobs(&JobQuery { machine_id, status, limit }).await?))
}

#[utoipa::path(get, path = "/api/v1/training/jobs/{id}", tag = "analytics", operation_id = "get_job",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job (`not_found`)", body = ErrorResponse),
    ))]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.store.get_job(id).await?.ok_or_else(|| ApiError::not_found("training job", id))?))
}

/// A queued job ends `cancelled` at once, a running one at its next step.
#[utoipa::path(post, path = "/api/v1/training/jobs/{id}/cancel", tag = "analytics", operation_id = "cancel_job",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job (`not_found`)", body = ErrorResponse),
        (status = 409, description = "The job has already finished (`job_finished`)", body = ErrorResponse),
    ))]
pub async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.analytics.jobs.cancel(id).await?))
}

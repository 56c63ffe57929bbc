//! Anomalies: batch detection (`POST /api/v1/anomaly/detect`, and
//! `/detect/{machine_id}`), the recent list, one anomaly, and acknowledging.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{Duration, Utc};
use enms_core::validation::text;
use enms_store::{AnomalyQuery, AnomalyRecord, JobRecord};

use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;
use enms_jobs::detection::{self, DetectPlan, DetectRequest, Detection, MAX_LISTED};
use enms_jobs::jobs::JobRequest;
use enms_jobs::training::{check_contamination, parse_features};

/// Longest window one detection request answers at once; longer ones run
/// as a detection job.
const MAX_WINDOW_DAYS: i64 = 92;
const SEVERITIES: [&str; 3] = ["normal", "warning", "critical"];

/// Judges every reading of the window with a model fitted on it and the 14
/// days before (contamination is its alarm budget); each newly saved
/// anomaly publishes `anomaly_detected`. A window over 92 days runs as a
/// detection job: 202 with the job, `training_*` events with
/// `model_type: "detection"` as it goes, and the result in the job's
/// `metrics` (`GET /api/v1/training/jobs/{id}`).
#[utoipa::path(post, path = "/api/v1/anomaly/detect", tag = "analytics", operation_id = "detect_anomalies",
    request_body = DetectRequest,
    responses(
        (status = 200, description = "What was found", body = Detection),
        (status = 202, description = "A window over 92 days: the detection job, queued", body = JobRecord),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "A detection job for this machine is already queued or running \
            (`job_in_progress`), or `use_baseline` without an active baseline (`no_active_model`)", body = ErrorResponse),
        (status = 422, description = "`machine_id` missing, the window empty, contamination outside (0, 0.5], \
            unknown, missing or constant features, or too few readings", body = ErrorResponse),
    ))]
pub async fn detect(
    State(state): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<DetectRequest>,
) -> Result<Response, ApiError> {
    let machine =
        body.machine_id.ok_or_else(|| ApiError::invalid(Code::MissingField, "machine_id", "machine_id is required"))?;
    run(state, machine, body).await
}

/// As `POST /api/v1/anomaly/detect`, for the machine in the path; the body is optional.
#[utoipa::path(post, path = "/api/v1/anomaly/detect/{id}", tag = "analytics", operation_id = "detect_machine_anomalies",
    params(("id" = Uuid, Path, description = "Machine id")),
    request_body(content = Option<DetectRequest>, description = "Optional; `machine_id`, if given, must match the path"),
    responses(
        (status = 200, description = "What was found", body = Detection),
        (status = 202, description = "A window over 92 days: the detection job, queued", body = JobRecord),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn detect_machine(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DetectRequest>,
) -> Result<Response, ApiError> {
    let machine = path_id(&id)?;
    if body.machine_id.is_some_and(|m| m != machine) {
        return Err(ApiError::invalid(
            Code::MachineMismatch,
            "machine_id",
            "machine_id in the body differs from the path",
        ));
    }
    run(state, machine, body).await
}

async fn run(state: AppState, machine: Uuid, body: DetectRequest) -> Result<Response, ApiError> {
    let record = state.store.get_machine(machine).await?.ok_or_else(|| ApiError::not_found("machine", machine))?;
    let end = body.end.unwrap_or_else(Utc::now);
    let start = body.start.unwrap_or(end - Duration::hours(24));
    if start >= end {
        return Err(ApiError::invalid(Code::InvalidRange, "start", format!("start {start} must be before end {end}")));
    }
    let contamination = check_contamination(body.contamination.unwrap_or(0.1))?;
    let signals = body.features.as_deref().map(parse_features).transpose()?;
    let plan = DetectPlan { start, end, contamination, use_baseline: body.use_baseline.unwrap_or(false), signals };
    if end - start > Duration::days(MAX_WINDOW_DAYS) {
        if plan.use_baseline && state.store.active_model(machine, "baseline").await?.is_none() {
            return Err(ApiError::invalid(
                Code::NoActiveModel,
                "use_baseline",
                format!("machine {machine} has no active baseline; train one or set use_baseline to false"),
            ));
        }
        let params = serde_json::to_value(&plan).map_err(ApiError::internal)?;
        let job = state
            .analytics
            .jobs
            .submit(JobRequest {
                machine_id: machine,
                model_type: "detection".into(),
                trigger_type: "manual".into(),
                reason: Some(format!("detection from {start} to {end}")),
                params,
            })
            .await?;
        return Ok((StatusCode::ACCEPTED, Json(job)).into_response());
    }
    let out = detection::detect(&state.analytics.live, machine, &plan).await?;
    Ok(Json(Detection::new(machine, record.name, &plan, out, MAX_LISTED)).into_response())
}

/// The seed monitor's anomaly list (`/api/anomalies`): the same filters
/// and answer as `GET /api/v1/anomaly/recent`.
#[utoipa::path(get, path = "/api/anomalies", tag = "seed compatibility", operation_id = "seed_anomalies",
    description = "The seed monitor's anomaly list: the same filters and answer as `GET /api/v1/anomaly/recent`.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 50"),
        ("machine_id" = Option<Uuid>, Query),
        ("severity" = Option<String>, Query, pattern = "^(normal|warning|critical)$", description = "normal, warning or critical"),
        ("since" = Option<DateTime<Utc>>, Query, description = "Reading time, RFC 3339, before `until`"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Reading time, RFC 3339"),
        ("acknowledged" = Option<bool>, Query),
    ),
    responses((status = 200, description = "Anomalies, newest reading first", body = Vec<AnomalyRecord>)))]
pub async fn seed_list(state: State<AppState>, params: Params) -> Result<Json<Vec<AnomalyRecord>>, ApiError> {
    recent(state, params).await
}

#[utoipa::path(get, path = "/api/v1/anomaly/recent", tag = "analytics", operation_id = "recent_anomalies",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 50"),
        ("machine_id" = Option<Uuid>, Query),
        ("severity" = Option<String>, Query, pattern = "^(normal|warning|critical)$", description = "normal, warning or critical"),
        ("since" = Option<DateTime<Utc>>, Query, description = "Reading time, RFC 3339, before `until`"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Reading time, RFC 3339"),
        ("acknowledged" = Option<bool>, Query),
    ),
    responses((status = 200, description = "Anomalies, newest reading first", body = Vec<AnomalyRecord>)))]
pub async fn recent(State(state): State<AppState>, params: Params) -> Result<Json<Vec<AnomalyRecord>>, ApiError> {
    let machine_id = params.uuid("machine_id")?;
    let severity = params.parse("severity", |v| {
        if SEVERITIES.contains(&v) {
            Ok(v.to_owned())
        } else {
            Err("severity must be normal, warning or critical".into())
        }
    })?;
    let (since, until) = params.since_until()?;
    let acknowledged = params.parse("acknowledged", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("acknowledged must be true or false".into()),
    })?;
    let limit = params.bounded("limit", 50u32, 1000)?;
    let query = AnomalyQuery { machine_id, severity, since, until, acknowledged, limit };
    Ok(Json(state.store.list_anomalies(&query).await?))
}

#[utoipa::path(get, path = "/api/v1/anomalies/{id}", tag = "analytics", operation_id = "get_anomaly",
    params(("id" = Uuid, Path, description = "Anomaly id")),
    responses(
        (status = 200, description = "The anomaly", body = AnomalyRecord),
        (status = 404, description = "No such anomaly (`not_found`)", body = ErrorResponse),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AnomalyRecord>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// Who acknowledged; default the token's name, else `operator`.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub by: Option<String>,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

impl Acknowledge {
    /// Who acknowledged (without a `by`, a token's name, else `operator`)
    /// and the note, checked.
    pub fn checked(self, caller: Option<Extension<Principal>>) -> Result<(String, Option<String>), ApiError> {
        let named = caller.filter(|c| c.id.is_some()).map(|c| c.0.name);
        let by = text("by", &self.by.or(named).unwrap_or_else(|| "operator".into()), 100, false)?;
        if self.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
            return Err(ApiError::invalid(Code::TooLong, "note", "note is at most 2000 characters"));
        }
        Ok((by, self.note))
    }
}

/// The first acknowledgement is kept; later ones change nothing.
#[utoipa::path(post, path = "/api/v1/anomalies/{id}/acknowledge", tag = "analytics", operation_id = "acknowledge_anomaly",
    params(("id" = Uuid, Path, description = "Anomaly id")),
    request_body(content = Option<Acknowledge>, description = "Optional"),
    responses(
        (status = 200, description = "The anomaly", body = AnomalyRecord),
        (status = 404, description = "No such anomaly (`not_found`)", body = ErrorResponse),
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    OptionalJsonBody(body): OptionalJsonBody<Acknowledge>,
) -> Result<Json<AnomalyRecord>, ApiError> {
    let id = path_id(&id)?;
    let (by, note) = body.checked(caller)?;
    if !state.store.acknowledge_anomaly(id, &by, note.as_deref(), Utc::now()).await? {
        return Err(ApiError::not_found("anomaly", id));
    }
    Ok(Json(state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?))
}

//! `GET /api/v1/machines/{id}/forecast` and the seed monitor's
//! `GET /api/predictions`: a machine's hourly load for the next 24 h to 7
//! days with 80 % and 95 % intervals and its own backtested accuracy
//! (`enms_jobs::forecast`, docs/forecasts.md); and
//! `GET /api/v1/machines/{id}/thresholds`: when a rising signal reaches its
//! limit (`enms_jobs::thresholds`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use enms_jobs::forecast::{DEFAULT_HORIZON_H, MachineForecast, machine_forecast};
use enms_jobs::thresholds::{MachineThresholds, machine_thresholds};
use enms_store::JobRecord;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;

/// Body of `POST /api/v1/forecast/train/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastJobRequest {
    /// Default 168 (a week); whole hours (`48.0` is read as 48).
    #[schema(value_type = Option<u32>, minimum = 24, maximum = 168)]
    pub horizon_hours: Option<f64>,
}

/// Queues a forecast job: it keeps the forecast as the machine's active
/// `forecast` model version and announces it as `forecast_updated`.
#[utoipa::path(post, path = "/api/v1/forecast/train/{id}", tag = "analytics", operation_id = "forecast_job",
    params(("id" = Uuid, Path, description = "Machine id")),
    request_body(content = Option<ForecastJobRequest>, description = "Optional"),
    responses(
        (status = 202, description = "Queued; progress as `training_*` events with model type `forecast`, then `forecast_updated`", body = JobRecord),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 409, description = "A forecast job for this machine is already queued or running (`job_in_progress`)", body = ErrorResponse),
        (status = 422, description = "A horizon outside 24–168 h (`out_of_range`)", body = ErrorResponse),
    ))]
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<ForecastJobRequest>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let id = path_id(&id)?;
    state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    let horizon = match body.horizon_hours {
        None => DEFAULT_HORIZON_H,
        Some(h) if h.fract() == 0.0 && (0.0..=1e6).contains(&h) => h as usize,
        Some(h) => {
            return Err(ApiError::invalid(
                Code::InvalidValue,
                "horizon_hours",
                format!("horizon_hours must be whole hours, got {h}"),
            ));
        }
    };
    let job = enms_jobs::forecast::submit(&state.analytics, id, horizon, "manual", "requested").await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/api/v1/machines/{id}/forecast", tag = "analytics", operation_id = "machine_forecast",
    description = "The machine's hourly mean power for the next `horizon_hours`, from its last complete hour, \
        with 80 % and 95 % intervals; the method (seasonal naive, weekly profile, or profile × recent level) is \
        chosen by a rolling-origin backtest over the last 14 days, whose MAPE, CV(RMSE), interval coverage and \
        skill against seasonal naive are reported per horizon day. Needs 21 days of history.",
    params(
        ("id" = Uuid, Path, description = "Machine id"),
        ("horizon_hours" = Option<u32>, Query, minimum = 24, maximum = 168, description = "Default 24"),
    ),
    responses(
        (status = 200, description = "The forecast with its backtest", body = MachineForecast),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 422, description = "A horizon outside 24–168 h (`out_of_range`), or too little history \
            (`insufficient_data`; the message says how much it needs)", body = ErrorResponse),
    ))]
pub async fn forecast(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<MachineForecast>, ApiError> {
    let id = path_id(&id)?;
    answer(&state, id, &params).await
}

#[utoipa::path(get, path = "/api/v1/machines/{id}/thresholds", tag = "analytics", operation_id = "machine_thresholds",
    description = "When a rising signal reaches its limit, at the least-squares trend of the last 14 days: \
        the daily peak against the machine's rated power, and on a host each disk's usage (`disk_percent`, \
        `disk_percent.<mount>`) against 90 %. A watch without enough history (7 daily peaks; disk probes \
        spanning 3 days) is left out.",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses(
        (status = 200, description = "The watches with enough history", body = MachineThresholds),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
    ))]
pub async fn thresholds(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MachineThresholds>, ApiError> {
    let id = path_id(&id)?;
    let machine = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    Ok(Json(machine_thresholds(state.store.as_ref(), &machine, Utc::now()).await?))
}

/// The seed's predictions: the same forecast, the machine named in the query.
#[utoipa::path(get, path = "/api/predictions", tag = "seed compatibility", operation_id = "seed_predictions",
    description = "The seed monitor's predictions: the forecast of `GET /api/v1/machines/{id}/forecast` for \
        `machine_id`.",
    params(
        ("machine_id" = Uuid, Query, description = "Machine id"),
        ("horizon_hours" = Option<u32>, Query, minimum = 24, maximum = 168, description = "Default 24"),
    ),
    responses(
        (status = 200, description = "The forecast with its backtest", body = MachineForecast),
        (status = 404, description = "No such machine (`not_found`)", body = ErrorResponse),
        (status = 422, description = "No `machine_id` (`missing_parameter`), a bad horizon (`out_of_range`), \
            or too little history (`insufficient_data`)", body = ErrorResponse),
    ))]
pub async fn predictions(State(state): State<AppState>, params: Params) -> Result<Json<MachineForecast>, ApiError> {
    let id = params
        .uuid("machine_id")?
        .ok_or_else(|| ApiError::invalid(Code::MissingParameter, "machine_id", "machine_id is required"))?;
    answer(&state, id, &params).await
}

async fn answer(state: &AppState, id: Uuid, params: &Params) -> Result<Json<MachineForecast>, ApiError> {
    let horizon = match params.get("horizon_hours") {
        None => 24,
        Some(v) => {
            let h: usize = v.parse().map_err(|_| {
                ApiError::invalid(
                    Code::InvalidParameter,
                    "horizon_hours",
                    format!("horizon_hours {v:?} is not a whole number of hours"),
                )
            })?;
            enms_analytics::forecast::check_horizon(h).map_err(enms_jobs::JobError::from)?
        }
    };
    let machine = state.store.get_machine(id).await?.ok_or_else(|| ApiError::not_found("machine", id))?;
    Ok(Json(machine_forecast(state.store.as_ref(), &machine, horizon, Utc::now()).await?))
}

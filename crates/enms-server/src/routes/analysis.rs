//! Explanations (docs/explanations.md): `GET /api/v1/anomalies/{id}/analysis`
//! and the seed monitor's `POST /api/ai/analyze` (an anomaly, or the
//! strongest stored anomaly of an incident), answered by
//! `enms_jobs::explain` from stored facts and the active model.

use axum::Json;
use axum::extract::{Path, State};
use enms_jobs::explain::{Analysis, analyze};
use enms_store::{AnomalyQuery, AnomalyRecord};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/anomalies/{id}/analysis", tag = "analytics", operation_id = "analyze_anomaly",
    description = "Expected against actual, the excess energy and its cost under the tariff, each judged signal's \
        share of the deviation, the pattern, the machine's most similar past episodes and how they ended, the \
        checks the rule table suggests for the machine type and pattern, and a summary of those facts.",
    params(("id" = Uuid, Path, description = "Anomaly id")),
    responses(
        (status = 200, description = "The analysis", body = Analysis),
        (status = 404, description = "No such anomaly (`not_found`)", body = ErrorResponse),
    ))]
pub async fn anomaly(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Analysis>, ApiError> {
    let id = path_id(&id)?;
    let a = state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?;
    explained(&state, &a).await
}

/// Body of `POST /api/ai/analyze`: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    pub anomaly_id: Option<Uuid>,
    /// Analyses the incident's stored anomaly with the largest deviation.
    pub incident_id: Option<Uuid>,
}

#[utoipa::path(post, path = "/api/ai/analyze", tag = "seed compatibility", operation_id = "seed_analyze",
    description = "The seed monitor's analysis: the answer of `GET /api/v1/anomalies/{id}/analysis` for \
        `anomaly_id`, or for the incident's stored anomaly with the largest deviation.",
    request_body = AnalyzeRequest,
    responses(
        (status = 200, description = "The analysis", body = Analysis),
        (status = 404, description = "No such anomaly or incident, or an incident without a stored anomaly (`not_found`)", body = ErrorResponse),
        (status = 422, description = "Neither or both ids (`missing_field`, `invalid_value`)", body = ErrorResponse),
    ))]
pub async fn seed_analyze(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<AnalyzeRequest>,
) -> Result<Json<Analysis>, ApiError> {
    let a = match (body.anomaly_id, body.incident_id) {
        (Some(id), None) => state.store.get_anomaly(id).await?.ok_or_else(|| ApiError::not_found("anomaly", id))?,
        (None, Some(id)) => strongest_of(&state, id).await?,
        (None, None) => {
            return Err(ApiError::invalid(Code::MissingField, "anomaly_id", "give anomaly_id or incident_id"));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                Code::InvalidValue,
                "incident_id",
                "give anomaly_id or incident_id, not both",
            ));
        }
    };
    explained(&state, &a).await
}

async fn strongest_of(state: &AppState, id: Uuid) -> Result<AnomalyRecord, ApiError> {
    let i = state.store.get_incident(id).await?.ok_or_else(|| ApiError::not_found("incident", id))?;
    let query = AnomalyQuery {
        machine_id: Some(i.machine_id),
        since: Some(i.opened_at),
        until: i.resolved_at.map(|t| t + chrono::Duration::milliseconds(1)),
        limit: 1000,
        ..Default::default()
    };
    state
        .store
        .list_anomalies(&query)
        .await?
        .into_iter()
        .filter(|a| a.anomaly_type == i.anomaly_type)
        .max_by(|a, b| a.deviation.abs().total_cmp(&b.deviation.abs()))
        .ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!("incident {id} holds no stored anomaly (its events were published, not detected)"),
            )
        })
}

async fn explained(state: &AppState, a: &AnomalyRecord) -> Result<Json<Analysis>, ApiError> {
    Ok(Json(analyze(&state.analytics.live, &state.analytics.config.tariff, a).await?))
}

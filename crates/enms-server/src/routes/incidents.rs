//! Incidents over HTTP (docs/incidents.md): list with filters, one with its
//! timeline, and the actions — acknowledge, comment, assign, resolve — as
//! the caller (its token's name; `anonymous` on an open server). The
//! seed monitor's `GET /api/incidents` is the list.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use enms_incidents::IncidentView;
use enms_store::{IncidentQuery, IncidentRecord};
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{JsonBody, OptionalJsonBody, Params, path_id};
use crate::state::AppState;

const STATES: [&str; 3] = ["open", "acknowledged", "resolved"];

fn who(caller: &Option<Extension<Principal>>) -> String {
    caller.as_ref().map_or_else(|| "anonymous".to_owned(), |c| c.0.name.clone())
}

fn query(params: &Params) -> Result<IncidentQuery, ApiError> {
    let mut states = Vec::new();
    // An empty value (`state=`) filters nothing.
    for v in params.all("state").flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()) {
        if !STATES.contains(&v) {
            return Err(ApiError::invalid(
                Code::InvalidParameter,
                "state",
                format!("state must be open, acknowledged or resolved, got {v:?}"),
            ));
        }
        states.push(v.to_owned());
    }
    let severity = params.parse("severity", |v| {
        if v == "warning" || v == "critical" {
            Ok(v.to_owned())
        } else {
            Err("severity must be warning or critical".into())
        }
    })?;
    Ok(IncidentQuery {
        machine_id: params.uuid("machine_id")?,
        states,
        severity,
        assignee: params.get("assignee").map(str::to_owned),
        since: params.time("since")?,
        limit: params.bounded("limit", 50u32, 500)?,
    })
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", operation_id = "list_incidents",
    params(
        ("machine_id" = Option<uuid::Uuid>, Query),
        ("state" = Option<Vec<enms_incidents::State>>, Query, style = Form, explode = true, description = "open, acknowledged or resolved; repeat for several (or comma-separate)"),
        ("severity" = Option<String>, Query, pattern = "^(warning|critical)$"),
        ("assignee" = Option<String>, Query),
        ("since" = Option<DateTime<Utc>>, Query, description = "Opened at or after, RFC 3339"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 50"),
    ),
    responses(
        (status = 200, description = "Incidents, newest opened first", body = Vec<IncidentRecord>),
        (status = 422, description = "A bad filter (`invalid_parameter`)", body = ErrorResponse),
    ))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<Vec<IncidentRecord>>, ApiError> {
    Ok(Json(state.incidents.list(&query(&params)?).await?))
}

/// The seed monitor's incident list.
#[utoipa::path(get, path = "/api/incidents", tag = "seed compatibility", operation_id = "seed_incidents",
    description = "The seed monitor's incidents: the list of `GET /api/v1/incidents`, same filters.",
    params(
        ("machine_id" = Option<uuid::Uuid>, Query),
        ("state" = Option<Vec<enms_incidents::State>>, Query, style = Form, explode = true, description = "open, acknowledged or resolved; repeat for several"),
        ("severity" = Option<String>, Query, pattern = "^(warning|critical)$"),
        ("assignee" = Option<String>, Query),
        ("since" = Option<DateTime<Utc>>, Query, description = "Opened at or after, RFC 3339"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 50"),
    ),
    responses(
        (status = 200, description = "Incidents, newest opened first", body = Vec<IncidentRecord>),
        (status = 422, description = "A bad filter (`invalid_parameter`)", body = ErrorResponse),
    ))]
pub async fn seed_list(state: State<AppState>, params: Params) -> Result<Json<Vec<IncidentRecord>>, ApiError> {
    list(state, params).await
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", operation_id = "get_incident",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The incident with its timeline", body = IncidentView),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorResponse),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<IncidentView>, ApiError> {
    Ok(Json(state.incidents.get(path_id(&id)?).await?))
}

/// Body of acknowledge and resolve.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    /// Not blank.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub text: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// Who takes it; `null` unassigns.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub assignee: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/acknowledge", tag = "incidents", operation_id = "acknowledge_incident",
    params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<Note>, description = "Optional"),
    responses(
        (status = 200, description = "Acknowledged; `incident_updated` published", body = IncidentView),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorResponse),
        (status = 409, description = "Already acknowledged, or resolved (`invalid_transition`)", body = ErrorResponse),
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    OptionalJsonBody(body): OptionalJsonBody<Note>,
) -> Result<Json<IncidentView>, ApiError> {
    Ok(Json(state.incidents.acknowledge(path_id(&id)?, &who(&caller), body.note).await?))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/comments", tag = "incidents", operation_id = "comment_incident",
    params(("id" = uuid::Uuid, Path)),
    request_body = Comment,
    responses(
        (status = 200, description = "The comment is on the timeline; `incident_updated` published", body = IncidentView),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorResponse),
        (status = 422, description = "An empty or too long text", body = ErrorResponse),
    ))]
pub async fn comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    JsonBody(body): JsonBody<Comment>,
) -> Result<Json<IncidentView>, ApiError> {
    Ok(Json(state.incidents.comment(path_id(&id)?, &who(&caller), body.text).await?))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/assign", tag = "incidents", operation_id = "assign_incident",
    params(("id" = uuid::Uuid, Path)),
    request_body = Assign,
    responses(
        (status = 200, description = "Assigned; `incident_updated` published", body = IncidentView),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorResponse),
        (status = 409, description = "Resolved (`invalid_transition`)", body = ErrorResponse),
        (status = 422, description = "A blank or too long name", body = ErrorResponse),
    ))]
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    JsonBody(body): JsonBody<Assign>,
) -> Result<Json<IncidentView>, ApiError> {
    Ok(Json(state.incidents.assign(path_id(&id)?, &who(&caller), body.assignee).await?))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents", operation_id = "resolve_incident",
    params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<Note>, description = "Optional"),
    responses(
        (status = 200, description = "Resolved; `incident_resolved` published", body = IncidentView),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorResponse),
        (status = 409, description = "Already resolved (`invalid_transition`)", body = ErrorResponse),
    ))]
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    OptionalJsonBody(body): OptionalJsonBody<Note>,
) -> Result<Json<IncidentView>, ApiError> {
    Ok(Json(state.incidents.resolve(path_id(&id)?, &who(&caller), body.note).await?))
}

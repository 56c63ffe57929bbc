//! `GET /api/v1/anomaly/episodes`: the stored anomaly episodes (batch and
//! streaming detection write them), each with the flagged readings it
//! holds; `POST /api/v1/anomaly/episodes/{id}/acknowledge` acknowledges an
//! episode by acknowledging every reading of it.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use enms_store::{AnomalyQuery, AnomalyRecord, EpisodeQuery, EpisodeRecord};
use serde::Serialize;

use super::anomalies::Acknowledge;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{OptionalJsonBody, Params, path_id};
use crate::state::AppState;

/// Most readings one acknowledgement covers (a day of 5-second data).
const MAX_ACKNOWLEDGED: u32 = 20_000;

/// Most readings listed per episode (all are stored).
const READINGS_LISTED: u32 = 100;
const SEVERITIES: [&str; 2] = ["warning", "critical"];

#[derive(Serialize, utoipa::ToSchema)]
pub struct StoredEpisode {
    #[serde(flatten)]
    episode: EpisodeRecord,
    /// Its flagged readings (the machine's anomalies of its type from start
    /// to end), oldest first, at most 100.
    readings: Vec<AnomalyRecord>,
    /// Every listed reading acknowledged.
    acknowledged: bool,
}

#[utoipa::path(get, path = "/api/v1/anomaly/episodes", tag = "analytics", operation_id = "list_episodes",
    params(
        ("machine_id" = Option<uuid::Uuid>, Query),
        ("since" = Option<DateTime<Utc>>, Query, description = "Episodes ending at or after this time, RFC 3339"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Episodes starting before this time, RFC 3339; after `since`"),
        ("open" = Option<bool>, Query, description = "Only open (true) or ended (false) episodes"),
        ("severity" = Option<String>, Query, pattern = "^(warning|critical)$", description = "The highest severity reached"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 50"),
    ),
    responses((status = 200, description = "Episodes, latest start first, each with its readings", body = Vec<StoredEpisode>)))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<Vec<StoredEpisode>>, ApiError> {
    let machine_id = params.uuid("machine_id")?;
    let (since, until) = params.since_until()?;
    let open = params.parse("open", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("open must be true or false".into()),
    })?;
    let severity = params.parse("severity", |v| {
        if SEVERITIES.contains(&v) { Ok(v.to_owned()) } else { Err("severity must be warning or critical".into()) }
    })?;
    let limit = params.bounded("limit", 50u32, 500)?;
    let query = EpisodeQuery { id: None, machine_id, since, until, open, severity, limit };
    let mut out = Vec::new();
    for episode in state.store.list_episodes(&query).await? {
        out.push(with_readings(&state, episode).await?);
    }
    Ok(Json(out))
}

/// The episode's flagged readings: the machine's anomalies of its type from
/// its start to its end, oldest first, at most `limit`.
async fn readings_of(state: &AppState, e: &EpisodeRecord, limit: u32) -> Result<Vec<AnomalyRecord>, ApiError> {
    let q = AnomalyQuery {
        machine_id: Some(e.machine_id),
        since: Some(e.start),
        until: Some(e.end + chrono::Duration::milliseconds(1)),
        limit,
        ..Default::default()
    };
    let mut readings: Vec<AnomalyRecord> =
        state.store.list_anomalies(&q).await?.into_iter().filter(|a| a.anomaly_type == e.anomaly_type).collect();
    readings.reverse();
    Ok(readings)
}

async fn with_readings(state: &AppState, episode: EpisodeRecord) -> Result<StoredEpisode, ApiError> {
    let readings = readings_of(state, &episode, READINGS_LISTED).await?;
    let acknowledged = !readings.is_empty() && readings.iter().all(|a| a.acknowledged_at.is_some());
    Ok(StoredEpisode { episode, readings, acknowledged })
}

/// Acknowledges every flagged reading of the episode (those already
/// acknowledged keep their first acknowledgement).
#[utoipa::path(post, path = "/api/v1/anomaly/episodes/{id}/acknowledge", tag = "analytics",
    operation_id = "acknowledge_episode",
    params(("id" = uuid::Uuid, Path, description = "Episode id")),
    request_body(content = Option<Acknowledge>, description = "Optional"),
    responses(
        (status = 200, description = "The episode with its readings, acknowledged", body = StoredEpisode),
        (status = 404, description = "No such episode (`not_found`)", body = ErrorResponse),
        (status = 422, description = "A bad id, `by` or `note`", body = ErrorResponse),
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    OptionalJsonBody(body): OptionalJsonBody<Acknowledge>,
) -> Result<Json<StoredEpisode>, ApiError> {
    let id = path_id(&id)?;
    let (by, note) = body.checked(caller)?;
    let query = EpisodeQuery { id: Some(id), limit: 1, ..Default::default() };
    let episode = state.store.list_episodes(&query).await?.pop().ok_or_else(|| ApiError::not_found("episode", id))?;
    let now = Utc::now();
    for a in readings_of(&state, &episode, MAX_ACKNOWLEDGED).await? {
        if a.acknowledged_at.is_none() {
            state.store.acknowledge_anomaly(a.id, &by, note.as_deref(), now).await?;
        }
    }
    Ok(Json(with_readings(&state, episode).await?))
}

//! `GET /api/v1/anomaly/episodes`: the stored anomaly episodes (batch and
//! streaming detection write them), each with the flagged readings it holds.

use axum::Json;
use axum::extract::State;
use enms_store::{AnomalyQuery, AnomalyRecord, EpisodeQuery, EpisodeRecord};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::Params;
use crate::state::AppState;

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
    let query = EpisodeQuery { machine_id, since, until, open, severity, limit };
    let mut out = Vec::new();
    for episode in state.store.list_episodes(&query).await? {
        let q = AnomalyQuery {
            machine_id: Some(episode.machine_id),
            since: Some(episode.start),
            until: Some(episode.end + chrono::Duration::milliseconds(1)),
            limit: READINGS_LISTED,
            ..Default::default()
        };
        let mut readings: Vec<AnomalyRecord> = state
            .store
            .list_anomalies(&q)
            .await?
            .into_iter()
            .filter(|a| a.anomaly_type == episode.anomaly_type)
            .collect();
        readings.reverse();
        out.push(StoredEpisode { episode, readings });
    }
    Ok(Json(out))
}

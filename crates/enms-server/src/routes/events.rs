//! `/api/v1/events`: publishing by external systems, and playback by id —
//! the dashboard's last fallback when neither WebSocket nor SSE gets through.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use enms_core::event::{EventId, EventType, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bus::{Accepted, Delivery, Filter};
use crate::error::ApiError;
use crate::extract::{JsonBody, Params};
use crate::gateway;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
}

/// `POST /api/v1/events` → 202 `{"id"}` (or `{"id": null, "status":
/// "buffered"}` while the shared bus is unreachable); the payload is checked
/// against its type's schema.
pub async fn publish(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PublishBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let event_type: EventType =
        body.event_type.parse().map_err(|m: String| ApiError::invalid("unknown_event_type", "type", m))?;
    match state.bus.publish(event_type, body.data).await? {
        Accepted::Published(event) => Ok((StatusCode::ACCEPTED, Json(json!({"id": event.id()})))),
        // The shared bus is down: the id is assigned when it is back.
        Accepted::Buffered => Ok((StatusCode::ACCEPTED, Json(json!({"id": null, "status": "buffered"})))),
    }
}

#[derive(Serialize)]
pub struct Playback {
    events: Vec<Delivery>,
    /// False when events older than the replay window were asked for and only
    /// durable ones could be recovered: reload state rather than trust the gap.
    complete: bool,
    /// Pass as `since` to continue.
    last_id: Option<EventId>,
}

/// `GET /api/v1/events?since=&types=&machine_id=&min_severity=&limit=`.
pub async fn playback(State(state): State<AppState>, params: Params) -> Result<Json<Playback>, ApiError> {
    let since = params.parse("since", |v| v.parse::<EventId>())?;
    let filter = filter(&params)?;
    let limit = params.bounded("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let replay = state.bus.since(since, &filter, limit).await?;
    let last_id = replay.events.last().map(|e| e.id()).or(since);
    Ok(Json(Playback { events: replay.events, complete: replay.complete, last_id }))
}

/// `types=a,b` (names or seed topics), `machine_id=` (repeatable or a comma
/// list), `min_severity=`.
pub fn filter(params: &Params) -> Result<Filter, ApiError> {
    Ok(Filter {
        types: gateway::parse_types(params)?,
        machine_ids: gateway::machine_ids(params)?,
        min_severity: params.parse("min_severity", |v| v.parse::<Severity>())?,
    })
}

//! `/api/v1/events`: publishing by external systems, and playback by id —
//! the dashboard's last fallback when neither WebSocket nor SSE gets through.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use enms_core::event::{Event, EventId, EventType, Severity};
use enms_core::payload;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{JsonBody, Params};
use crate::gateway;
use crate::state::AppState;
use enms_realtime::bus::{Accepted, Delivery, Filter};

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

/// An event to publish; `data` is checked against the fields of its type
/// (docs/protocol.md lists them) and completed with `event_type` and any
/// generated id or timestamp.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
}

/// One alternative per event type, each with the fields of its `data` from
/// the table that validates them (`enms_core::payload`).
impl utoipa::PartialSchema for PublishBody {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new()
            .description(Some("An event to publish: `type` (a name or the seeds' topic) and its `data`."));
        for t in EventType::ALL {
            one_of = one_of.item(
                ObjectBuilder::new()
                    .title(Some(t.as_str()))
                    .property(
                        "type",
                        ObjectBuilder::new().schema_type(Type::String).enum_values(Some([t.as_str(), t.topic()])),
                    )
                    .required("type")
                    .property("data", payload::schema(t))
                    .required("data")
                    .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false))),
            );
        }
        one_of.into()
    }
}

impl utoipa::ToSchema for PublishBody {}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishAccepted {
    /// The event's id; null while the shared bus is unreachable and the
    /// event waits in this instance's buffer.
    id: Option<EventId>,
    /// `buffered` when `id` is null.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

/// Publishes an event to every subscriber; `data` is checked against the
/// fields of its type. While the shared bus is unreachable the answer is
/// `{"id": null, "status": "buffered"}`.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", operation_id = "publish_event",
    request_body = PublishBody,
    responses(
        (status = 202, description = "Published to every subscriber (and the durable log for all types but \
            `metric_updated`)", body = PublishAccepted),
        (status = 422, description = "Unknown type, or `data` does not match it; `field` names the field", body = ErrorResponse),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PublishBody>,
) -> Result<(StatusCode, Json<PublishAccepted>), ApiError> {
    let event_type: EventType =
        body.event_type.parse().map_err(|m: String| ApiError::invalid(Code::UnknownEventType, "type", m))?;
    let accepted = match state.bus.publish(event_type, body.data).await? {
        Accepted::Published(event) => PublishAccepted { id: Some(event.id()), status: None },
        // The shared bus is down: the id is assigned when it is back.
        Accepted::Buffered => PublishAccepted { id: None, status: Some("buffered") },
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Playback {
    #[schema(value_type = Vec<Event>)]
    events: Vec<Delivery>,
    /// False when events older than the replay window were asked for and only
    /// durable ones could be recovered: reload state rather than trust the gap.
    complete: bool,
    /// Pass as `since` to continue.
    last_id: Option<EventId>,
}

/// Playback: the events after an id, for catching up or polling.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", operation_id = "playback_events",
    params(
        ("since" = Option<EventId>, Query, description = "Events after this id; default the oldest kept"),
        gateway::params::FilterParams,
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10_000, description = "Default 1000"),
    ),
    responses((status = 200, description = "Events in id order", body = Playback)))]
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

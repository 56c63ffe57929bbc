//! `/api/v1/notifications` (docs/notifications.md): the delivery log with
//! every attempt, the channels (never their secrets), the alerts being
//! followed, and the test button's route. Answers `notifications_off` on a
//! server without `[notify]`.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use enms_notify::{ChannelInfo, Notifier, NotifyError};
use enms_store::{AlertRecord, DeliveryAttempt, DeliveryStatus, NotificationQuery, NotificationRecord};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{JsonBody, Params, path_id};
use crate::state::AppState;

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> Self {
        let message = e.to_string();
        match e {
            NotifyError::UnknownChannel { .. } => Self::invalid(Code::UnknownChannel, "channel", message),
            NotifyError::Store(s) => s.into(),
            NotifyError::Config(_) => Self::internal(message),
        }
    }
}

fn notifier(state: &AppState) -> Result<&Notifier, ApiError> {
    state.notify.get().ok_or_else(|| {
        ApiError::new(
            Code::NotificationsOff,
            "notifications are not configured on this server (no [notify] in its config file)",
        )
    })
}

/// A notification with its attempts, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    #[serde(flatten)]
    pub notification: NotificationRecord,
    pub attempt_log: Vec<DeliveryAttempt>,
}

async fn with_attempts(state: &AppState, list: Vec<NotificationRecord>) -> Result<Vec<Delivery>, ApiError> {
    let ids: Vec<_> = list.iter().map(|n| n.id).collect();
    // One query for all; grouped by notification (the store orders each
    // group by attempt).
    let mut by_id: std::collections::HashMap<_, Vec<DeliveryAttempt>> = std::collections::HashMap::new();
    for a in state.store.notification_attempts(&ids).await? {
        by_id.entry(a.notification_id).or_default().push(a);
    }
    Ok(list
        .into_iter()
        .map(|n| {
            let attempt_log = by_id.remove(&n.id).unwrap_or_default();
            Delivery { notification: n, attempt_log }
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", operation_id = "list_notifications",
    params(
        ("status" = Option<String>, Query, pattern = "^(pending|delivered|failed)$", description = "pending, delivered or failed"),
        ("channel" = Option<String>, Query),
        ("alert_id" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 100"),
    ),
    responses(
        (status = 200, description = "The delivery log, newest first, each with its attempts", body = Vec<Delivery>),
        (status = 404, description = "No [notify] on this server (`notifications_off`)", body = ErrorResponse),
    ))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<Vec<Delivery>>, ApiError> {
    notifier(&state)?;
    let status = params.parse("status", |v| {
        DeliveryStatus::parse(v).ok_or_else(|| "status must be pending, delivered or failed".to_owned())
    })?;
    let query = NotificationQuery {
        status,
        channel: params.get("channel").map(str::to_owned),
        alert_id: params.get("alert_id").map(str::to_owned),
        limit: params.bounded("limit", 100u32, 500)?,
    };
    let list = state.store.list_notifications(&query).await?;
    Ok(Json(with_attempts(&state, list).await?))
}

#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications", operation_id = "get_notification",
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 200, description = "The notification and its attempts", body = Delivery),
        (status = 404, description = "No such notification (`not_found`), or no [notify] (`notifications_off`)", body = ErrorResponse),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Delivery>, ApiError> {
    notifier(&state)?;
    let id = path_id(&id)?;
    let n = state.store.get_notification(id).await?.ok_or_else(|| ApiError::not_found("notification", id))?;
    let mut one = with_attempts(&state, vec![n]).await?;
    Ok(Json(one.remove(0)))
}

#[utoipa::path(get, path = "/api/v1/notifications/channels", tag = "notifications", operation_id = "list_channels",
    responses(
        (status = 200, description = "The configured channels; a URL shows only its scheme and host", body = Vec<ChannelInfo>),
        (status = 404, description = "No [notify] on this server (`notifications_off`)", body = ErrorResponse),
    ))]
pub async fn channels(State(state): State<AppState>) -> Result<Json<Vec<ChannelInfo>>, ApiError> {
    Ok(Json(notifier(&state)?.channels()))
}

#[utoipa::path(get, path = "/api/v1/notifications/alerts", tag = "notifications", operation_id = "list_notification_alerts",
    params(
        ("open" = Option<bool>, Query, description = "Only alerts not yet resolved; default false"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 100"),
    ),
    responses(
        (status = 200, description = "Alerts the rules opened, newest first", body = Vec<AlertRecord>),
        (status = 404, description = "No [notify] on this server (`notifications_off`)", body = ErrorResponse),
    ))]
pub async fn alerts(State(state): State<AppState>, params: Params) -> Result<Json<Vec<AlertRecord>>, ApiError> {
    notifier(&state)?;
    let open = params
        .parse("open", |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("open must be true or false".into()),
        })?
        .unwrap_or(false);
    let limit = params.bounded("limit", 100u32, 500)?;
    Ok(Json(state.store.list_alerts(open, limit).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A channel's name, as `GET /api/v1/notifications/channels` lists it.
    #[schema(min_length = 1, max_length = 64)]
    pub channel: String,
}

/// Stores a test notification for the channel and sends it at once; the
/// answer is the stored notification, and `GET /api/v1/notifications/{id}`
/// shows how its delivery went.
#[utoipa::path(post, path = "/api/v1/notifications/test", tag = "notifications", operation_id = "test_notification",
    request_body = TestRequest,
    responses(
        (status = 202, description = "Stored; being sent", body = NotificationRecord),
        (status = 404, description = "No [notify] on this server (`notifications_off`)", body = ErrorResponse),
        (status = 422, description = "No channel of that name (`unknown_channel`)", body = ErrorResponse),
    ))]
pub async fn test(
    State(state): State<AppState>,
    caller: Option<Extension<Principal>>,
    JsonBody(body): JsonBody<TestRequest>,
) -> Result<(StatusCode, Json<NotificationRecord>), ApiError> {
    let notifier = notifier(&state)?;
    let by = caller.map_or_else(|| "operator".to_owned(), |c| c.0.name);
    let note = notifier.test(&body.channel, &by).await?;
    Ok((StatusCode::ACCEPTED, Json(note)))
}

//! `/api/v1/tokens` (admin): create a token (its secret is shown once, in
//! this answer), list tokens, revoke one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use enms_core::access::{Role, TokenRecord};
use serde::Deserialize;

use crate::auth::{CreatedToken, issue};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Unique; 1-64 ASCII letters, digits, spaces, `-`, `_` or `.`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9 ._-]*[A-Za-z0-9._-][A-Za-z0-9 ._-]*$")]
    pub name: String,
    pub role: Role,
}

/// The answer holds the secret `token`, this once; only its hash is stored.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = issue(state.store.as_ref(), &new.name, new.role).await?;
    tracing::info!(token = %created.record.id, name = %created.record.name, role = %created.record.role, "token created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses((status = 200, description = "Every token, revoked ones too; never a secret", body = Vec<TokenRecord>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    Ok(Json(state.store.list_tokens().await?))
}

/// Refused at once on this instance; other instances within their cache time (5 s).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No active token with this id (`not_found`)", body = ErrorResponse),
    ))]
pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    if !state.store.revoke_token(id, Utc::now()).await? {
        return Err(ApiError::not_found("active token", id));
    }
    state.auth.forget_cached();
    tracing::info!(token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

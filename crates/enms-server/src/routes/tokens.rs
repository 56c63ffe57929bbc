//! `/api/v1/tokens` (admin): create a token (its secret is shown once, in
//! this answer), list tokens, revoke one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use enms_core::access::{Role, TokenRecord};
use serde::Deserialize;

use crate::auth::{CreatedToken, issue};
use crate::error::ApiError;
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = issue(state.store.as_ref(), &new.name, new.role).await?;
    tracing::info!(token = %created.record.id, name = %created.record.name, role = %created.record.role, "token created");
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    Ok(Json(state.store.list_tokens().await?))
}

pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    if !state.store.revoke_token(id, Utc::now()).await? {
        return Err(ApiError::not_found("active token", id));
    }
    state.auth.forget_cached();
    tracing::info!(token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

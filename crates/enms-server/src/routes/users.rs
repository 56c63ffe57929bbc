//! `/api/v1/users` (admin): the people who sign in — create one, list
//! them, change a role or password, disable one. A new password, a lower
//! role or disabling ends the user's sessions (docs/sign-in.md).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use enms_accounts::UserChange;
use enms_core::access::{Role, UserRecord};
use serde::Deserialize;

use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique (case-insensitively); 1-64 ASCII letters, digits, `-`, `_`, `.` or `@`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]+$")]
    pub name: String,
    pub role: Role,
    /// 8-256 characters, not the user name; only its argon2id hash is kept.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserRecord),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorResponse),
        (status = 422, description = "A bad name or a weak password (`invalid_field`)", body = ErrorResponse),
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserRecord>), ApiError> {
    let user = state.auth.accounts.create_user(&new.name, new.role, &new.password).await?;
    tracing::info!(user = %user.name, role = %user.role, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    responses((status = 200, description = "Every user, disabled ones too; never a password hash", body = Vec<UserRecord>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<UserRecord>>, ApiError> {
    Ok(Json(state.auth.accounts.list_users().await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    pub role: Option<Role>,
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
    /// `true` disables the user (and ends their sessions); `false` enables them again.
    pub disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "change_user",
    params(("id" = Uuid, Path, description = "User id")),
    request_body = ChangeUser,
    responses(
        (status = 200, description = "Changed", body = UserRecord),
        (status = 404, description = "No user with this id (`not_found`)", body = ErrorResponse),
        (status = 422, description = "A weak password or nothing to change", body = ErrorResponse),
    ))]
pub async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<ChangeUser>,
) -> Result<Json<UserRecord>, ApiError> {
    let id = path_id(&id)?;
    if change.role.is_none() && change.password.is_none() && change.disabled.is_none() {
        return Err(ApiError::new(Code::MissingField, "name at least one of role, password or disabled"));
    }
    let change = UserChange { role: change.role, password: change.password, disabled: change.disabled };
    let user = state.auth.accounts.change_user(id, change).await?;
    state.auth.forget_cached();
    tracing::info!(user = %user.name, role = %user.role, disabled = user.disabled_at.is_some(), "user changed");
    Ok(Json(user))
}

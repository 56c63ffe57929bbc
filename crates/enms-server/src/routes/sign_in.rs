//! `/api/auth` (docs/sign-in.md): a person signs in with a name and
//! password and gets a session token that expires, asks who they are, and
//! signs out. The seed monitor's `/api/auth` router, with the answer shaped
//! like FastAPI's OAuth2 password flow (`access_token`, `token_type`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use enms_core::access::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{ClientAddr, Principal};
use crate::error::{ApiError, Code, ErrorResponse};
use crate::extract::JsonBody;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

/// A signed-in user, as the session names them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUser {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    /// The session token (`enms_s_` and 64 hex digits): send it as
    /// `Authorization: Bearer`, like an API token. Shown this once.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user: SessionUser,
}

/// Wrong name and wrong password answer alike (`invalid_credentials`);
/// after `max_failed_logins` in a row the user is locked out for `lockout`
/// (`locked_out`, even with the right password), and each client address
/// has `login_rate` attempts (`rate_limited`).
#[utoipa::path(post, path = "/api/auth/login", tag = "sign-in", operation_id = "login",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = LoginAnswer),
        (status = 401, description = "Wrong name or password (`invalid_credentials`)", body = ErrorResponse),
        (status = 429, description = "Locked out (`locked_out`) or too many attempts from the address (`rate_limited`); Retry-After says how long", body = ErrorResponse),
    ))]
pub async fn login(
    State(state): State<AppState>,
    from: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<LoginAnswer>, ApiError> {
    // The longest a name or a password can be, so nothing longer is hashed.
    let limits = [
        ("username", &login.username, enms_core::access::MAX_USER_NAME),
        ("password", &login.password, enms_accounts::password::MAX_CHARS),
    ];
    for (field, value, most) in limits {
        let chars = value.chars().count();
        if chars == 0 || chars > most {
            let message = format!("{field} is 1 to {most} characters, got {chars}");
            return Err(ApiError::invalid(Code::InvalidField, field, message));
        }
    }
    state.auth.admit_login(state.auth.client_addr(from.map(|e| e.0), &headers))?;
    let signed = state.auth.accounts.login(&login.username, &login.password).await.inspect_err(|e| {
        tracing::info!(user = %login.username, reason = %e, "sign-in refused");
    })?;
    tracing::info!(user = %signed.user.name, session = %signed.session.id, "signed in");
    Ok(Json(LoginAnswer {
        access_token: signed.secret,
        token_type: "bearer",
        expires_at: signed.session.expires_at,
        user: SessionUser { id: signed.user.id, name: signed.user.name, role: signed.user.role },
    }))
}

/// Ends the session the request carries, at once on this instance and
/// within the token cache time (5 s) on the others.
#[utoipa::path(post, path = "/api/auth/logout", tag = "sign-in", operation_id = "logout",
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "The request carries an API token or nothing, not a session (`not_a_session`)", body = ErrorResponse),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Option<Extension<Principal>>,
) -> Result<StatusCode, ApiError> {
    let session = caller.as_ref().and_then(|c| c.session).ok_or_else(|| {
        ApiError::new(
            Code::NotASession,
            "sign-out ends a session; this request carries none (revoke an API token with DELETE /api/v1/tokens/{id})",
        )
    })?;
    state.auth.accounts.logout(session.id).await?;
    state.auth.forget_cached();
    // Its streams on this instance end now; on others with their sweep.
    if let Some(hash) = caller.as_ref().and_then(|c| c.credential.as_deref()) {
        state.gateway.credentials.end(hash);
    }
    tracing::info!(session = %session.id, "signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// How the caller is known.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    /// A person signed in.
    Session,
    /// An API token.
    Token,
    /// Nobody: a server run without `--auth required`.
    Anonymous,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub kind: CallerKind,
    pub name: String,
    pub role: Role,
    /// The user's or the token's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// When the session ends (sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/auth/me", tag = "sign-in", operation_id = "who_am_i",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub async fn me(caller: Option<Extension<Principal>>) -> Json<WhoAmI> {
    let caller = caller.map_or_else(Principal::anonymous, |c| c.0);
    let kind = match (caller.session, caller.id) {
        (Some(_), _) => CallerKind::Session,
        (None, Some(_)) => CallerKind::Token,
        (None, None) => CallerKind::Anonymous,
    };
    Json(WhoAmI {
        kind,
        name: caller.name,
        role: caller.role,
        id: caller.id,
        expires_at: caller.session.map(|s| s.expires_at),
    })
}

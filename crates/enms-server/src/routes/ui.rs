//! The dashboard's routes: the page for every client-side route under `/ui/`
//! (never cached, it names the current assets) and the hashed assets (cached
//! for good; a new version has a new URL).

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::state::AppState;

pub async fn index(State(state): State<AppState>) -> Response {
    ([(CACHE_CONTROL, "no-cache")], Html(state.ui.index().to_owned())).into_response()
}

pub async fn asset(State(state): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let asset = state
        .ui
        .asset(&path)
        .ok_or_else(|| ApiError::new(Code::AssetNotFound, format!("no dashboard asset {path}")))?;
    Ok((
        [(CONTENT_TYPE, asset.content_type), (CACHE_CONTROL, "public, max-age=31536000, immutable")],
        asset.bytes.clone(),
    )
        .into_response())
}

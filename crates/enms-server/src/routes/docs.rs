//! The API description: `GET /api/v1/openapi.json` and Swagger UI under
//! `/docs/`, from assets compiled into the binary, so both work offline.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bytes::Bytes;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::Config;

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// Relative, so the page finds the document under any base path.
const SPEC_FROM_DOCS: &str = "../api/v1/openapi.json";

/// The document is rendered once, when the router is built.
pub fn routes(spec: &OpenApi) -> Router<AppState> {
    let json = match spec.to_pretty_json() {
        Ok(text) => Bytes::from(text),
        // Serialising plain data structures does not fail; if it ever did,
        // say so at the document's address rather than refuse to start.
        Err(e) => Bytes::from(format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{e}\"}}}}")),
    };
    // No validator badge: it would fetch from validator.swagger.io.
    let config = Config::new([SPEC_FROM_DOCS]).validator_url("none");
    let config = Arc::new(config.try_it_out_enabled(true).persist_authorization(true));
    let index = config.clone();
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], json) }),
        )
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route("/docs/", get(move || async move { swagger_file("", index) }))
        .route("/docs/{*rest}", get(move |Path(rest): Path<String>| async move { swagger_file(&rest, config) }))
}

fn swagger_file(path: &str, config: Arc<Config<'static>>) -> Result<Response, ApiError> {
    let file = utoipa_swagger_ui::serve(path, config)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::new(Code::AssetNotFound, format!("no API docs file {path}")))?;
    let mut response = ([(CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response();
    if file.gzpipped {
        response.headers_mut().insert(CONTENT_ENCODING, axum::http::HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

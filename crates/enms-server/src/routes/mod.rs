//! The HTTP surface: one module per resource, thin handlers over the store
//! and the ingest path, each described for OpenAPI where it is declared.

mod analysis;
mod anomalies;
mod demo;
mod docs;
mod episodes;
mod events;
mod export;
mod forecasts;
pub use export::ExportFormat;
mod health;
mod hosts;
mod incidents;
mod kpis;
mod machines;
mod metrics;
mod models;
mod notifications;
mod readings;
mod scores;
mod sign_in;
mod tokens;
mod training;
mod ui;
mod users;

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth;
use crate::error::{ApiError, Code};
use crate::gateway;
use crate::openapi;
use crate::state::AppState;

/// Every route of the server. The REST routes come with their OpenAPI
/// description (`routes!` takes method and path from each handler's
/// `#[utoipa::path]`, so the document cannot drift from the routing); the
/// dashboard's pages and the API docs are routed plainly.
pub fn router(state: AppState) -> Router {
    let base = state.config.base_path.trim_end_matches('/').to_owned();
    let cors = cors(&state.config.auth.cors_origins);
    let (api, mut spec) = api_routes().split_for_parts();
    openapi::complete(&mut spec, &base);
    let app = api
        .merge(docs::routes(&spec))
        .route("/", get(ui::index))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/assets/{*path}", get(ui::asset))
        .route("/ui/{*page}", get(ui::index))
        .route_layer(axum::middleware::from_fn_with_state(state.auth.clone(), auth::guard))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    let app = if base.is_empty() {
        app
    } else {
        // `nest` does not route the bare prefix with a trailing slash to "/".
        Router::new().route(&format!("{base}/"), get(ui::index)).with_state(state).nest(&base, app).fallback(not_found)
    };
    // The request span names the path, never the query string: a stream
    // handshake may carry `?token=`, and tokens stay out of the log.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<axum::body::Body>| {
        tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
    });
    app.layer(cors).layer(trace)
}

/// The REST API: handlers grouped by path.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::root))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::current))
        .routes(routes!(hosts::history))
        .routes(routes!(gateway::compat::metrics))
        .routes(routes!(gateway::compat::alerts))
        .routes(routes!(machines::list, machines::create))
        .routes(routes!(machines::get, machines::update, machines::delete))
        .routes(routes!(readings::query))
        .routes(routes!(export::export))
        .routes(routes!(kpis::kpis))
        .routes(routes!(forecasts::forecast))
        .routes(routes!(forecasts::thresholds))
        .routes(routes!(forecasts::predictions))
        .routes(routes!(forecasts::job))
        .routes(routes!(scores::scores))
        .routes(routes!(scores::detector))
        .routes(routes!(readings::ingest))
        .routes(routes!(readings::import))
        .routes(routes!(training::train_baseline))
        .routes(routes!(training::train_anomaly))
        .routes(routes!(training::retrain_trigger))
        .routes(routes!(training::list_jobs))
        .routes(routes!(training::get_job))
        .routes(routes!(training::cancel_job))
        .routes(routes!(models::list))
        .routes(routes!(models::get))
        .routes(routes!(models::activate))
        .routes(routes!(anomalies::detect))
        .routes(routes!(anomalies::detect_machine))
        .routes(routes!(anomalies::recent))
        .routes(routes!(anomalies::seed_list))
        .routes(routes!(episodes::list))
        .routes(routes!(episodes::acknowledge))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::seed_list))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::comment))
        .routes(routes!(incidents::assign))
        .routes(routes!(incidents::resolve))
        .routes(routes!(anomalies::get))
        .routes(routes!(analysis::anomaly))
        .routes(routes!(analysis::seed_analyze))
        .routes(routes!(anomalies::acknowledge))
        .routes(routes!(events::playback, events::publish))
        .routes(routes!(gateway::sse::stream))
        .routes(routes!(gateway::ws::custom))
        .routes(routes!(gateway::ws::named))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(sign_in::login))
        .routes(routes!(sign_in::logout))
        .routes(routes!(sign_in::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::change))
        .routes(routes!(demo::injected))
        .routes(routes!(metrics::scrape))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::channels))
        .routes(routes!(notifications::alerts))
        .routes(routes!(notifications::test))
        .routes(routes!(notifications::get))
}

/// Browsers on the listed origins may call the API; with none listed only
/// the dashboard's own origin can. Tokens travel in headers, not cookies,
/// so credentials mode is never needed.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id")])
        .max_age(std::time::Duration::from_secs(3600))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(Code::RouteNotFound, format!("no route for {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(Code::MethodNotAllowed, format!("method not allowed on {}", uri.path()))
}

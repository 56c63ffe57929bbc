//! The OpenAPI 3.1 description of the REST API.
//!
//! Each handler describes its own operation (`#[utoipa::path]`: parameters,
//! body, the answers only it gives); the types describe themselves
//! (`ToSchema`). [`complete`] then adds what follows from cross-cutting
//! code rather than from one handler, so it is written once and cannot
//! disagree with that code:
//! - security and 401/403/429 from the route policy (`auth::policy`);
//! - 400/413/415 for every operation with a request body (the body
//!   extractors), 422 for every operation with parameters or a body;
//! - 500 for every operation.

use axum::http::Method;
use enms_core::access::Role;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr, ServerBuilder};

use crate::auth::policy::{Access, access};
use crate::error::ErrorResponse;

pub const SECURITY_SCHEME: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "enms",
        description = "Real-time energy management: machines, readings, baselines, anomalies, training jobs \
            and live events. Every failure answers `{\"error\": {\"code\", \"message\", \"field\"?}}`. \
            Tokens are sent as `Authorization: Bearer <token>`; WebSocket and SSE streams also take \
            `?token=` or the WebSocket subprotocol `bearer.<token>`. The live protocol is described in \
            docs/protocol.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ErrorResponse, enms_core::event::Severity, crate::routes::ExportFormat, enms_incidents::State)),
    tags(
        (name = "health", description = "Liveness and the state of the database, streams and bus"),
        (name = "machines", description = "The machines a plant meters"),
        (name = "readings", description = "Energy readings: JSON batches, CSV import, time-range queries"),
        (name = "analytics", description = "KPIs, baseline and anomaly training jobs, models, anomaly detection"),
        (name = "events", description = "Publishing and playback of live events; SSE and WebSocket streams"),
        (name = "tokens", description = "API tokens and their roles (admin)"),
        (name = "sign-in", description = "People sign in with a name and password for a session token that expires"),
        (name = "users", description = "The people who sign in, their roles and passwords (admin)"),
        (name = "notifications", description = "The delivery log of notifications, their channels and alerts, and test sends"),
        (name = "operations", description = "Prometheus metrics and the demo factory's ground truth"),
    )
)]
pub struct ApiDoc;

/// Adds the cross-cutting answers and the security requirements, and the
/// base path as the server URL.
pub fn complete(doc: &mut Document, base_path: &str) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token from `enms token create` or `POST /api/v1/tokens`, or a session token from \
                     `POST /api/auth/login`.",
                ))
                .build(),
        ),
    );
    if !base_path.is_empty() {
        doc.servers = Some(vec![ServerBuilder::new().url(base_path).build()]);
    }
    describe_itself(doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            describe_access(op, access(&method, path));
            describe_input_errors(op);
            add(op, "500", "Internal error; the server log says more.");
        }
    }
}

/// The document's own route is served from the rendered bytes
/// (routes/docs.rs), so it is described here.
fn describe_itself(doc: &mut Document) {
    let ok = ResponseBuilder::new()
        .description("This document")
        .content("application/json", Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))))
        .build();
    let op = OperationBuilder::new()
        .operation_id(Some("openapi"))
        .tag("operations")
        .summary(Some("The OpenAPI 3.1 description of this API; Swagger UI shows it at `/docs/`."))
        .response("200", ok)
        .build();
    doc.paths.paths.insert("/api/v1/openapi.json".to_owned(), PathItem::new(HttpMethod::Get, op));
}

fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

fn describe_access(op: &mut Operation, needs: Access) {
    let Access::Needs(role, limit) = needs else {
        op.description = Some(append(op.description.take(), "Public: no token needed."));
        return;
    };
    op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(SECURITY_SCHEME, [])]);
    let note = format!("Requires a token with the `{}` role or above.", role.as_str());
    op.description = Some(append(op.description.take(), &note));
    add(
        op,
        "401",
        "No token, an unknown, revoked or malformed one (`unauthorized`, `invalid_token`), or a session past its \
         end (`session_expired`).",
    );
    if role > Role::Viewer {
        add(op, "403", "The token's role is below the one this operation needs (`forbidden`).");
    }
    if limit.is_some() {
        add(op, "429", "The token's rate limit is spent (`rate_limited`); `Retry-After` says when to retry.");
    }
}

fn describe_input_errors(op: &mut Operation) {
    if op.request_body.is_some() {
        add(op, "400", "The body is not valid JSON, or the request could not be read (`malformed_json`).");
        add(op, "413", "The body is larger than the configured limit (`payload_too_large`).");
        add(op, "415", "The Content-Type is not one this operation takes (`unsupported_media_type`).");
    }
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_params || op.request_body.is_some() {
        add(op, "422", "A field or parameter is invalid; `field` names it.");
    }
    if has_params {
        add(op, "400", "The query string could not be decoded (`invalid_query`).");
    }
}

/// Adds an error answer unless the handler already describes that status.
fn add(op: &mut Operation, status: &str, description: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    op.responses.responses.insert(status.to_owned(), RefOr::T(error_response(description)));
}

pub fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorResponse")))),
        )
        .build()
}

fn append(text: Option<String>, more: &str) -> String {
    match text {
        Some(t) if !t.is_empty() => format!("{t}\n\n{more}"),
        _ => more.to_owned(),
    }
}

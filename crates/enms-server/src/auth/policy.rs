//! The role each route needs, in one table. Routes not listed fail closed
//! (admin), so a new route is never public by accident.
//!
//! - public: health, the dashboard's files, the API description, sign-in;
//! - viewer: every read (GET) and every stream, the seed monitor's
//!   `/api/metrics/*` and `/api/ws/*` included;
//! - operator: detect, train, cancel, acknowledge, activate a model,
//!   publish, ingest, send a test notification, act on an incident;
//! - admin: changing machines, tokens and users (reading them too), and
//!   reading the configuration.

use axum::http::Method;
use enms_core::access::Role;

/// Which per-token rate limit a route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Publish,
    Ingest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Needs(Role, Option<Limit>),
}

const PUBLIC: &[&str] =
    &["/api/v1/health", "/health", "/api/v1/openapi.json", "/docs", "/docs/", "/docs/{*rest}", "/api/auth/login"];

const OPERATOR: &[&str] = &[
    "/api/v1/baseline/train/{id}",
    "/api/v1/anomaly/train/{id}",
    "/api/v1/forecast/train/{id}",
    "/api/v1/model-performance/retrain/trigger",
    "/api/v1/training/jobs/{id}/cancel",
    "/api/v1/models/{id}/activate",
    "/api/v1/anomaly/detect",
    "/api/v1/anomaly/detect/{id}",
    "/api/v1/anomalies/{id}/acknowledge",
    "/api/v1/anomaly/episodes/{id}/acknowledge",
    "/api/v1/notifications/test",
    "/api/v1/incidents/{id}/acknowledge",
    "/api/v1/incidents/{id}/comments",
    "/api/v1/incidents/{id}/assign",
    "/api/v1/incidents/{id}/resolve",
];

/// `route` is the matched route pattern without the base path.
pub fn access(method: &Method, route: &str) -> Access {
    let read = *method == Method::GET || *method == Method::HEAD;
    if PUBLIC.contains(&route) || route == "/" || route == "/ui" || route.starts_with("/ui/") {
        return Access::Public;
    }
    if route.starts_with("/api/v1/tokens") || route.starts_with("/api/v1/users") || route == "/api/v1/config" {
        return Access::Needs(Role::Admin, None);
    }
    if route.starts_with("/api/v1/machines") && !read {
        return Access::Needs(Role::Admin, None);
    }
    let seed_read = route.starts_with("/api/metrics/")
        || route.starts_with("/api/ws/")
        || route == "/api/anomalies"
        || route == "/api/predictions"
        || route == "/api/incidents";
    // The seed's analysis is a POST that changes nothing: a viewer's read;
    // anyone known may sign themselves out.
    if route == "/api/ai/analyze" || route == "/api/auth/logout" || route == "/api/auth/me" {
        return Access::Needs(Role::Viewer, None);
    }
    if read && (route.starts_with("/api/v1/") || route == "/metrics" || seed_read) {
        return Access::Needs(Role::Viewer, None);
    }
    match route {
        "/api/v1/events" => Access::Needs(Role::Operator, Some(Limit::Publish)),
        "/api/v1/readings" | "/api/v1/readings/import" => Access::Needs(Role::Operator, Some(Limit::Ingest)),
        r if OPERATOR.contains(&r) => Access::Needs(Role::Operator, None),
        _ => Access::Needs(Role::Admin, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_of_route_needs_its_role() {
        use Access::*;
        let needs = |r| Needs(r, None);
        assert_eq!(access(&Method::GET, "/api/v1/health"), Public);
        assert_eq!(access(&Method::GET, "/ui/assets/{*path}"), Public);
        assert_eq!(access(&Method::GET, "/api/v1/machines"), needs(Role::Viewer));
        assert_eq!(access(&Method::GET, "/api/v1/ws/{stream}"), needs(Role::Viewer));
        assert_eq!(access(&Method::GET, "/metrics"), needs(Role::Viewer));
        assert_eq!(access(&Method::GET, "/health"), Public);
        assert_eq!(access(&Method::GET, "/api/metrics/current"), needs(Role::Viewer));
        assert_eq!(access(&Method::GET, "/api/ws/ws"), needs(Role::Viewer));
        assert_eq!(access(&Method::POST, "/api/v1/anomaly/detect"), needs(Role::Operator));
        assert_eq!(access(&Method::POST, "/api/v1/incidents/{id}/resolve"), needs(Role::Operator));
        assert_eq!(access(&Method::GET, "/api/incidents"), needs(Role::Viewer));
        assert_eq!(access(&Method::POST, "/api/ai/analyze"), needs(Role::Viewer), "an analysis changes nothing");
        assert_eq!(access(&Method::POST, "/api/v1/events"), Needs(Role::Operator, Some(Limit::Publish)));
        assert_eq!(access(&Method::POST, "/api/v1/readings/import"), Needs(Role::Operator, Some(Limit::Ingest)));
        assert_eq!(access(&Method::POST, "/api/v1/machines"), needs(Role::Admin));
        assert_eq!(access(&Method::DELETE, "/api/v1/machines/{id}"), needs(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/tokens"), needs(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/users"), needs(Role::Admin), "reading users is an admin's");
        assert_eq!(access(&Method::PATCH, "/api/v1/users/{id}"), needs(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/auth/login"), Public);
        assert_eq!(access(&Method::POST, "/api/auth/logout"), needs(Role::Viewer));
        assert_eq!(access(&Method::GET, "/api/auth/me"), needs(Role::Viewer));
        assert_eq!(access(&Method::POST, "/api/v1/something/new"), needs(Role::Admin), "unknown routes fail closed");
    }
}

//! The OpenAPI document at `/api/v1/openapi.json` and Swagger UI at
//! `/docs/`: public on a secured server, structurally valid (every
//! reference resolves, every path parameter is declared, every answer is
//! described), in agreement with the route policy and docs/api.md, and
//! every operation it lists is routed by the server. (scripts/api-fuzz/run
//! sends schemathesis' generated requests against the same document.)

use std::collections::{BTreeSet, HashSet};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::TestServer;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn secured() -> TestServer {
    TestServer::with(|c| c.auth.required = true).await
}

async fn document(server: &TestServer) -> Value {
    let resp = server.request(Method::GET, "/api/v1/openapi.json").send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "the document is public");
    assert!(resp.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("application/json")));
    resp.json().await.expect("JSON")
}

/// Every (METHOD, path) the document lists.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_uppercase(), path.clone(), op));
            }
        }
    }
    ops
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_public_valid_and_describes_every_answer() {
    let server = secured().await;
    let doc = document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "{r} resolves");
    }
    assert!(all.len() > 50, "types are described by reference: {}", all.len());

    let mut ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has an operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
        let declared: HashSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: HashSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
        assert_eq!(declared, in_template, "{method} {path}: path parameters declared");

        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|s| s.starts_with('2') || s == "101"), "{method} {path}: a success answer");
        assert!(responses.contains_key("500"), "{method} {path}: 500 described");
        for (status, resp) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
            if path == "/api/v1/health" || path == "/health" {
                continue; // its 503 is the health body itself
            }
            assert_eq!(
                resp["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorResponse",
                "{method} {path} {status} answers the error body"
            );
        }
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(s), "{method} {path}: body errors ({s}) described");
            }
        }
    }
    let schema = &doc["components"]["schemas"]["ErrorResponse"];
    assert_eq!(schema["required"], serde_json::json!(["error"]));
}

#[tokio::test]
async fn security_follows_the_route_policy() {
    let server = secured().await;
    let doc = document(&server).await;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let op = |m: &str, p: &str| doc["paths"][p][m].clone();
    let public = op("get", "/api/v1/health");
    assert!(public.get("security").is_none() && public["responses"].get("401").is_none(), "health is public");
    let viewer = op("get", "/api/v1/machines");
    assert_eq!(viewer["security"][0]["bearer"], serde_json::json!([]));
    assert!(viewer["responses"].get("401").is_some() && viewer["responses"].get("403").is_none());
    let admin = op("post", "/api/v1/machines");
    assert!(admin["responses"].get("403").is_some());
    assert!(admin["description"].as_str().is_some_and(|d| d.contains("`admin`")), "{admin}");
    let publish = op("post", "/api/v1/events");
    assert!(publish["responses"].get("429").is_some(), "publish is rate limited");
    assert!(publish["description"].as_str().is_some_and(|d| d.contains("`operator`")));
    // The publish body lists every event type with the fields of its data.
    let variants = doc["components"]["schemas"]["PublishBody"]["oneOf"].as_array().expect("oneOf").clone();
    assert_eq!(variants.len(), enms_core::event::EventType::ALL.len(), "one variant per event type");
    let alert = variants.iter().find(|v| v["title"] == "system_alert").expect("system_alert");
    assert_eq!(alert["properties"]["data"]["required"], serde_json::json!(["alert_type", "message", "severity"]));
}

/// Each operation of the document reaches its handler: never the router's
/// `route_not_found` or `method_not_allowed`.
#[tokio::test]
async fn every_listed_operation_is_routed() {
    let mut server = TestServer::start().await;
    let doc = document(&server).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 30, "{} operations", ops.len());
    server.token = None;
    for (method, path, _) in &ops {
        let concrete = path
            .replace("{stream}", "dashboard")
            .split('/')
            .map(|s| if s.starts_with('{') { "00000000-0000-0000-0000-000000000000" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let resp = server.request(method.clone(), &concrete).send().await.expect("request");
        let status = resp.status();
        let event_stream = resp.headers().get("content-type").is_some_and(|t| t == "text/event-stream");
        if event_stream {
            continue; // routed: the stream began
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "route_not_found" && code != "method_not_allowed" && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {status} {body}"
        );
    }
}

/// docs/api.md (for people) and the document (for programs) name the same
/// endpoints.
#[tokio::test]
async fn the_document_and_the_api_guide_list_the_same_endpoints() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let normalise = |p: &str| {
        p.trim_end_matches('/')
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let listed: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, normalise(&p))).collect();
    let guide = include_str!("../../../../docs/api.md");
    let mut mentioned = BTreeSet::new();
    for m in ["GET", "POST", "PATCH", "DELETE", "PUT"] {
        for (i, _) in guide.match_indices(&format!("{m} /")) {
            let rest = &guide[i + m.len() + 1..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "/_{}.-".contains(c))).unwrap_or(rest.len());
            mentioned.insert((m.to_owned(), normalise(&rest[..end])));
        }
    }
    let undocumented: Vec<_> = listed.difference(&mentioned).collect();
    let unknown: Vec<_> = mentioned.difference(&listed).collect();
    assert!(undocumented.is_empty(), "operations docs/api.md does not mention: {undocumented:?}");
    assert!(unknown.is_empty(), "docs/api.md mentions endpoints the server lacks: {unknown:?}");
}

#[tokio::test]
async fn swagger_ui_is_served_offline_under_the_base_path() {
    let server = TestServer::with(|c| {
        c.auth.required = true;
        c.base_path = "/enms".into();
    })
    .await;
    let doc = document(&server).await;
    assert_eq!(doc["servers"][0]["url"], "/enms", "clients resolve paths under the base path");

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resp = http.get(format!("{}/docs", server.url)).send().await.expect("request");
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "docs/", "relative, so it holds under any base path");

    let page = http.get(format!("{}/docs/", server.url)).send().await.expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/html")));
    let html = page.text().await.expect("text");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no asset from the network: {html}");

    let init = http.get(format!("{}/docs/swagger-initializer.js", server.url)).send().await.expect("request");
    let init = init.text().await.expect("text");
    assert!(init.contains("../api/v1/openapi.json"), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "no call to validator.swagger.io: {init}");
    let bundle = http.get(format!("{}/docs/swagger-ui-bundle.js", server.url)).send().await.expect("request");
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.expect("bytes").len() > 100_000, "the vendored bundle is served");
    let missing = http.get(format!("{}/docs/nope.js", server.url)).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// What schemathesis found, kept fixed: each answer now matches the schema.
#[tokio::test]
async fn inputs_the_schema_refuses_are_refused() {
    use crate::common::assert_error;
    let server = TestServer::start().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    // An empty query value is a wrong value, not an absent one.
    for (path, field) in [
        ("/api/v1/events?since=", "since"),
        ("/api/v1/events?machine_id=", "machine_id"),
        ("/api/v1/events?types=,", "types"),
        ("/api/v1/anomaly/recent?until=", "until"),
        ("/api/v1/models?model_type=", "model_type"),
        ("/api/v1/training/jobs?machine_id=", "machine_id"),
        ("/api/v1/events?since=347060246753201425758", "since"),
        ("/api/v1/events?since=1234567890123456-0", "since"),
    ] {
        let body = assert_error(&server.get(path).await, unprocessable, "invalid_parameter");
        assert_eq!(body["field"], field, "{path}");
    }
    // Stream parameters are checked before the handshake.
    let ws = server.get("/api/v1/ws/dashboard?client_id=").await;
    assert_eq!(assert_error(&ws, unprocessable, "invalid_parameter")["field"], "client_id");
    // Text limits count what was sent, and control characters are refused
    // even where trimming would remove them.
    let name = format!("{}  ", "n".repeat(99));
    let long = server.post("/api/v1/machines", &serde_json::json!({"name": name, "type": "pump"})).await;
    assert_error(&long, unprocessable, "too_long");
    let tab = server.post("/api/v1/machines", &serde_json::json!({"name": "\tPump", "type": "pump"})).await;
    assert_error(&tab, unprocessable, "invalid_characters");
    let zero =
        server.post("/api/v1/machines", &serde_json::json!({"name": "P", "type": "pump", "rated_power_kw": 0})).await;
    assert_error(&zero, unprocessable, "out_of_range");
    assert_eq!(server.get("/api/v1/machines").await.1.as_array().map(Vec::len), Some(0), "nothing stored");
    // Token names are ASCII, as the schema states.
    let token = server.post("/api/v1/tokens", &serde_json::json!({"name": "zähler", "role": "viewer"})).await;
    assert_error(&token, unprocessable, "invalid_field");
    // JSON null stands for an absent optional body: the machine is looked up.
    let null = server
        .send("POST", "/api/v1/anomaly/detect/00000000-0000-0000-0000-000000000000", "application/json", "null")
        .await;
    assert_error(&null, StatusCode::NOT_FOUND, "not_found");
    // An event's data is checked against its type's fields.
    let alert = server.post("/api/v1/events", &serde_json::json!({"type": "model_updated", "data": {}})).await;
    assert_eq!(assert_error(&alert, unprocessable, "required")["field"], "data.model_id");
}

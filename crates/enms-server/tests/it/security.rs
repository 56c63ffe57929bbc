//! Tokens and roles on REST, WebSocket and SSE; rate and connection limits
//! per token; CORS. Servers run with authentication required, tokens made
//! the way `enms token create` makes them.

use std::collections::HashMap;

use enms_core::access::Role;
use enms_server::ServerConfig;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::{C1, TestServer, assert_error, db_url, respond};
use crate::wsclient::{WAIT, alert, ws_url};

/// A server requiring tokens, with one token per role.
async fn secured(tune: impl FnOnce(&mut ServerConfig)) -> (TestServer, HashMap<Role, String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = enms_store::connect(&db_url(dir.path())).await.expect("store");
    let mut tokens = HashMap::new();
    for role in Role::ALL {
        let made = enms_server::auth::issue(store.as_ref(), &format!("{role}-token"), role).await.expect("issue");
        tokens.insert(role, made.token);
    }
    store.close().await;
    let server = TestServer::start_in(dir.path(), |c| {
        c.auth.required = true;
        tune(c);
    })
    .await;
    (server, tokens, dir)
}

#[tokio::test]
async fn each_role_reaches_its_endpoints_and_is_refused_the_rest() {
    let (mut server, tokens, _dir) = secured(|_| {}).await;
    // Public without a token: health and the dashboard's page.
    assert_eq!(server.get("/api/v1/health").await.0, StatusCode::OK);
    assert_eq!(server.get("/api/v1/health").await.1["auth"]["required"], true);
    let page = server.request(Method::GET, "/").send().await.expect("ui");
    assert_eq!(page.status(), StatusCode::OK);
    let none = server.get("/api/v1/machines").await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");

    server.token = Some(tokens[&Role::Admin].clone());
    let machine = server.create_machine("press-1").await;
    let reading = json!({"readings": [{"machine_id": machine, "timestamp": "2026-01-01T00:00:00Z", "power_kw": 5.0, "energy_kwh": 1.25}]});
    // (method, path, body, lowest role allowed)
    let cases: Vec<(Method, String, serde_json::Value, Role)> = vec![
        (Method::GET, "/api/v1/machines".into(), json!(null), Role::Viewer),
        (Method::GET, format!("/api/v1/machines/{machine}/kpis"), json!(null), Role::Viewer),
        (Method::GET, "/api/v1/anomaly/recent".into(), json!(null), Role::Viewer),
        (Method::GET, "/api/v1/events?limit=5".into(), json!(null), Role::Viewer),
        (Method::GET, "/api/v1/training/jobs".into(), json!(null), Role::Viewer),
        (Method::POST, "/api/v1/events".into(), alert("hi"), Role::Operator),
        (Method::POST, "/api/v1/readings".into(), reading, Role::Operator),
        (Method::POST, format!("/api/v1/anomaly/detect/{machine}"), json!({}), Role::Operator),
        (Method::PATCH, format!("/api/v1/machines/{machine}"), json!({"location": "hall 2"}), Role::Admin),
        (Method::GET, "/api/v1/tokens".into(), json!(null), Role::Admin),
    ];
    server.token = None;
    for (method, path, body, lowest) in &cases {
        for role in Role::ALL {
            let mut req = server.request(method.clone(), path).bearer_auth(&tokens[&role]);
            if !body.is_null() {
                req = req.json(body);
            }
            let got = respond(req.send().await).await;
            if role >= *lowest {
                assert!(
                    got.0 != StatusCode::FORBIDDEN && got.0 != StatusCode::UNAUTHORIZED,
                    "{role} must reach {method} {path}: {got:?}"
                );
            } else {
                let err = assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
                assert!(err["message"].as_str().is_some_and(|m| m.contains(lowest.as_str())), "{err}");
            }
        }
    }
    let twice = server.request(Method::GET, "/api/v1/machines").bearer_auth(&tokens[&Role::Viewer]);
    let twice = twice.header("authorization", format!("Bearer {}", tokens[&Role::Admin]));
    assert_error(&respond(twice.send().await).await, StatusCode::UNAUTHORIZED, "invalid_authorization");
    // A refused write changed nothing.
    server.token = Some(tokens[&Role::Viewer].clone());
    let refused = server.post("/api/v1/machines", &json!({"name": "sneaky", "type": "hvac"})).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.get("/api/v1/machines").await.1.as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_refused_with_a_reason() {
    let (server, tokens, _dir) = secured(|_| {}).await;
    let call = |auth: &'static str| server.request(Method::GET, "/api/v1/machines").header("authorization", auth);
    let basic = respond(call("Basic YWRtaW46YWRtaW4=").send().await).await;
    assert_error(&basic, StatusCode::UNAUTHORIZED, "invalid_authorization");
    let unknown = respond(call("Bearer enms_0123").send().await).await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_token");
    let empty = respond(call("Bearer ").send().await).await;
    assert_error(&empty, StatusCode::UNAUTHORIZED, "invalid_authorization");
    let resp = server.request(Method::GET, "/api/v1/machines").send().await.expect("send");
    assert_eq!(resp.headers().get("www-authenticate").map(|v| v.to_str().ok()), Some(Some("Bearer realm=\"enms\"")));
    // ?token= is for stream handshakes only: on REST it is refused, and the
    // message says where the token goes.
    let viewer = &tokens[&Role::Viewer];
    for path in [format!("/api/v1/machines?token={viewer}"), format!("/api/v1/events?token={viewer}&limit=1")] {
        let e = assert_error(&server.get(&path).await, StatusCode::UNAUTHORIZED, "token_in_query");
        assert!(e["message"].as_str().is_some_and(|m| m.contains("Authorization header")), "{e}");
    }
    let e = assert_error(
        &respond(
            server.request(Method::GET, &format!("/api/v1/machines?token={viewer}")).bearer_auth(viewer).send().await,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "token_in_query",
    );
    assert_eq!(e["code"], "token_in_query", "refused even beside a valid header");
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_by_an_admin_only() {
    let (mut server, tokens, _dir) = secured(|_| {}).await;
    server.token = Some(tokens[&Role::Admin].clone());
    let (status, made) = server.post("/api/v1/tokens", &json!({"name": "grafana", "role": "viewer"})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["token"].as_str().expect("secret shown once").to_owned();
    let id = made["id"].as_str().expect("id").to_owned();
    let listed = server.get("/api/v1/tokens").await.1;
    let entry = listed.as_array().expect("list").iter().find(|t| t["id"] == id.as_str()).expect("listed").clone();
    assert_eq!(entry["role"], "viewer");
    assert!(entry.get("token").is_none() && entry.get("hash").is_none(), "no secret in lists: {entry}");
    assert_error(
        &server.post("/api/v1/tokens", &json!({"name": "GRAFANA", "role": "viewer"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let bad_role = server.post("/api/v1/tokens", &json!({"name": "x", "role": "root"})).await;
    assert_error(&bad_role, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let bad_name = server.post("/api/v1/tokens", &json!({"name": "a/b", "role": "viewer"})).await;
    assert_eq!(assert_error(&bad_name, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"], "name");

    let http = reqwest::Client::new();
    let grafana = |s: &TestServer| http.get(format!("{}/api/v1/machines", s.url)).bearer_auth(&secret).send();
    assert_eq!(grafana(&server).await.expect("send").status(), StatusCode::OK);
    assert_eq!(server.delete(&format!("/api/v1/tokens/{id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(grafana(&server).await.expect("send").status(), StatusCode::UNAUTHORIZED, "revoked at once");
    assert_error(&server.delete(&format!("/api/v1/tokens/{id}")).await, StatusCode::NOT_FOUND, "not_found");
    let bad_id = server.delete("/api/v1/tokens/not-a-uuid").await;
    assert_eq!(assert_error(&bad_id, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id")["field"], "id");
    let no_role = server.post("/api/v1/tokens", &json!({"name": "x"})).await;
    assert_eq!(assert_error(&no_role, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"], "role");
    let extra = server.post("/api/v1/tokens", &json!({"name": "x", "role": "viewer", "secret": "mine"})).await;
    assert_error(&extra, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(
        server.get("/api/v1/tokens").await.1.as_array().map(Vec::len),
        Some(4),
        "refused creations stored nothing"
    );
    server.stop().await;
}

/// Connects a WebSocket with `tune` adding the credential; the status of the
/// refusal, or the subprotocol the server picked.
async fn ws_with(
    server: &TestServer,
    path: &str,
    tune: impl FnOnce(&mut tokio_tungstenite::tungstenite::handshake::client::Request),
) -> Result<Option<String>, u16> {
    let mut req = ws_url(server, path).into_client_request().expect("request");
    tune(&mut req);
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            let hello = tokio::time::timeout(WAIT, ws.next()).await.expect("greeting").expect("open").expect("frame");
            assert!(hello.to_text().expect("text").contains("\"connected\""), "{hello:?}");
            Ok(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected websocket failure: {e}"),
    }
}

#[tokio::test]
async fn a_websocket_takes_its_token_by_header_query_or_subprotocol_and_is_refused_without() {
    let (server, tokens, _dir) = secured(|_| {}).await;
    let viewer = tokens[&Role::Viewer].clone();
    let header = HeaderValue::from_str(&format!("Bearer {viewer}")).expect("header");
    assert_eq!(
        ws_with(&server, "/api/v1/ws/dashboard", |r| drop(r.headers_mut().insert("authorization", header))).await,
        Ok(None)
    );
    assert_eq!(ws_with(&server, &format!("/api/v1/ws/anomalies?token={viewer}"), |_| {}).await, Ok(None));
    let offered = HeaderValue::from_str(&format!("enms, bearer.{viewer}")).expect("protocols");
    let picked =
        ws_with(&server, "/api/v1/ws/training", |r| drop(r.headers_mut().insert("sec-websocket-protocol", offered)))
            .await;
    assert_eq!(picked, Ok(Some("enms".to_owned())), "browsers need one of their offers echoed");
    assert_eq!(
        ws_with(&server, "/api/v1/ws/dashboard", |_| {}).await,
        Err(401),
        "no token: refused before the upgrade"
    );
    assert_eq!(ws_with(&server, "/api/v1/ws/dashboard?token=enms_nope", |_| {}).await, Err(401));
    // SSE with ?token= (EventSource cannot send headers).
    let resp = reqwest::get(format!("{}/api/v1/events/stream?token={viewer}", server.url)).await.expect("sse");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = reqwest::get(format!("{}/api/v1/events/stream", server.url)).await.expect("sse");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn publishing_past_a_tokens_rate_answers_429_with_retry_after() {
    let (mut server, tokens, _dir) = secured(|c| {
        c.auth.publish_rate = enms_server::RateLimit { per_second: 0.5, burst: 3 };
    })
    .await;
    server.token = Some(tokens[&Role::Operator].clone());
    for i in 0..3 {
        assert_eq!(server.post("/api/v1/events", &alert(&format!("a{i}"))).await.0, StatusCode::ACCEPTED);
    }
    let resp = server.request(Method::POST, "/api/v1/events").json(&alert("too many")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // The refused event was not published; the admin token has its own bucket.
    let log = server.get("/api/v1/events?types=system_alert&limit=10").await.1;
    assert_eq!(log["events"].as_array().map(Vec::len), Some(3), "{log}");
    server.token = Some(tokens[&Role::Admin].clone());
    assert_eq!(server.post("/api/v1/events", &alert("admin")).await.0, StatusCode::ACCEPTED);
    // Reads are not rate limited.
    assert_eq!(server.get(&format!("/api/v1/machines/{C1}")).await.0, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn one_token_cannot_hold_more_than_its_connections() {
    let (server, tokens, _dir) = secured(|c| c.gateway.max_per_token = 2).await;
    let viewer = tokens[&Role::Viewer].clone();
    let path = format!("{}/api/v1/ws/dashboard?token={viewer}", ws_url(&server, ""));
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio_tungstenite::connect_async(path.as_str()).await.expect("within the limit").0);
    }
    match tokio_tungstenite::connect_async(path.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!("third connection must be refused, got {:?}", other.map(|_| ())),
    }
    let other = format!("{}/api/v1/ws/dashboard?token={}", ws_url(&server, ""), tokens[&Role::Operator]);
    assert!(tokio_tungstenite::connect_async(other.as_str()).await.is_ok(), "another token is not affected");
    drop(held.pop());
    // The freed place is usable again once the server notices the close.
    let again = async {
        loop {
            if tokio_tungstenite::connect_async(path.as_str()).await.is_ok() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, again).await.expect("a closed connection frees its place");
    server.stop().await;
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let server = TestServer::with(|c| c.auth.cors_origins = vec!["https://grafana.plant.example".into()]).await;
    let preflight = |origin: &'static str| {
        server
            .request(Method::OPTIONS, "/api/v1/machines")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://grafana.plant.example").await.expect("preflight");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").map(|v| v.to_str().ok()),
        Some(Some("https://grafana.plant.example"))
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn an_open_server_serves_anonymous_callers_but_still_checks_a_given_token() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/api/v1/health").await.1["auth"]["required"], false);
    assert_eq!(server.get("/api/v1/machines").await.0, StatusCode::OK);
    let bad = server.request(Method::GET, "/api/v1/machines").bearer_auth("enms_stale").send();
    assert_error(&respond(bad.await).await, StatusCode::UNAUTHORIZED, "invalid_token");
    server.stop().await;
}

//! People sign in (docs/sign-in.md): a session token with an expiry that
//! works like an API token of the user's role, sign-out, expiry, lock-out
//! after failed attempts, the per-address limit, and the admin's user
//! routes — over real sockets, servers requiring authentication.

use std::time::Duration;

use enms_core::access::Role;
use enms_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, db_url, respond};
use crate::wsclient::{WAIT, Ws, alert, close_code, ws_url};

/// A server requiring authentication, with an admin token and one user
/// per role (password `<role> password`), made as `enms user create` does.
async fn server(tune: impl FnOnce(&mut ServerConfig)) -> (TestServer, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = enms_store::connect(&db_url(dir.path())).await.expect("store");
    let admin = enms_server::auth::issue(store.as_ref(), "admin-token", Role::Admin).await.expect("issue").token;
    let accounts = enms_accounts::Accounts::new(store.clone(), enms_accounts::Policy::default());
    for role in Role::ALL {
        accounts.create_user(role.as_str(), role, &format!("{role} password")).await.expect("user");
    }
    store.close().await;
    let server = TestServer::start_in(dir.path(), |c| {
        c.auth.required = true;
        tune(c);
    })
    .await;
    (server, admin, dir)
}

async fn login(server: &TestServer, username: &str, password: &str) -> (StatusCode, Value) {
    let req = server.request(Method::POST, "/api/auth/login");
    respond(req.json(&json!({"username": username, "password": password})).send().await).await
}

async fn as_session(
    server: &TestServer,
    session: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = server.request(method, path).bearer_auth(session);
    if let Some(body) = body {
        req = req.json(&body);
    }
    respond(req.send().await).await
}

#[tokio::test]
async fn a_session_acts_with_its_users_role_until_sign_out() {
    let (server, _admin, _dir) = server(|_| {}).await;
    let (status, signed) = login(&server, "Operator", "operator password").await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["token_type"], "bearer");
    assert_eq!(
        (signed["user"]["name"].as_str(), signed["user"]["role"].as_str()),
        (Some("operator"), Some("operator"))
    );
    let session = signed["access_token"].as_str().expect("token").to_owned();
    assert!(session.starts_with("enms_s_"), "{session}");
    let expires: chrono::DateTime<chrono::Utc> = signed["expires_at"].as_str().expect("expiry").parse().expect("time");
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((11.9..=12.0).contains(&hours), "12 h by default, {hours} h");

    let me = as_session(&server, &session, Method::GET, "/api/auth/me", None).await;
    assert_eq!(me.0, StatusCode::OK);
    assert_eq!((me.1["kind"].as_str(), me.1["name"].as_str()), (Some("session"), Some("operator")));
    assert_eq!(me.1["expires_at"], signed["expires_at"]);
    // The operator's role: reads, publishes; not an admin's route.
    assert_eq!(as_session(&server, &session, Method::GET, "/api/v1/machines", None).await.0, StatusCode::OK);
    let published = as_session(&server, &session, Method::POST, "/api/v1/events", Some(alert("signed in"))).await;
    assert_eq!(published.0, StatusCode::ACCEPTED, "{}", published.1);
    let refused = as_session(&server, &session, Method::GET, "/api/v1/users", None).await;
    let err = assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("user \"operator\"")), "{err}");

    let out = as_session(&server, &session, Method::POST, "/api/auth/logout", None).await;
    assert_eq!(out.0, StatusCode::NO_CONTENT, "{}", out.1);
    let after = as_session(&server, &session, Method::GET, "/api/v1/machines", None).await;
    assert_error(&after, StatusCode::UNAUTHORIZED, "invalid_token");
    let again = as_session(&server, &session, Method::POST, "/api/auth/logout", None).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_token");
    server.stop().await;
}

#[tokio::test]
async fn an_expired_session_is_refused_saying_it_expired() {
    let (server, _admin, _dir) = server(|c| c.auth.sign_in.session_lifetime = Duration::from_secs(1)).await;
    let (status, signed) = login(&server, "viewer", "viewer password").await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let session = signed["access_token"].as_str().expect("token").to_owned();
    assert_eq!(as_session(&server, &session, Method::GET, "/api/v1/machines", None).await.0, StatusCode::OK);
    // Cached or not, the session ends at its expiry.
    let expired = tokio::time::timeout(WAIT, async {
        loop {
            let got = as_session(&server, &session, Method::GET, "/api/v1/machines", None).await;
            if got.0 != StatusCode::OK {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the session ends");
    let err = assert_error(&expired, StatusCode::UNAUTHORIZED, "session_expired");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("sign in again")), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_lock_the_user_out_and_each_address_is_limited() {
    let (server, _admin, _dir) = server(|c| {
        c.auth.sign_in.max_failures = 3;
        c.auth.login_rate = enms_server::RateLimit { per_second: 0.01, burst: 8 };
    })
    .await;
    for _ in 0..2 {
        assert_error(&login(&server, "viewer", "wrong").await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let unknown = login(&server, "nobody", "whatever").await;
    let e = assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(e["message"], "wrong user name or password", "an unknown name answers like a wrong password");
    let third =
        server.request(Method::POST, "/api/auth/login").json(&json!({"username": "viewer", "password": "nope"}));
    let third = third.send().await.expect("send");
    let retry: u64 = third.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((850..=900).contains(&retry), "15 min lock-out, Retry-After {retry}");
    assert_error(&respond(Ok(third)).await, StatusCode::TOO_MANY_REQUESTS, "locked_out");
    let right = login(&server, "viewer", "viewer password").await;
    assert_error(&right, StatusCode::TOO_MANY_REQUESTS, "locked_out");
    // Another user is not locked by the first one's failures.
    assert_eq!(login(&server, "operator", "operator password").await.0, StatusCode::OK);
    // Six attempts so far from this address; the burst is 8.
    assert_eq!(login(&server, "admin", "admin password").await.0, StatusCode::OK);
    assert_eq!(login(&server, "admin", "admin password").await.0, StatusCode::OK);
    let limited = login(&server, "admin", "admin password").await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    server.stop().await;
}

#[tokio::test]
async fn bad_sign_in_requests_are_refused_with_a_reason() {
    let (server, admin, _dir) = server(|_| {}).await;
    let post = |body: &'static str| server.send("POST", "/api/auth/login", "application/json", body);
    assert_error(&post("{\"username\": \"viewer\"").await, StatusCode::BAD_REQUEST, "malformed_json");
    let missing =
        assert_error(&post("{\"username\": \"viewer\"}").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(missing["field"], "password");
    let extra = post("{\"username\": \"viewer\", \"password\": \"viewer password\", \"remember\": true}").await;
    assert_eq!(assert_error(&extra, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"], "remember");
    // Sign-out ends sessions, not API tokens nor nothing.
    let token = respond(server.request(Method::POST, "/api/auth/logout").bearer_auth(&admin).send().await).await;
    assert_error(&token, StatusCode::BAD_REQUEST, "not_a_session");
    let nothing = respond(server.request(Method::POST, "/api/auth/logout").send().await).await;
    assert_error(&nothing, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = as_session(&server, "enms_s_0123", Method::GET, "/api/v1/machines", None).await;
    assert_error(&forged, StatusCode::UNAUTHORIZED, "invalid_token");
    server.stop().await;
}

#[tokio::test]
async fn an_admin_manages_users_and_disabling_one_ends_their_session() {
    let (mut server, admin, _dir) = server(|_| {}).await;
    server.token = Some(admin.clone());
    let (status, ada) =
        server.post("/api/v1/users", &json!({"name": "ada", "role": "viewer", "password": "analytical engine"})).await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    assert!(ada.get("password_hash").is_none() && ada.get("password").is_none(), "{ada}");
    let weak = server.post("/api/v1/users", &json!({"name": "bob", "role": "viewer", "password": "short"})).await;
    assert_eq!(assert_error(&weak, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"], "password");
    let taken = server.post("/api/v1/users", &json!({"name": "ADA", "role": "admin", "password": "long enough"})).await;
    assert_eq!(assert_error(&taken, StatusCode::CONFLICT, "conflict")["field"], "name");
    let bad_name =
        server.post("/api/v1/users", &json!({"name": "a b", "role": "viewer", "password": "long enough"})).await;
    assert_eq!(assert_error(&bad_name, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")["field"], "name");
    let names: Vec<_> =
        server.get("/api/v1/users").await.1.as_array().expect("list").iter().map(|u| u["name"].clone()).collect();
    assert_eq!(names, [json!("ada"), json!("admin"), json!("operator"), json!("viewer")], "nothing half-stored");

    server.token = None;
    let (_, signed) = login(&server, "ada", "analytical engine").await;
    let session = signed["access_token"].as_str().expect("token").to_owned();
    assert_eq!(as_session(&server, &session, Method::GET, "/api/v1/machines", None).await.0, StatusCode::OK);
    server.token = Some(admin);
    let id = ada["id"].as_str().expect("id");
    let nothing = server.patch(&format!("/api/v1/users/{id}"), &json!({})).await;
    assert_error(&nothing, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let ghost = server.patch(&format!("/api/v1/users/{}", uuid::Uuid::new_v4()), &json!({"disabled": true})).await;
    assert_error(&ghost, StatusCode::NOT_FOUND, "not_found");
    let (status, off) = server.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert!(off["disabled_at"].is_string(), "{off}");
    server.token = None;
    let after = as_session(&server, &session, Method::GET, "/api/v1/machines", None).await;
    assert_error(&after, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_error(&login(&server, "ada", "analytical engine").await, StatusCode::UNAUTHORIZED, "invalid_credentials");
    server.stop().await;
}

/// A stream opened with a session, through the browser's subprotocol.
async fn stream_as(server: &TestServer, session: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = ws_url(server, "/api/v1/ws/dashboard").into_client_request().expect("request");
    let offer = format!("enms, bearer.{session}").parse().expect("header");
    req.headers_mut().insert("sec-websocket-protocol", offer);
    let (inner, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    let mut ws = Ws { inner };
    assert_eq!(ws.next_json().await["type"], "connection");
    ws
}

#[tokio::test]
async fn streams_end_with_their_credential_sign_out_expiry_and_revocation() {
    let (server, admin, _dir) = server(|c| {
        c.auth.cache_ttl = Duration::from_millis(200);
        c.auth.sign_in.session_lifetime = Duration::from_secs(3);
    })
    .await;
    // Sign-out closes the session's socket at once (4401), not the others'.
    let (_, first) = login(&server, "viewer", "viewer password").await;
    let first = first["access_token"].as_str().expect("token").to_owned();
    let (_, second) = login(&server, "operator", "operator password").await;
    let second = second["access_token"].as_str().expect("token").to_owned();
    let mut ws = stream_as(&server, &first).await;
    let mut other = stream_as(&server, &second).await;
    let out = as_session(&server, &first, Method::POST, "/api/auth/logout", None).await;
    assert_eq!(out.0, StatusCode::NO_CONTENT);
    let (frame, _) = ws.until_close().await;
    assert_eq!(close_code(&frame), 4401, "{frame:?}");
    let published = as_session(&server, &second, Method::POST, "/api/v1/events", Some(alert("still here"))).await;
    assert_eq!(published.0, StatusCode::ACCEPTED);
    assert_eq!(other.next_json().await["data"]["message"], "still here", "another session's stream goes on");

    // The other session expires (3 s): its stream closes with it.
    let (frame, _) = other.until_close().await;
    assert_eq!(close_code(&frame), 4401, "{frame:?}");

    // An API token revoked: its SSE stream ends with an error event.
    let store = enms_store::connect(&db_url(_dir.path())).await.expect("store");
    let token = enms_server::auth::issue(store.as_ref(), "sse-reader", Role::Viewer).await.expect("issue");
    store.close().await;
    let mut sse =
        reqwest::get(format!("{}/api/v1/events/stream?token={}", server.url, token.token)).await.expect("sse");
    assert_eq!(sse.status(), StatusCode::OK);
    let revoke = server.request(Method::DELETE, &format!("/api/v1/tokens/{}", token.record.id)).bearer_auth(&admin);
    assert_eq!(revoke.send().await.expect("revoke").status(), StatusCode::NO_CONTENT);
    let body = tokio::time::timeout(WAIT, async {
        let mut text = String::new();
        while let Some(chunk) = sse.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the stream ends within the sweep");
    assert!(body.contains("event: error") && body.contains("credential_ended"), "{body}");
    server.stop().await;
}

/// Behind a trusted proxy the per-address limit counts the client the
/// proxy names; from anyone else `X-Forwarded-For` is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_sign_in_allowance() {
    let attempt = |server: &TestServer, forwarded: &'static str| {
        let req = server.request(Method::POST, "/api/auth/login").header("x-forwarded-for", forwarded);
        let req = req.json(&json!({"username": "nobody", "password": "whatever1"}));
        async move { req.send().await.expect("send").status() }
    };
    let limit = enms_server::RateLimit { per_second: 0.001, burst: 2 };
    let (proxied, _admin, _dir) = server(|c| {
        c.auth.login_rate = limit;
        c.auth.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(attempt(&proxied, "10.0.0.1").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt(&proxied, "10.0.0.1").await, StatusCode::TOO_MANY_REQUESTS, "10.0.0.1 spent its two");
    assert_eq!(attempt(&proxied, "10.0.0.2").await, StatusCode::UNAUTHORIZED, "another client has its own");
    // A client writing an address further left does not move the count.
    assert_eq!(attempt(&proxied, "10.9.9.9, 10.0.0.1").await, StatusCode::TOO_MANY_REQUESTS);
    proxied.stop().await;

    let (direct, _admin, _dir) = server(|c| c.auth.login_rate = limit).await;
    for forwarded in ["10.0.0.1", "10.0.0.2"] {
        assert_eq!(attempt(&direct, forwarded).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt(&direct, "10.0.0.3").await,
        StatusCode::TOO_MANY_REQUESTS,
        "an untrusted peer's header is ignored: all three were the same address"
    );
    direct.stop().await;
}

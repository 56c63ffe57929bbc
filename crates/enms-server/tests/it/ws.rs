//! WebSocket streams over real sockets: types per stream, filters, the
//! protocol's messages and errors, resume, slow consumers, limits and drain.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{C1, TestServer, assert_error};
use crate::wsclient::{Ws, alert, anomaly, close_code, publish, spawn_alerts, ws_url};

const C2: &str = "c0000000-0000-0000-0000-000000000002";

fn training(kind: &str, job: &str) -> Value {
    let status = if kind == "training_started" { json!(null) } else { json!("running") };
    json!({"type": kind, "data": {"job_id": job, "machine_id": C1, "model_type": "baseline", "progress_pct": 50, "status": status}})
}

fn one_of_each() -> Vec<Value> {
    vec![
        anomaly(C1, "warning", "spike"),
        json!({"type": "metric_updated", "data": {"machine_id": C1, "metric_name": "power_kw", "value": 3.5, "unit": "kW"}}),
        training("training_started", "j1"),
        training("training_progress", "j1"),
        training("training_completed", "j1"),
        json!({"type": "model_updated", "data": {"model_id": "m1", "machine_id": C1, "model_type": "baseline"}}),
        alert("hello"),
        anomaly(C1, "critical", "end"),
        json!({"type": "model_updated", "data": {"model_id": "end", "model_type": "baseline"}}),
        alert("end"),
    ]
}

fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().expect("type").to_owned()).collect()
}

#[tokio::test]
async fn each_stream_receives_exactly_its_types() {
    let s = TestServer::start().await;
    let streams = [
        ("/api/v1/ws/dashboard", "dashboard", None),
        ("/api/v1/ws/anomalies", "anomalies", Some(vec!["anomaly_detected", "anomaly_updated"])),
        (
            "/api/v1/ws/training",
            "training",
            Some(vec!["training_started", "training_progress", "training_completed", "model_updated"]),
        ),
        ("/api/v1/ws/events", "events", Some(vec!["system_alert"])),
        ("/api/v1/ws?types=anomaly.detected,system_alert", "custom", Some(vec!["anomaly_detected", "system_alert"])),
    ];
    let mut clients = Vec::new();
    for (path, name, _) in &streams {
        let (ws, hello) = Ws::connect(&s, path).await;
        assert_eq!(hello["stream"], *name);
        assert_eq!(hello["recovered"], false);
        assert!(hello["client_id"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(hello["server_time"].is_string());
        clients.push(ws);
    }
    let published = one_of_each();
    for event in &published {
        publish(&s, event).await;
    }
    let all: Vec<String> = published.iter().map(|e| e["type"].as_str().expect("type").to_owned()).collect();
    for ((path, _, types), ws) in streams.iter().zip(clients.iter_mut()) {
        let expected: Vec<String> =
            all.iter().filter(|t| types.as_ref().is_none_or(|ts| ts.contains(&t.as_str()))).cloned().collect();
        // The dashboard also gets the server's own reactions (the incident
        // the warning anomaly opens, whenever it comes); the published
        // events keep their order. Any other stream carrying an incident
        // event fails the comparison below.
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let e = ws.events(1).await.remove(0);
            if types.is_none() && e["type"].as_str().is_some_and(|t| t.starts_with("incident_")) {
                continue;
            }
            got.push(e);
        }
        assert_eq!(kinds(&got), expected, "{path}");
        for e in &got {
            assert_eq!(e["data"]["event_type"], e["type"], "data repeats event_type");
            assert!(e["timestamp"].is_string());
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn machine_and_severity_filters_apply_and_subscriptions_change_them() {
    let s = TestServer::start().await;
    let (mut ws, hello) =
        Ws::connect(&s, &format!("/api/v1/ws/anomalies?machine_id={C1}&min_severity=warning&client_id=wall-1")).await;
    assert_eq!(hello["client_id"], "wall-1");
    let (mut both, _) = Ws::connect(&s, &format!("/api/v1/ws/dashboard?machine_id={C1}&machine_id={C2}")).await;
    for (m, sev, kind) in [(C1, "normal", "a"), (C1, "critical", "b"), (C2, "critical", "c"), (C1, "warning", "d")] {
        publish(&s, &anomaly(m, sev, kind)).await;
    }
    let got = ws.events(2).await;
    let seen: Vec<&str> = got.iter().map(|e| e["data"]["anomaly_type"].as_str().expect("kind")).collect();
    assert_eq!(seen, vec!["b", "d"]);
    assert_eq!(both.events(4).await.len(), 4, "repeated machine_id parameters add up");

    let ack = ws.ask(json!({"type": "subscribe", "machine_ids": [C2]})).await;
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["machine_ids"], json!([C1, C2]));
    let ack = ws.ask(json!({"type": "unsubscribe", "machine_ids": [C1]})).await;
    assert_eq!((ack["type"].as_str(), &ack["machine_ids"]), (Some("unsubscribed"), &json!([C2])));
    publish(&s, &anomaly(C1, "critical", "e")).await;
    publish(&s, &anomaly(C2, "critical", "f")).await;
    assert_eq!(ws.events(1).await[0]["data"]["anomaly_type"], "f");
    s.stop().await;
}

#[tokio::test]
async fn client_messages_are_answered_and_bad_ones_keep_the_connection() {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/anomalies").await;
    let pong = ws.ask(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].is_string());

    let bad: Vec<(Message, &str)> = vec![
        (Message::text("hello there"), "invalid_json"),
        (Message::text("{\"type\":"), "invalid_json"),
        (Message::text("[1,2]"), "invalid_message"),
        (Message::text("{\"kind\":\"ping\"}"), "invalid_message"),
        (Message::text("{\"type\":\"dance\"}"), "unknown_message_type"),
        (Message::text("{\"type\":\"subscribe\"}"), "invalid_message"),
        (Message::text("{\"type\":\"subscribe\",\"machine_ids\":[\"x\"]}"), "invalid_value"),
        (Message::text("{\"type\":\"subscribe\",\"types\":[\"system_alert\"]}"), "type_not_in_stream"),
        (Message::text("{\"type\":\"subscribe\",\"types\":\"anomaly_detected\"}"), "invalid_message"),
        (
            Message::text("{\"type\":\"unsubscribe\",\"types\":[\"anomaly_detected\",\"anomaly_updated\"]}"),
            "invalid_message",
        ),
        (Message::binary(vec![0u8, 159, 146, 150]), "binary_not_supported"),
    ];
    for (msg, code) in bad {
        let shown = format!("{msg:?}");
        ws.inner.send(msg).await.expect("send");
        let err = ws.next_json().await;
        assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some(code)), "{shown}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Still subscribed and answering after all that.
    publish(&s, &anomaly(C1, "critical", "still-here")).await;
    assert_eq!(ws.events(1).await[0]["data"]["anomaly_type"], "still-here");
    assert_eq!(ws.ask(json!({"type": "ping"})).await["type"], "pong");

    // A frame over 64 KiB closes with 1009; the server keeps serving others.
    ws.inner.send(Message::text("x".repeat(65 * 1024))).await.expect("send");
    let (frame, _) = ws.until_close().await;
    assert_eq!(close_code(&frame), 1009);
    let (mut other, _) = Ws::connect(&s, "/api/v1/ws/anomalies").await;
    assert_eq!(other.ask(json!({"type": "ping"})).await["type"], "pong");
    s.stop().await;
}

#[tokio::test]
async fn bad_connect_parameters_are_refused_before_the_upgrade() {
    let s = TestServer::start().await;
    for (path, field) in [
        ("/api/v1/ws/dashboard?machine_id=nope", "machine_id"),
        ("/api/v1/ws/dashboard?min_severity=loud", "min_severity"),
        ("/api/v1/ws/dashboard?last_event_id=yesterday", "last_event_id"),
        ("/api/v1/ws/dashboard?client_id=a%20b", "client_id"),
        ("/api/v1/ws?types=nope", "types"),
        ("/api/v1/ws/anomalies?types=system_alert", "types"),
    ] {
        let err = tokio_tungstenite::connect_async(ws_url(&s, path)).await.expect_err("refused");
        let tokio_tungstenite::tungstenite::Error::Http(resp) = err else { panic!("{path}: expected HTTP refusal") };
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("error body");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
    let err = tokio_tungstenite::connect_async(ws_url(&s, "/api/v1/ws/nope")).await.expect_err("refused");
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == StatusCode::NOT_FOUND));
    // A plain GET without the upgrade is an error too, not a hang.
    assert_error(&s.get("/api/v1/ws/dashboard").await, StatusCode::UPGRADE_REQUIRED, "websocket_upgrade_required");
    // An upgrade asking for a protocol version we do not speak.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/ws/dashboard", s.url))
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
    let body: Value = resp.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "websocket_upgrade_required");
    s.stop().await;
}

/// The server holds its `101` answer back and sends it in one write with the
/// `connection` message (`gateway::held`): on a raw socket the answer and
/// the greeting arrive intact and in order, also on a keep-alive connection
/// whose plain request before the upgrade was answered normally. (That it
/// is one write shows in `enms bench fanout`'s CPU per connection, not
/// here: two segments may also arrive before one read.)
#[tokio::test]
async fn an_upgrade_after_a_plain_request_answers_101_then_the_greeting() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let host = s.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&host).await.expect("connect");
    tcp.write_all(format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 64 << 10];
    let mut got = Vec::new();
    let body_complete = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
        let len = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()));
        len.and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| body.len() >= l)
    };
    while !body_complete(&got) {
        let n =
            tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await.expect("in time").expect("read");
        assert!(n > 0, "closed after {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    let upgrade = format!(
        "GET /api/v1/ws/dashboard HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(upgrade.as_bytes()).await.expect("write");
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await.expect("in time").expect("read");
    let first = String::from_utf8_lossy(&buf[..n]);
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    assert!(first.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "accept key: {first}");
    let (_, frames) = first.split_once("\r\n\r\n").expect("end of the head");
    assert!(frames.contains(r#""type":"connection""#), "the greeting follows the head: {first}");
    s.stop().await;
}

#[tokio::test]
async fn the_connection_limit_refuses_the_excess_cleanly() {
    let s = TestServer::with(|c| c.gateway.max_connections = 2).await;
    let (_a, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    let (b, _) = Ws::connect(&s, "/api/v1/ws/events").await;
    let err = tokio_tungstenite::connect_async(ws_url(&s, "/api/v1/ws/dashboard")).await.expect_err("over the limit");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else { panic!("expected HTTP refusal") };
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&s.get("/api/v1/events/stream").await, StatusCode::SERVICE_UNAVAILABLE, "too_many_connections");
    b.close().await;
    // The place is given back once the server has seen the close.
    let mut admitted = None;
    for _ in 0..100 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(ws_url(&s, "/api/v1/ws/dashboard")).await {
            admitted = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted.is_some(), "a freed place is reusable");
    s.stop().await;
}

#[tokio::test]
async fn resume_after_a_disconnect_loses_and_repeats_nothing() {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    publish(&s, &alert("before")).await;
    let last = ws.events(1).await[0]["id"].as_str().expect("id").to_owned();
    ws.close().await;

    // 1000 events while the client is away, the last 200 of them racing the reconnect.
    let publisher = spawn_alerts(&s, (0..1000).map(|n| format!("m{n}")).collect());
    let mut seen_live = 0;
    while seen_live < 800 {
        let (_, page) = s.get("/api/v1/events?types=system_alert&limit=1").await;
        seen_live = page["events"][0]["data"]["message"].as_str().and_then(|m| m[1..].parse().ok()).unwrap_or(0);
        tokio::task::yield_now().await;
    }
    let (mut ws, hello) = Ws::connect(&s, &format!("/api/v1/ws/dashboard?last_event_id={last}")).await;
    assert_eq!(hello["recovered"], true, "{hello}");
    publisher.await.expect("publisher");
    let got = ws.events(1000).await;
    let messages: Vec<String> = got.iter().map(|e| e["data"]["message"].as_str().expect("m").to_owned()).collect();
    let expected: Vec<String> = (0..1000).map(|n| format!("m{n}")).collect();
    assert_eq!(messages, expected, "every missed event once, in order");
    publish(&s, &alert("after")).await;
    assert_eq!(ws.events(1).await[0]["data"]["message"], "after", "then live, with nothing repeated");
    s.stop().await;
}

#[tokio::test]
async fn an_id_beyond_retention_reports_recovered_false() {
    let s = TestServer::with(|c| c.bus.window_events = 10).await;
    let first = publish(&s, &alert("first")).await;
    for n in 0..30 {
        let metric =
            json!({"type": "metric_updated", "data": {"machine_id": C1, "metric_name": "power_kw", "value": n}});
        publish(&s, &metric).await;
    }
    let (_, hello) = Ws::connect(&s, &format!("/api/v1/ws/dashboard?last_event_id={first}")).await;
    assert_eq!(hello["recovered"], false, "metric events left the window and are not logged");
    // Anomalies are all in the durable log: that stream recovers fully.
    let (_, hello) = Ws::connect(&s, &format!("/api/v1/ws/anomalies?last_event_id={first}")).await;
    assert_eq!(hello["recovered"], true);
    // An id this server never issued.
    let (_, hello) = Ws::connect(&s, "/api/v1/ws/dashboard?last_event_id=99999999999999-0").await;
    assert_eq!(hello["recovered"], false);
    s.stop().await;
}

#[tokio::test]
async fn resume_after_a_server_restart_comes_from_the_durable_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/anomalies").await;
    publish(&s, &anomaly(C1, "warning", "seen")).await;
    let last = ws.events(1).await[0]["id"].as_str().expect("id").to_owned();
    ws.close().await;
    for n in 0..5 {
        publish(&s, &anomaly(C1, "critical", &format!("missed-{n}"))).await;
    }
    s.stop().await;

    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let (mut ws, hello) = Ws::connect(&s, &format!("/api/v1/ws/anomalies?last_event_id={last}")).await;
    assert_eq!(hello["recovered"], true, "{hello}");
    let got = ws.events(5).await;
    let kinds: Vec<&str> = got.iter().map(|e| e["data"]["anomaly_type"].as_str().expect("kind")).collect();
    assert_eq!(kinds, vec!["missed-0", "missed-1", "missed-2", "missed-3", "missed-4"]);
    publish(&s, &anomaly(C1, "critical", "new")).await;
    assert_eq!(ws.events(1).await[0]["data"]["anomaly_type"], "new");
    s.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_while_fifty_others_get_everything() {
    slow_consumer_among_fifty(true).await;
}

/// The same with one `send` per delivery: the path of a kernel that
/// refuses io_uring, and of `[realtime] io_uring = false`.
#[tokio::test]
async fn without_io_uring_a_slow_consumer_is_closed_while_fifty_others_get_everything() {
    slow_consumer_among_fifty(false).await;
}

async fn slow_consumer_among_fifty(io_uring: bool) {
    let s = TestServer::with(|c| {
        c.gateway.hub.queue.messages = 64;
        c.gateway.hub.queue.bytes = 64 << 10;
        c.gateway.hub.io_uring = io_uring;
    })
    .await;
    // The slow client shrinks its receive buffer and then never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr = s.url.trim_start_matches("http://").split('/').next().expect("addr").parse().expect("socket addr");
    let stream = socket.connect(addr).await.expect("connect");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (slow, _) = tokio_tungstenite::client_async(ws_url(&s, "/api/v1/ws/events"), stream).await.expect("upgrade");
    let mut slow = Ws { inner: slow };
    // Fifty fast clients read everything until the final "end" event.
    let mut others = Vec::new();
    for _ in 0..50 {
        let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/events").await;
        others.push(tokio::spawn(async move {
            let mut messages = Vec::new();
            loop {
                let e = ws.events(1).await.remove(0);
                let m = e["data"]["message"].as_str().expect("message").to_owned();
                if m == "end" {
                    return messages;
                }
                messages.push(m);
            }
        }));
    }
    // Publish until the server gives up on the slow one: how many that takes
    // depends on the kernel's socket buffers, not on the test.
    let filler = "x".repeat(1000);
    let mut published = 0;
    loop {
        for _ in 0..50 {
            let mut event = alert(&format!("m{published}"));
            event["data"]["details"] = json!({"filler": filler});
            publish(&s, &event).await;
            published += 1;
        }
        let (_, health) = s.get("/api/v1/health").await;
        if health["websocket"]["slow_consumer_disconnects"] == 1 {
            break;
        }
        assert!(published < 20_000, "the slow client was never cut off: {health}");
    }
    let (frame, _) = slow.until_close().await;
    assert_eq!(close_code(&frame), 4008);
    assert_eq!(frame.map(|f| f.reason.to_string()), Some("slow consumer".into()));
    publish(&s, &alert("end")).await;
    let expected: Vec<String> = (0..published).map(|n| format!("m{n}")).collect();
    for task in others {
        assert!(task.await.expect("reader") == expected, "a fast client got every event in order");
    }
    let (_, health) = s.get("/api/v1/health").await;
    assert_eq!(health["websocket"]["slow_consumer_disconnects"], 1, "{health}");
    assert_eq!(health["websocket"]["io_uring"], io_uring, "{health}");
    assert!(health["websocket"]["messages_sent"].as_u64() >= Some(50 * published as u64), "{health}");
    assert!(health["websocket"]["messages_dropped"].as_u64() > Some(0), "{health}");
    s.stop().await;
}

#[tokio::test]
async fn a_burst_of_ten_thousand_events_arrives_complete_and_in_order() {
    let s = TestServer::start().await;
    let (mut a, _) = Ws::connect(&s, "/api/v1/ws/events").await;
    let (mut b, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    let tasks: Vec<_> =
        (0..8).map(|worker| spawn_alerts(&s, (0..1250).map(|n| format!("{worker}-{n}")).collect())).collect();
    for t in tasks {
        t.await.expect("publisher");
    }
    for ws in [&mut a, &mut b] {
        let got = ws.events(10_000).await;
        let ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().expect("id")).collect();
        let parsed: Vec<(u64, u64)> = ids
            .iter()
            .map(|id| {
                let (ms, seq) = id.split_once('-').expect("ms-seq");
                (ms.parse().expect("ms"), seq.parse().expect("seq"))
            })
            .collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
        let unique: HashSet<&str> = got.iter().map(|e| e["data"]["message"].as_str().expect("m")).collect();
        assert_eq!(unique.len(), 10_000);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_two_ping_intervals() {
    let s = TestServer::with(|c| c.gateway.ping_interval = Duration::from_millis(200)).await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    // Reading answers pings, so stay away from the socket for longer than
    // two intervals: that silence is what is under test.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (frame, _) = ws.until_close().await;
    assert_eq!(close_code(&frame), 4000);
    // A client that answers (tungstenite does while reading) stays.
    let (mut live, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(900) {
        if let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(100), futures_util::StreamExt::next(&mut live.inner)).await
        {
            assert!(!matches!(msg, Message::Close(_)), "an answering client is not closed");
        }
    }
    assert_eq!(live.ask(json!({"type": "ping"})).await["type"], "pong");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_drains_clients_with_1001() {
    let s = TestServer::start().await;
    let (mut a, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    let (mut b, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    publish(&s, &alert("last words")).await;
    let stopping = tokio::spawn(s.stop());
    let (frame, events) = a.until_close().await;
    assert_eq!(close_code(&frame), 1001);
    assert_eq!(frame.map(|f| f.reason.to_string()), Some("server shutting down".into()));
    assert!(events.iter().any(|e| e["data"]["message"] == "last words") || events.is_empty());
    assert_eq!(close_code(&b.until_close().await.0), 1001);
    stopping.await.expect("server stops");
}

#[tokio::test]
async fn health_reports_connections_and_the_bus() {
    let s = TestServer::start().await;
    let (mut a, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    let (_b, _) = Ws::connect(&s, "/api/v1/ws/anomalies").await;
    let id = publish(&s, &alert("x")).await;
    a.events(1).await;
    let (status, health) = s.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    let ws = &health["websocket"];
    assert_eq!(ws["connections"], 2, "{health}");
    assert_eq!((ws["by_stream"]["dashboard"].as_u64(), ws["by_stream"]["anomalies"].as_u64()), (Some(1), Some(1)));
    assert_eq!(ws["messages_sent"], 1);
    assert_eq!(ws["messages_dropped"], 0);
    assert_eq!(health["bus"]["status"], "ok");
    assert_eq!(health["bus"]["kind"], "in-process");
    assert_eq!(health["bus"]["last_event_id"], id);
    s.stop().await;
}

/// 384 clients with `fanout_parallelism = 3`: every fan-out is cut into
/// three parts of 128 that run on two worker threads at once, while four
/// publishers post concurrently so groups of several events coalesce. Every
/// client must get every event once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_split_across_threads_keeps_every_clients_order() {
    let s = TestServer::with(|c| c.gateway.hub.fanout_parallelism = 3).await;
    const CLIENTS: usize = 384;
    const EVENTS: usize = 200;
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/events").await;
        readers.push(tokio::spawn(async move {
            let got = ws.events(EVENTS).await;
            got.iter()
                .map(|e| {
                    (e["id"].as_str().expect("id").to_owned(), e["data"]["message"].as_str().expect("msg").to_owned())
                })
                .collect::<Vec<_>>()
        }));
    }
    let publishers: Vec<_> =
        (0..4).map(|p| spawn_alerts(&s, (0..EVENTS / 4).map(|n| format!("p{p}-{n}")).collect())).collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let mut first: Option<Vec<(String, String)>> = None;
    for reader in readers {
        let got = reader.await.expect("reader");
        let messages: HashSet<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(messages.len(), EVENTS, "every event once");
        match &first {
            None => {
                let ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
                assert!(ids.windows(2).all(|w| id_key(w[0]) < id_key(w[1])), "in id order: {ids:?}");
                first = Some(got);
            }
            Some(first) => assert!(&got == first, "every client sees the same sequence"),
        }
    }
    let (_, health) = s.get("/api/v1/health").await;
    assert_eq!(health["websocket"]["fanout_parallelism"], 3, "{health}");
    s.stop().await;
}

/// `<ms>-<seq>` as numbers, so `9-0` sorts before `10-0`.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("ms-seq id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, readings};

fn alert(n: usize, severity: &str) -> Value {
    json!({"type": "system_alert", "data": {"alert_type": "test", "message": format!("alert {n}"), "severity": severity, "source": "it"}})
}

fn ids(playback: &Value) -> Vec<String> {
    playback["events"].as_array().expect("events").iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn published_events_play_back_in_order_without_gaps_or_duplicates() {
    let s = TestServer::start().await;
    let (status, first) = s.post("/api/v1/events", &alert(0, "info")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first_id = first["id"].as_str().expect("id").to_owned();
    for n in 1..=150 {
        assert_eq!(s.post("/api/v1/events", &alert(n, "warning")).await.0, StatusCode::ACCEPTED);
    }
    let mut seen = Vec::new();
    let mut since = first_id.clone();
    loop {
        let (_, page) = s.get(&format!("/api/v1/events?since={since}&limit=40")).await;
        assert_eq!(page["complete"], true);
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            break;
        }
        for e in page["events"].as_array().expect("events") {
            assert_eq!(
                (e["type"].as_str(), e["data"]["event_type"].as_str()),
                (Some("system_alert"), Some("system_alert"))
            );
            assert!(e["timestamp"].is_string());
            seen.push(e["data"]["message"].as_str().expect("message").to_owned());
        }
        since = page["last_id"].as_str().expect("last id").to_owned();
    }
    let expected: Vec<String> = (1..=150).map(|n| format!("alert {n}")).collect();
    assert_eq!(seen, expected);
    s.stop().await;
}

#[tokio::test]
async fn ingest_announces_metric_updated_and_filters_apply() {
    let s = TestServer::start().await;
    let a = s.create_machine("C-1").await;
    let b = s.create_machine("C-2").await;
    let mut batch = readings(&a, 4, 10.0);
    batch.extend(readings(&b, 4, 20.0));
    assert_eq!(s.post("/api/v1/readings", &json!(batch)).await.0, StatusCode::OK);
    let anomaly = json!({"type": "anomaly.detected", "data": {"machine_id": a, "severity": "critical", "anomaly_type": "spike", "value": 99.0}});
    assert_eq!(s.post("/api/v1/events", &anomaly).await.0, StatusCode::ACCEPTED);
    assert_eq!(s.post("/api/v1/events", &alert(1, "info")).await.0, StatusCode::ACCEPTED);

    let (_, metrics) = s.get(&format!("/api/v1/events?types=metric_updated&machine_id={a}")).await;
    let events = metrics["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{metrics}");
    assert_eq!((events[0]["data"]["value"].as_f64(), events[0]["data"]["unit"].as_str()), (Some(10.0), Some("kW")));

    let (_, critical) = s.get("/api/v1/events?types=anomaly_detected,system_alert&min_severity=warning").await;
    let types: Vec<&str> =
        critical["events"].as_array().expect("events").iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, vec!["anomaly_detected"]);
    s.stop().await;
}

#[tokio::test]
async fn bad_events_and_queries_are_refused_clearly() {
    let s = TestServer::start().await;
    let cases = [
        (json!({"type": "anomaly", "data": {}}), "type", "unknown_event_type"),
        (
            json!({"type": "system_alert", "data": {"alert_type": "a", "message": "m", "severity": "loud"}}),
            "data.severity",
            "invalid_value",
        ),
        (json!({"type": "system_alert", "data": {"message": "m", "severity": "info"}}), "data.alert_type", "required"),
        (json!({"type": "metric_updated", "data": {"metric_name": "kw", "value": "x"}}), "data.value", "invalid_type"),
        (json!({"type": "system_alert"}), "data", "invalid_field"),
        (json!({"type": "system_alert", "data": "text"}), "data", "invalid_type"),
    ];
    for (body, field, code) in cases {
        let e = assert_error(&s.post("/api/v1/events", &body).await, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(e["field"], field, "{body}");
    }
    assert_error(
        &s.send("POST", "/api/v1/events", "application/json", "{\"type\":").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &s.send("POST", "/api/v1/events", "text/plain", "{}").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    for (query, field) in [
        ("since=yesterday", "since"),
        ("types=nope", "types"),
        ("machine_id=x", "machine_id"),
        ("min_severity=loud", "min_severity"),
        ("limit=0", "limit"),
    ] {
        let got = s.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(
            (got.0, got.1["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
    assert_eq!(s.get("/api/v1/events").await.1["events"].as_array().map(Vec::len), Some(0), "nothing was published");
    s.stop().await;
}

#[tokio::test]
async fn durable_events_survive_a_restart_and_ids_keep_increasing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let first = s.post("/api/v1/events", &alert(0, "info")).await.1["id"].as_str().expect("id").to_owned();
    for n in 1..=5 {
        s.post("/api/v1/events", &alert(n, "info")).await;
    }
    s.stop().await;
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let after = s.post("/api/v1/events", &alert(6, "info")).await.1["id"].as_str().expect("id").to_owned();
    let (_, page) = s.get(&format!("/api/v1/events?since={first}")).await;
    let messages: Vec<&str> =
        page["events"].as_array().expect("events").iter().map(|e| e["data"]["message"].as_str().expect("m")).collect();
    assert_eq!(messages, vec!["alert 1", "alert 2", "alert 3", "alert 4", "alert 5", "alert 6"]);
    assert_eq!(ids(&page).last(), Some(&after));

    // "The latest N" of durable types comes from the log, so what was
    // published before the restart is still listed (the dashboard's event log).
    let (_, latest) = s.get("/api/v1/events?types=system_alert&limit=3").await;
    let messages: Vec<&str> = latest["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"]["message"].as_str().expect("m"))
        .collect();
    assert_eq!(messages, vec!["alert 4", "alert 5", "alert 6"]);
    s.stop().await;
}

//! `/metrics`: the Prometheus exposition moves when events flow, readings
//! arrive, requests are made and jobs finish; a secured server wants a token.

use enms_core::access::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, readings};
use crate::wsclient::{Ws, alert, publish};

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(s: &TestServer) -> String {
    let resp = s.request(reqwest::Method::GET, "/metrics").send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    let kind = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    resp.text().await.expect("text")
}

#[tokio::test]
async fn metrics_move_when_events_readings_requests_and_jobs_flow() {
    let s = TestServer::start().await;
    let before = scrape(&s).await;
    assert_eq!(sample(&before, "enms_ws_messages_sent_total"), Some(0.0), "{before}");
    assert_eq!(sample(&before, "enms_bus_up{kind=\"in-process\"}"), Some(1.0), "{before}");

    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/dashboard").await;
    for i in 0..5 {
        publish(&s, &alert(&format!("m{i}"))).await;
    }
    ws.events(5).await;
    let machine = s.create_machine("Meter-1").await;
    let (status, _) = s.post("/api/v1/readings", &json!({"readings": readings(&machine, 20, 5.0)})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, job) = s.post(&format!("/api/v1/baseline/train/{machine}"), &json!({})).await;
    let (mut training, _) =
        Ws::connect(&s, &format!("/api/v1/ws/training?last_event_id=0-0&machine_id={machine}")).await;
    loop {
        let e = training.next_json().await;
        if e["type"] == "training_completed" && e["data"]["job_id"] == job["id"] {
            break;
        }
    }

    let after = scrape(&s).await;
    assert_eq!(sample(&after, "enms_ws_connections{stream=\"dashboard\"}"), Some(1.0), "{after}");
    assert!(sample(&after, "enms_ws_messages_sent_total").is_some_and(|n| n >= 5.0), "{after}");
    assert!(sample(&after, "enms_event_delivery_seconds_count").is_some_and(|n| n >= 5.0), "{after}");
    assert!(after.contains("enms_event_delivery_seconds_bucket{le=\"0.005\"}"), "a histogram with buckets");
    assert_eq!(sample(&after, "enms_ingested_rows_total"), Some(20.0), "{after}");
    let publishes = "enms_http_requests_total{method=\"POST\",route=\"/api/v1/events\",status=\"202\"}";
    assert_eq!(sample(&after, publishes), Some(5.0), "{after}");
    // 20 readings are too few to train on: the job fails, and is counted.
    assert_eq!(sample(&after, "enms_jobs_total{type=\"baseline\",outcome=\"failed\"}"), Some(1.0), "{after}");
    assert!(after.contains("enms_job_duration_seconds_count{type=\"baseline\",outcome=\"failed\"} 1"), "{after}");
    ws.close().await;
    s.stop().await;
}

#[tokio::test]
async fn a_secured_server_wants_a_viewer_token_for_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = enms_store::connect(&crate::common::db_url(dir.path())).await.expect("store");
    let token = enms_server::auth::issue(store.as_ref(), "prometheus", Role::Viewer).await.expect("issue").token;
    store.close().await;
    let mut s = TestServer::start_in(dir.path(), |c| c.auth.required = true).await;
    assert_eq!(s.get("/metrics").await.0, StatusCode::UNAUTHORIZED);
    s.token = Some(token);
    let text = scrape(&s).await;
    let refused = "enms_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"401\"}";
    assert_eq!(sample(&text, refused), Some(1.0), "refusals are counted: {text}");
    s.stop().await;
}

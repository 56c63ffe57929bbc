use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, readings};

#[tokio::test]
async fn every_acknowledged_reading_survives_a_restart_exactly_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let id = s.create_machine("C-1").await;
    let batch = readings(&id, 3000, 12.0);
    let mut acknowledged = 0;
    for chunk in batch.chunks(1000) {
        let (status, body) = s.post("/api/v1/readings", &json!(chunk)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged += body["accepted"].as_u64().expect("accepted");
    }
    // The last chunk again: a client retrying after a lost answer.
    assert_eq!(s.post("/api/v1/readings", &json!(batch[2000..])).await.0, StatusCode::OK);
    s.stop().await;

    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    assert_eq!(s.count(&id).await, acknowledged);
    let (_, machines) = s.get("/api/v1/machines").await;
    assert_eq!(machines.as_array().map(Vec::len), Some(1));
    let (_, raw) = s.get(&format!("/api/v1/machines/{id}/readings?start=2000-01-01T00:00:00Z&limit=100000")).await;
    let stamps: Vec<&str> =
        raw["points"].as_array().expect("points").iter().map(|p| p["timestamp"].as_str().expect("ts")).collect();
    let mut unique = stamps.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3000, "no reading twice");
    s.stop().await;
}

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, readings};

#[tokio::test]
async fn ingest_then_query_raw_and_aggregated() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let batch = readings(&id, 96, 40.0);
    let (status, body) = s.post("/api/v1/readings", &json!({"readings": batch})).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(96)), "{body}");

    let start = batch[0]["timestamp"].as_str().expect("ts");
    let end = (chrono::DateTime::parse_from_rfc3339(batch[95]["timestamp"].as_str().expect("ts")).expect("ts")
        + chrono::Duration::seconds(1))
    .to_rfc3339();
    let q =
        |res: &str| format!("/api/v1/machines/{id}/readings?start={}&end={}&resolution={res}", enc(start), enc(&end));
    let (_, raw) = s.get(&q("raw")).await;
    assert_eq!(raw["points"].as_array().map(Vec::len), Some(96));
    assert_eq!(raw["points"][0]["power_kw"], 40.0);
    let (_, hourly) = s.get(&q("1h")).await;
    let points = hourly["points"].as_array().expect("points");
    assert_eq!(points.iter().map(|p| p["samples"].as_u64().expect("n")).sum::<u64>(), 96);
    assert!(points.iter().all(|p| p["energy_kwh"].as_f64() == Some(10.0 * p["samples"].as_f64().expect("n"))));
    assert_eq!(hourly["resolution"], "1h");

    // Readings are a day old: the machine has data but is offline.
    let (_, m) = s.get(&format!("/api/v1/machines/{id}")).await;
    assert_eq!(
        m["last_reading_at"].as_str().map(|t| t.starts_with(&batch[95]["timestamp"].as_str().expect("ts")[..16])),
        Some(true)
    );
    assert_eq!(m["status"], "offline");
    s.stop().await;
}

fn enc(t: &str) -> String {
    t.replace('+', "%2B")
}

#[tokio::test]
async fn a_fresh_reading_makes_the_machine_online() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let now = chrono::Utc::now().to_rfc3339();
    let row = json!({"machine_id": id, "timestamp": now, "power_kw": 1.0, "energy_kwh": 0.1});
    assert_eq!(s.post("/api/v1/readings", &json!([row])).await.0, StatusCode::OK);
    assert_eq!(s.get(&format!("/api/v1/machines/{id}")).await.1["status"], "online");
    s.stop().await;
}

#[tokio::test]
async fn ingest_is_idempotent_on_machine_and_timestamp() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let batch = readings(&id, 10, 40.0);
    for _ in 0..3 {
        assert_eq!(s.post("/api/v1/readings", &json!(batch)).await.0, StatusCode::OK);
    }
    assert_eq!(s.count(&id).await, 10);
    // Re-sending a corrected value replaces it rather than adding a row.
    let corrected = readings(&id, 10, 50.0);
    assert_eq!(s.post("/api/v1/readings", &json!(corrected)).await.0, StatusCode::OK);
    assert_eq!(s.count(&id).await, 10);
    let (_, raw) = s.get(&format!("/api/v1/machines/{id}/readings?start=2000-01-01T00:00:00Z")).await;
    assert!(raw["points"].as_array().expect("points").iter().all(|p| p["power_kw"] == 50.0));
    s.stop().await;
}

fn with(mut batch: Vec<Value>, row: usize, key: &str, value: Value) -> Value {
    batch[row][key] = value;
    json!(batch)
}

#[tokio::test]
async fn a_batch_with_a_bad_row_is_refused_whole_naming_row_and_field() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let good = readings(&id, 8, 40.0);
    let far_future = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let cases = [
        (with(good.clone(), 5, "machine_id", json!("not-a-uuid")), "readings[5].machine_id", "invalid_type"),
        (
            with(good.clone(), 5, "machine_id", json!("00000000-0000-0000-0000-000000000009")),
            "readings[5].machine_id",
            "unknown_machine",
        ),
        (with(good.clone(), 5, "power_kw", json!("forty")), "readings[5].power_kw", "invalid_type"),
        (with(good.clone(), 5, "power_kw", json!(-3.0)), "readings[5].power_kw", "out_of_range"),
        (with(good.clone(), 5, "energy_kwh", Value::Null), "readings[5].energy_kwh", "invalid_type"),
        (with(good.clone(), 5, "timestamp", json!(far_future)), "readings[5].timestamp", "future_timestamp"),
        (with(good.clone(), 5, "timestamp", json!("yesterday")), "readings[5].timestamp", "invalid_type"),
        (with(good.clone(), 5, "timestamp", json!("1970-01-01T00:00:00Z")), "readings[5].timestamp", "out_of_range"),
        (with(good.clone(), 5, "outdoor_temp_c", json!(500.0)), "readings[5].outdoor_temp_c", "out_of_range"),
        (with(good.clone(), 5, "extra", json!({"bad name!": 1.0})), "readings[5].extra", "invalid_name"),
        (with(good.clone(), 5, "voltage", json!(230)), "readings[5].voltage", "unknown_field"),
        (json!([{"machine_id": id, "power_kw": 1.0, "energy_kwh": 1.0}]), "readings[0].timestamp", "required"),
    ];
    for (body, field, code) in cases {
        let e = assert_error(&s.post("/api/v1/readings", &body).await, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(e["field"], field, "{e}");
        assert!(e["row"].is_u64(), "{e}");
    }
    assert_eq!(s.count(&id).await, 0, "no row of a refused batch is stored");
    s.stop().await;
}

#[tokio::test]
async fn malformed_oversized_empty_and_mistyped_bodies() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let row = serde_json::to_string(&readings(&id, 1, 1.0)[0]).expect("json");
    let json = "application/json";
    for bad in [
        row.replace("1.0", "NaN"),
        row.replace("\"power_kw\":1.0", "\"power_kw\":Infinity"),
        row.replace("\"power_kw\":1.0", "\"power_kw\":1e999"),
        format!("[{}", &row[..row.len() / 2]),
        "[{]".to_owned(),
        "\"readings\"".to_owned(),
    ] {
        let body = if bad.starts_with('[') || bad.starts_with('"') { bad } else { format!("[{bad}]") };
        assert_error(&s.send("POST", "/api/v1/readings", json, body).await, StatusCode::BAD_REQUEST, "malformed_json");
    }
    let e = assert_error(
        &s.send("POST", "/api/v1/readings", json, "[]").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_batch",
    );
    assert_eq!(e["field"], "readings");
    let too_many = readings(&id, 10_001, 1.0);
    assert_error(&s.post("/api/v1/readings", &json!(too_many)).await, StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large");
    assert_error(
        &s.send("POST", "/api/v1/readings", "text/csv", row.clone()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_error(
        &s.send("POST", "/api/v1/readings", "application/x-www-form-urlencoded", row).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_eq!(s.count(&id).await, 0);

    // Exactly 10,000 is allowed.
    let max = readings(&id, 10_000, 1.0);
    assert_eq!(s.post("/api/v1/readings", &json!(max)).await.0, StatusCode::OK);
    assert_eq!(s.count(&id).await, 10_000);
    s.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let s = TestServer::with(|c| c.max_json_bytes = 4096).await;
    let id = s.create_machine("C-1").await;
    let batch = readings(&id, 100, 1.0);
    assert_error(&s.post("/api/v1/readings", &json!(batch)).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(s.count(&id).await, 0);
    s.stop().await;
}

#[tokio::test]
async fn query_parameters_are_validated() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let base = format!("/api/v1/machines/{id}/readings");
    let cases = [
        ("?resolution=5m", "resolution"),
        ("?start=soon", "start"),
        ("?end=2020-13-01T00:00:00Z", "end"),
        ("?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "start"),
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
    ];
    for (query, field) in cases {
        let got = s.get(&format!("{base}{query}")).await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", got.1);
        assert_eq!(got.1["error"]["field"], field, "{query}");
    }
    assert_error(
        &s.get("/api/v1/machines/00000000-0000-0000-0000-000000000000/readings").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&s.get("/api/v1/machines/zzz/readings").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    s.stop().await;
}

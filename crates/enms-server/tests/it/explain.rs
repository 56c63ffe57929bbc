//! Explanations over HTTP: a spike caught by streaming detection, explained
//! with its expected and actual value, the signal that drove it, the excess
//! energy and its cost at the tariff, the checks for a compressor and a
//! summary; the seed's `POST /api/ai/analyze` by anomaly and by incident;
//! the refusals.

use chrono::{Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::analytics::machine_with_anomaly_model;
use crate::common::{TestServer, assert_error};
use crate::wsclient::Ws;

#[tokio::test]
async fn an_anomaly_is_explained_with_its_signal_excess_cost_checks_and_summary() {
    let s = TestServer::start().await;
    let (id, _, _) = machine_with_anomaly_model(&s, "Press-2").await;
    let (mut incidents, _) = Ws::connect(&s, "/api/v1/ws?types=incident_opened").await;

    // Between two of the week's quarter-hour readings: a reading at the
    // model's own interval, whatever the clock says (one a minute after the
    // last would be a fine reading, judged with the persistence rule).
    let ts = Utc::now().duration_trunc(Duration::minutes(15)).expect("trunc") - Duration::minutes(7);
    let spike = json!({"machine_id": id, "timestamp": ts.to_rfc3339(), "power_kw": 400.0, "energy_kwh": 100.0,
                       "production_units": 2.0, "outdoor_temp_c": 10.0});
    assert_eq!(s.post("/api/v1/readings", &json!({"readings": [spike]})).await.0, StatusCode::OK);
    let opened = incidents.next_json().await;
    let incident = opened["data"]["incident_id"].as_str().expect("an incident opened").to_owned();
    let (_, recent) = s.get(&format!("/api/v1/anomaly/recent?machine_id={id}&severity=critical")).await;
    let anomaly = recent[0]["id"].as_str().expect("a stored anomaly").to_owned();

    let (status, a) = s.get(&format!("/api/v1/anomalies/{anomaly}/analysis")).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!((a["pattern"]["name"].as_str(), a["machine_type"].as_str()), (Some("spike"), Some("compressor")));
    let ea = &a["expected_vs_actual"];
    assert_eq!((ea["metric"].as_str(), ea["actual"].as_f64()), (Some("power_kw"), Some(400.0)));
    assert!(
        ea["expected"].as_f64().is_some_and(|e| e < 100.0) && ea["deviation_pct"].as_f64().is_some_and(|d| d > 100.0),
        "{ea}"
    );
    let top = &a["contributions"][0];
    assert_eq!(top["signal"], "power_kw", "{}", a["contributions"]);
    assert!(top["share_pct"].as_f64().is_some_and(|p| p > 50.0), "{top}");
    let excess = &a["excess"];
    assert!(excess["kwh"].as_f64().is_some_and(|k| k > 0.0), "{excess}");
    assert!(excess["cost"].as_f64().is_some_and(|c| c > 0.0) && excess["currency"] == "EUR", "{excess}");
    let checks: Vec<&str> = a["checks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(checks[0].contains("intake filter"), "the compressor's own rule comes first: {checks:?}");
    let summary = a["summary"].as_str().unwrap();
    for part in [
        "Press-2 had a critical spike",
        "power_kw was 400.0",
        "power_kw contributed most",
        "kWh more than expected",
        "EUR",
        "First check",
    ] {
        assert!(summary.contains(part), "{part:?} in {summary}");
    }
    assert!(a["similar_episodes"].is_array());

    // The seed's /api/ai/analyze: the same analysis by anomaly, and by the
    // incident the spike opened.
    let (status, by_anomaly) = s.post("/api/ai/analyze", &json!({"anomaly_id": anomaly})).await;
    assert_eq!((status, &by_anomaly["summary"]), (StatusCode::OK, &a["summary"]));
    let (status, by_incident) = s.post("/api/ai/analyze", &json!({"incident_id": incident})).await;
    assert_eq!((status, &by_incident["anomaly_id"]), (StatusCode::OK, &a["anomaly_id"]), "{by_incident}");

    // Refusals.
    let unknown = uuid::Uuid::new_v4();
    assert_error(&s.get(&format!("/api/v1/anomalies/{unknown}/analysis")).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&s.post("/api/ai/analyze", &json!({"anomaly_id": unknown})).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &s.post("/api/ai/analyze", &json!({"incident_id": unknown})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&s.post("/api/ai/analyze", &json!({})).await, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let err = assert_error(
        &s.post("/api/ai/analyze", &json!({"anomaly_id": anomaly, "incident_id": incident})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    );
    assert_eq!(err["field"], "incident_id");
    assert_error(
        &s.post("/api/ai/analyze", &json!({"anomaly_id": "nope"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    s.stop().await;
}

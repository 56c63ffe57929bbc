//! Exports over a real socket: a raw export is the import format (exported
//! from one machine, imported into another, the same readings), a span of
//! several pages arrives whole and in order, an aggregated export matches
//! the aggregated query, and bad parameters are refused by name.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

async fn export(s: &TestServer, path: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let resp = s.request(reqwest::Method::GET, path).send().await.expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, resp.text().await.expect("whole body"), headers)
}

async fn raw_points(s: &TestServer, machine: &str) -> Vec<Value> {
    let (status, body) =
        s.get(&format!("/api/v1/machines/{machine}/readings?start=2000-01-01T00:00:00Z&limit=100000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["points"].as_array().expect("points").clone()
}

#[tokio::test]
async fn a_raw_export_imports_into_another_machine_as_the_same_readings() {
    let s = TestServer::start().await;
    let a = s.create_machine("Export-A").await;
    let b = s.create_machine("Export-B").await;
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let rows: Vec<Value> = (0..300)
        .map(|i| {
            let mut r = json!({
                "machine_id": a,
                "timestamp": (end - chrono::Duration::seconds(37 * i)).to_rfc3339(),
                "power_kw": 10.0 + (i as f64) / 7.0,
                "energy_kwh": 0.1 + (i as f64) / 1000.0,
            });
            // Some readings carry production, temperature and extra values,
            // some not: empty cells must stay absent, not become zeros.
            if i % 3 == 0 {
                r["production_units"] = json!(i % 5);
                r["extra"] = json!({"pressure_bar": 6.5 + (i as f64) / 100.0});
            }
            if i % 4 == 0 {
                r["outdoor_temp_c"] = json!(-3.25 + (i as f64) / 10.0);
                r["extra"]["flow.m3h"] = json!(i);
            }
            r
        })
        .collect();
    let (status, body) = s.post("/api/v1/readings", &json!(rows)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, csv, headers) = export(&s, &format!("/api/v1/machines/{a}/readings/export")).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    assert!(headers["content-disposition"].to_str().expect("ascii").contains("Export-A-"));
    let header = csv.lines().next().expect("header");
    assert_eq!(
        header, "timestamp,power_kw,energy_kwh,production_units,outdoor_temp_c,flow.m3h,pressure_bar",
        "the import's columns, then the extra values' names"
    );
    assert_eq!(csv.lines().count(), 301);

    let (status, body) = s.send("POST", "/api/v1/readings/import?machine=Export-B", "text/csv", csv).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(300)), "{body}");
    assert_eq!(raw_points(&s, &a).await, raw_points(&s, &b).await, "the round trip changes nothing");
    s.stop().await;
}

#[tokio::test]
async fn a_span_of_several_pages_arrives_whole_and_in_order() {
    let s = TestServer::start().await;
    let m = s.create_machine("Export-Long").await;
    // 25,000 readings: three pages of the export.
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let start = end - chrono::Duration::seconds(10 * 25_000);
    for chunk in 0..5 {
        let rows: Vec<Value> = (0..5_000)
            .map(|i| {
                let n = chunk * 5_000 + i;
                json!({"machine_id": m, "timestamp": (start + chrono::Duration::seconds(10 * n)).to_rfc3339(),
                       "power_kw": n as f64, "energy_kwh": 0.01})
            })
            .collect();
        let (status, body) = s.post("/api/v1/readings", &json!(rows)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, csv, _) = export(&s, &format!("/api/v1/machines/{m}/readings/export?format=csv")).await;
    assert_eq!(status, StatusCode::OK);
    let powers: Vec<f64> =
        csv.lines().skip(1).map(|l| l.split(',').nth(1).expect("power").parse().expect("number")).collect();
    assert_eq!(powers.len(), 25_000, "every reading once");
    assert!(powers.iter().enumerate().all(|(i, p)| *p == i as f64), "in time order, none twice");

    // Aggregated: one row per hour, as the aggregated query answers.
    let span = format!("start={}&end={}", start.to_rfc3339(), end.to_rfc3339()).replace('+', "%2B");
    let (_, csv, _) = export(&s, &format!("/api/v1/machines/{m}/readings/export?resolution=1h&{span}")).await;
    let (_, hourly) = s.get(&format!("/api/v1/machines/{m}/readings?resolution=1h&{span}")).await;
    let hourly = hourly["points"].as_array().expect("points");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "timestamp,power_kw,max_power_kw,energy_kwh,production_units,outdoor_temp_c,samples");
    assert_eq!(lines.len() - 1, hourly.len());
    let samples: u64 =
        lines[1..].iter().map(|l| l.rsplit(',').next().expect("samples").parse::<u64>().expect("n")).sum();
    assert_eq!(samples, 25_000);
    s.stop().await;
}

#[tokio::test]
async fn bad_export_parameters_are_refused_by_name() {
    let s = TestServer::start().await;
    let m = s.create_machine("Export-Bad").await;
    let err = assert_error(
        &s.get(&format!("/api/v1/machines/{m}/readings/export?format=xlsx")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    assert_eq!(err["field"], "format");
    let err = assert_error(
        &s.get(&format!("/api/v1/machines/{m}/readings/export?start=2026-02-01T00:00:00Z&end=2026-01-01T00:00:00Z"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_range",
    );
    assert_eq!(err["field"], "start");
    assert_error(
        &s.get(&format!("/api/v1/machines/{m}/readings/export?resolution=2h")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    // An end before any reading can be: the day before it, so only the header.
    let (status, csv, _) = export(&s, &format!("/api/v1/machines/{m}/readings/export?end=2000-01-01T00:00:00Z")).await;
    assert_eq!((status, csv.lines().count()), (StatusCode::OK, 1), "{csv}");
    assert_error(
        &s.get("/api/v1/machines/00000000-0000-0000-0000-000000000009/readings/export").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    s.stop().await;
}

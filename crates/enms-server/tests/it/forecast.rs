//! Forecasts over HTTP: the demo factory's machines forecast with their
//! backtest figures (and the seed's `/api/predictions` answering the same),
//! and the refusals: short history (saying how much is needed), a horizon
//! out of range, an unknown machine, a missing `machine_id`.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{C1, TestServer, assert_error};
use crate::wsclient::Ws;

#[tokio::test]
async fn a_demo_machine_is_forecast_a_week_ahead_with_intervals_and_its_backtest() {
    let s = TestServer::demo(42).await;
    let (status, f) = s.get(&format!("/api/v1/machines/{C1}/forecast?horizon_hours=168")).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(
        (f["signal"].as_str(), f["unit"].as_str(), f["horizon_hours"].as_u64()),
        (Some("power_kw"), Some("kW"), Some(168))
    );
    let points = f["points"].as_array().expect("points");
    assert_eq!(points.len(), 168);
    for p in points {
        let v = |k: &str| p[k].as_f64().unwrap_or(f64::NAN);
        assert!(v("lower_95") <= v("lower_80") && v("lower_80") <= v("expected"), "{p}");
        assert!(v("expected") <= v("upper_80") && v("upper_80") <= v("upper_95"), "{p}");
        assert!(v("lower_95") >= 0.0);
    }
    // Hourly steps from the hour after the last complete one.
    let t = |i: usize| chrono::DateTime::parse_from_rfc3339(points[i]["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!((t(1) - t(0)).num_minutes(), 60);
    let backtest = &f["backtest"];
    assert_eq!(backtest["origins"], 14, "{backtest}");
    let day1 = &backtest["accuracy"][0];
    assert_eq!(day1["horizon_day"], 1);
    for k in ["mape_pct", "cv_rmse_pct", "coverage_80_pct", "coverage_95_pct", "skill_vs_seasonal_naive"] {
        assert!(day1[k].is_number(), "{k} in {day1}");
    }
    assert_eq!(backtest["accuracy"].as_array().map(Vec::len), Some(7));
    assert_eq!(backtest["candidates"].as_array().map(Vec::len), Some(3));
    let chosen = f["method"].as_str().unwrap();
    let best = backtest["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .min_by(|a, b| a["day_ahead_rmse"].as_f64().unwrap().total_cmp(&b["day_ahead_rmse"].as_f64().unwrap()))
        .unwrap();
    assert_eq!(best["method"], chosen, "the method with the lowest day-ahead RMSE is used");
    assert!(f["expected_kwh"].as_f64().unwrap() > 0.0);
    // The demo's machines have a rated power: the drift watch is there.
    assert_eq!(f["threshold"]["name"], "rated_power_kw", "{}", f["threshold"]);

    // The seed's /api/predictions is the same forecast.
    let (status, p) = s.get(&format!("/api/predictions?machine_id={C1}&horizon_hours=168")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&p["method"], &p["backtest"]), (&f["method"], &f["backtest"]));
    s.stop().await;
}

#[tokio::test]
async fn a_forecast_refuses_short_history_bad_horizons_and_unknown_machines() {
    let s = TestServer::start().await;
    let id = s.create_machine("Compressor-new").await;
    // Three days of quarter-hour readings: not enough.
    let end = chrono::Utc::now() - chrono::Duration::hours(1);
    let rows: Vec<_> = (0..3 * 96)
        .map(|i| {
            let t = end - chrono::Duration::minutes(15 * i);
            json!({"machine_id": id, "timestamp": t.to_rfc3339(), "power_kw": 40.0, "energy_kwh": 10.0})
        })
        .collect();
    assert_eq!(s.post("/api/v1/readings", &json!(rows)).await.0, StatusCode::OK);
    let err = assert_error(
        &s.get(&format!("/api/v1/machines/{id}/forecast")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_data",
    );
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("21 days") && message.contains("3.0"), "says what it needs and has: {message}");
    for (q, code) in [
        ("horizon_hours=23", "out_of_range"),
        ("horizon_hours=169", "out_of_range"),
        ("horizon_hours=day", "invalid_parameter"),
    ] {
        let err = assert_error(
            &s.get(&format!("/api/v1/machines/{id}/forecast?{q}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
        assert_eq!(err["field"], "horizon_hours");
    }
    assert_error(
        &s.get("/api/v1/machines/00000000-0000-0000-0000-00000000abcd/forecast").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&s.get("/api/v1/machines/nope/forecast").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    let err = assert_error(&s.get("/api/predictions").await, StatusCode::UNPROCESSABLE_ENTITY, "missing_parameter");
    assert_eq!(err["field"], "machine_id");
    // A machine without readings has no history at all.
    let empty = s.create_machine("Compressor-empty").await;
    assert_error(
        &s.get(&format!("/api/predictions?machine_id={empty}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_data",
    );
    s.stop().await;
}

#[tokio::test]
async fn a_forecast_job_keeps_the_forecast_as_a_model_version_and_announces_it() {
    let s = TestServer::demo(42).await;
    let (mut ws, _) =
        Ws::connect(&s, &format!("/api/v1/ws?types=forecast_updated,training_completed&machine_id={C1}")).await;
    let (status, job) = s.post(&format!("/api/v1/forecast/train/{C1}"), &json!({"horizon_hours": 48})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["model_type"], "forecast");
    let announced = loop {
        let e = ws.next_json().await;
        if e["type"] == "forecast_updated" {
            break e;
        }
        assert!(e["data"]["model_type"] != "forecast" || e["data"]["status"] != "failed", "the job failed: {e}");
    };
    let d = &announced["data"];
    assert_eq!((d["machine_id"].as_str(), d["horizon_hours"].as_f64()), (Some(C1), Some(48.0)));
    assert!(d["accuracy"]["mape_pct"].is_number() && d["expected_kwh"].as_f64().is_some_and(|k| k > 0.0), "{d}");
    let (status, models) = s.get(&format!("/api/v1/models?machine_id={C1}&model_type=forecast")).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let kept = &models[0];
    assert_eq!((kept["active"].as_bool(), kept["version"].as_i64()), (Some(true), Some(1)));
    assert_eq!(kept["id"], d["model_id"]);
    assert_eq!(kept["metrics"]["method"], d["method"]);

    assert_error(
        &s.post(&format!("/api/v1/forecast/train/{C1}"), &json!({"horizon_hours": 500})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    );
    assert_error(
        &s.post("/api/v1/forecast/train/00000000-0000-0000-0000-00000000abcd", &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let err = assert_error(
        &s.post(&format!("/api/v1/forecast/train/{C1}"), &json!({"horizon_hours": 48.5})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    );
    assert_eq!(err["field"], "horizon_hours");
    // A machine with no history: the job fails and says why.
    let empty = s.create_machine("Compressor-empty").await;
    let (mut jobs, _) = Ws::connect(&s, &format!("/api/v1/ws?types=training_completed&machine_id={empty}")).await;
    let (status, _) = s.post(&format!("/api/v1/forecast/train/{empty}"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = jobs.next_json().await;
    assert_eq!(done["data"]["status"], "failed", "{done}");
    assert!(done["data"]["error_message"].as_str().is_some_and(|m| m.contains("21 days")), "{done}");
    s.stop().await;
}

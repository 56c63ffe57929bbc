//! Detection that follows the stream (docs/analytics.md, *Resolution*,
//! *Refresh by data*, *Budget control*): 5-second readings judged against a
//! model of 15-minute history, a lasting level shift learnt as the new
//! normal while an ongoing fault keeps alarming, and refreshes that follow
//! the data's own timestamps, so a replay gives the same findings at any
//! speed.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};
use crate::detection::{ingest, jobs_of, machine, noisy_days, retrain, shifted_days, time};
use crate::wsclient::Ws;

fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("time")
}

/// Adds `kw` to every reading in `[from, to)`.
fn with_fault(mut rows: Vec<Value>, from: DateTime<Utc>, to: DateTime<Utc>, kw: f64) -> Vec<Value> {
    for r in &mut rows {
        let t = time(&r["timestamp"]);
        if t >= from && t < to {
            let p = r["power_kw"].as_f64().expect("kw") + kw;
            r["power_kw"] = json!(p);
            r["energy_kwh"] = json!(p / 4.0);
        }
    }
    rows
}

/// Waits until the machine's detector holds no refresh and every job of the
/// machine has finished (refreshes included), and answers the jobs.
async fn settled(s: &TestServer, machine: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(120);
    loop {
        // The detector first: a refresh it asked for is pending from the
        // moment the reading that made it due was judged, before its job is
        // listed, until the readings held for it are judged.
        let (status, detector) = s.get(&format!("/api/v1/machines/{machine}/detector")).await;
        assert_eq!(status, StatusCode::OK, "{detector}");
        let jobs = jobs_of(s, machine).await;
        let list = jobs.as_array().cloned().unwrap_or_default();
        let done =
            list.iter().all(|j| ["completed", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or("")));
        if detector["refresh_pending"].is_null() && done {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "still refreshing: {detector} {jobs}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// The machine's saved anomalies with a reading time in `[from, to)`.
async fn flagged(s: &TestServer, machine: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
    let path = format!(
        "/api/v1/anomaly/recent?machine_id={machine}&limit=1000&since={}&until={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (status, body) = s.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("list").iter().filter(|a| time(&a["timestamp"]) < to).cloned().collect()
}

/// A machine with 20 days of 15-minute history (σ 0.5 kW) and a model of
/// it, then 5-second live readings for two hours with their own noise
/// (σ 2 kW: a 15-minute mean of such readings strays 0.15 kW), and one
/// minute at +30 kW: nothing from the noise, one critical episode for the
/// fault.
#[tokio::test]
async fn five_second_readings_against_a_fifteen_minute_model_alarm_on_the_fault_not_the_noise() {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let m = machine(&s, "Fine-1", 21).await;
    ingest(&s, noisy_days(&m, 20)).await;
    let metrics = retrain(&s, &mut ws, &m).await;
    assert_eq!(metrics["interval_s"], 900.0, "the model records its interval: {metrics}");
    // From 2025-01-21 09:00, daytime (30 kW expected), in 5-minute batches.
    let start = day0() + Duration::days(20) + Duration::hours(9);
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut gauss = move || {
        let mut u = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
    };
    let fault = start + Duration::minutes(90)..start + Duration::minutes(91);
    let rows: Vec<Value> = (1..=1440)
        .map(|i| {
            let ts = start + Duration::seconds(5 * i);
            let kw = 30.0 + 2.0 * gauss() + if fault.contains(&ts) { 30.0 } else { 0.0 };
            json!({"machine_id": m, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw * 5.0 / 3600.0,
                   "production_units": 10.0 * 5.0 / 900.0})
        })
        .collect();
    for batch in rows.chunks(60) {
        let (status, body) = s.post("/api/v1/readings", &json!({"readings": batch})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, episodes) = s
        .get(&format!(
            "/api/v1/anomaly/episodes?machine_id={m}&since={}",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .await;
    let episodes = episodes.as_array().expect("list");
    let summary: Vec<String> = episodes
        .iter()
        .map(|e| {
            format!("{} {} {} ×{} peak {}", e["start"], e["severity"], e["anomaly_type"], e["count"], e["peak_value"])
        })
        .collect();
    assert_eq!(episodes.len(), 1, "one episode, the fault's: {summary:#?}");
    let e = &episodes[0];
    assert!(time(&e["start"]) >= fault.start && time(&e["start"]) < fault.end, "{e}");
    assert_eq!(e["severity"], "critical", "{e}");
    // The detector says how it judged: 180 readings per trained interval,
    // with the spread it learnt from them (2 kW against 0.5 kW in training).
    let (status, d) = s.get(&format!("/api/v1/machines/{m}/detector")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert!((d["rate"].as_f64().expect("rate") - 180.0).abs() < 1.0, "{d}");
    let spread = d["spread"].as_f64().expect("spread");
    assert!((2.0..=13.5).contains(&spread), "{d}");
    assert_eq!((d["interval_s"].as_f64(), d["refresh_pending"].clone()), (Some(900.0), Value::Null), "{d}");
    assert_error(&s.get("/api/v1/machines/x/detector").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    let unknown = "/api/v1/machines/de7ec700-0000-0000-0000-000000000999/detector";
    assert_error(&s.get(unknown).await, StatusCode::NOT_FOUND, "not_found");
    let other = s.create_machine("No-Model").await;
    assert_error(&s.get(&format!("/api/v1/machines/{other}/detector")).await, StatusCode::CONFLICT, "no_active_model");
    s.stop().await;
}

/// Budget control by level shift: +10 kW for good from day 20. The shift
/// is one open episode; once it has lasted a day of data (and 100
/// readings) a `system_alert` says it is taken as the new normal, the model
/// is refreshed on the data since it began, and the machine stops
/// alarming. An ongoing fault of 12 hours, across a refresh by data at
/// midnight, keeps alarming to its end: its open episode is left out.
#[tokio::test]
async fn a_lasting_level_shift_becomes_normal_after_a_day_and_an_ongoing_fault_keeps_alarming() {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let changed = machine(&s, "Changed-1", 11).await;
    let faulty = machine(&s, "Faulty-1", 12).await;
    for m in [&changed, &faulty] {
        ingest(&s, noisy_days(m, 20)).await;
        retrain(&s, &mut ws, m).await;
    }
    let day = |d: i64| day0() + Duration::days(d);
    for d in 20..24 {
        for hour in shifted_days(&changed, d, 1, 8.0, 10.0).chunks(4) {
            ingest(&s, hour.to_vec()).await;
        }
    }
    let fault = (day(20) + Duration::hours(18), day(21) + Duration::hours(6));
    let rows = with_fault(
        [20, 21, 22].iter().flat_map(|d| shifted_days(&faulty, *d, 1, 8.0, 0.0)).collect(),
        fault.0,
        fault.1,
        10.0,
    );
    for hour in rows.chunks(4) {
        ingest(&s, hour.to_vec()).await;
    }
    let jobs = settled(&s, &changed).await;
    let triggers: Vec<&str> = jobs.iter().filter_map(|j| j["trigger_type"].as_str()).collect();
    assert!(triggers.contains(&"shift"), "a shift refresh: {triggers:?}");
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:#?}");
    let first_day = flagged(&s, &changed, day(20), day(21)).await.len();
    assert!(first_day >= 80, "the shift alarms at first: {first_day} of 96 readings");
    let later = flagged(&s, &changed, day(22), day(24)).await.len();
    assert!(later <= 4, "the new normal is learnt within the documented day and a bit: {later} findings on days 22–23");
    let (_, alerts) = s.get("/api/v1/events?types=system_alert&limit=10000").await;
    let accepted = alerts["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["data"]["alert_type"] == "level_shift_accepted" && e["data"]["details"]["machine_id"] == changed.as_str()
        })
        .count();
    assert_eq!(accepted, 1, "{alerts:#}");

    let jobs = settled(&s, &faulty).await;
    let data = jobs
        .iter()
        .filter(|j| j["trigger_type"] == "data")
        .min_by_key(|j| time(&j["params"]["end"]))
        .expect("a refresh by data");
    // A day of data after the training window's end (midnight): the
    // first reading past it.
    let end = time(&data["params"]["end"]);
    assert!(end > day(21) && end <= day(21) + Duration::minutes(15), "a day of data after training: {data}");
    assert!(data["metrics"]["left_out_episodes"].as_u64() >= Some(1), "the open fault is left out: {data}");
    let during = flagged(&s, &faulty, day(21), fault.1).await.len();
    assert!(during >= 20, "the fault alarms after the refresh too: {during} of 24 readings");
    let after = flagged(&s, &faulty, fault.1 + Duration::hours(2), day(23)).await.len();
    assert!(after <= 2, "and stops when it ends: {after}");
    s.stop().await;
}

/// What a replay leaves behind: the findings and the refreshes.
async fn replay(fast: bool) -> (Vec<(String, String, String)>, Vec<String>) {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let m = machine(&s, "Replay-1", 31).await;
    ingest(&s, noisy_days(&m, 20)).await;
    retrain(&s, &mut ws, &m).await;
    let day = |d: i64| day0() + Duration::days(d);
    let mut rows: Vec<Value> = (20..25).flat_map(|d| shifted_days(&m, d, 1, 8.0, 0.0)).collect();
    rows = with_fault(rows, day(21) + Duration::hours(10), day(21) + Duration::hours(11), 8.0);
    rows = with_fault(rows, day(23) + Duration::hours(2), day(23) + Duration::hours(3), 6.0);
    for hour in rows.chunks(4) {
        ingest(&s, hour.to_vec()).await;
        if !fast {
            settled(&s, &m).await;
        }
    }
    let jobs = settled(&s, &m).await;
    let mut refreshes: Vec<String> = jobs
        .iter()
        .filter(|j| j["trigger_type"] != "manual")
        .map(|j| format!("{} {} {}", j["trigger_type"], j["params"]["end"], j["status"]))
        .collect();
    refreshes.sort();
    let mut found: Vec<(String, String, String)> = flagged(&s, &m, day(20), day(26))
        .await
        .iter()
        .map(|a| (a["timestamp"].to_string(), a["severity"].to_string(), a["anomaly_type"].to_string()))
        .collect();
    found.sort();
    s.stop().await;
    (found, refreshes)
}

/// Five days of 15-minute data with two faults, streamed hour by hour:
/// once waiting for every refresh to finish before the next hour (live),
/// once as fast as the server takes it (a replay, a back-fill). The model
/// is refreshed by the data's own timestamps, once a day of it, and both
/// runs find exactly the same.
#[tokio::test]
async fn a_replay_refreshes_by_its_own_timestamps_and_finds_the_same_at_any_speed() {
    let (live, live_refreshes) = replay(false).await;
    let (fast, fast_refreshes) = replay(true).await;
    assert!(live_refreshes.len() >= 4, "a refresh per day of data: {live_refreshes:?}");
    assert!(
        live_refreshes.iter().all(|r| r.starts_with("\"data\"") && r.ends_with("\"completed\"")),
        "{live_refreshes:?}"
    );
    assert_eq!(live_refreshes, fast_refreshes);
    assert!(live.len() >= 4, "both faults found: {live:?}");
    assert_eq!(live, fast);
}

/// Budget control: the machine becomes three times noisier for good. Its
/// flags come as many short episodes, far above the 1 % budget; once half a
/// day of data is judged, with no episode open, the model is stale: a
/// `system_alert` `model_stale` gives the share, and a `budget` refresh
/// learns the latest data, flagged stretches included.
#[tokio::test]
async fn a_model_flagging_far_above_its_budget_is_stale_and_refreshed() {
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let m = machine(&s, "Noisier-1", 41).await;
    ingest(&s, noisy_days(&m, 20)).await;
    retrain(&s, &mut ws, &m).await;
    // From day 20: the same pattern with σ 1.5 kW instead of 0.5.
    let mut state: u64 = 0x5DEE_CE66_D1CE_4E5B;
    let mut gauss = move || {
        let mut u = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
    };
    let rows: Vec<Value> = (20 * 96..22 * 96)
        .map(|i| {
            let ts = day0() + Duration::minutes(15 * (i + 1));
            let busy = (6..22).contains(&chrono::Timelike::hour(&ts));
            let kw = if busy { 30.0 } else { 8.0 } + 1.5 * gauss();
            json!({"machine_id": m, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw / 4.0,
                   "production_units": if busy { 10.0 } else { 0.0 }})
        })
        .collect();
    for hour in rows.chunks(4) {
        ingest(&s, hour.to_vec()).await;
    }
    let jobs = settled(&s, &m).await;
    let budget =
        jobs.iter().find(|j| j["trigger_type"] == "budget").unwrap_or_else(|| panic!("a budget refresh: {jobs:#?}"));
    assert_eq!(budget["status"], "completed", "{budget}");
    let why = &budget["metrics"]["refresh"];
    assert_eq!(why["reason"], "budget", "{budget}");
    assert!(why["live_flagged_share"].as_f64() > Some(0.03), "{why}");
    assert_eq!(budget["params"]["leave_out"], "open", "only an open episode is left out: {budget}");
    let (_, alerts) = s.get("/api/v1/events?types=system_alert&limit=10000").await;
    let stale: Vec<&Value> = alerts["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["data"]["alert_type"] == "model_stale" && e["data"]["details"]["machine_id"] == m.as_str())
        .collect();
    assert!(!stale.is_empty(), "{alerts:#}");
    assert!(stale[0]["data"]["message"].as_str().is_some_and(|t| t.contains("budget of 1.0 %")), "{:#}", stale[0]);
    s.stop().await;
}

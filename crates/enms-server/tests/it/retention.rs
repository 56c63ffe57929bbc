//! Retention over real sockets: a server restarted with `[retention]`
//! prunes raw readings older than the horizon while new readings keep
//! arriving (none inside retention is lost); answers across the pruned
//! boundary come from the tiers that remain and say so (KPIs over whole
//! hours from the hour cells); what needs raw readings from before the
//! horizon — an old reading, a KPI window cut inside an hour, training — is
//! refused by name.

use std::time::Duration as StdDuration;

use chrono::{Duration, DurationRound, Utc};
use enms_store::retention::RetentionConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

fn q(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn raw_readings_past_retention_are_pruned_and_answered_by_the_tiers_that_remain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Utc::now().duration_trunc(Duration::minutes(15)).expect("trunc");
    let first = now - Duration::days(45);
    // 45 days of 15-minute readings, stored before retention is on.
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let id = s.create_machine("Keep-1").await;
    let old: Vec<Value> = (0..45 * 96)
        .map(|i| {
            json!({"machine_id": id, "timestamp": (first + Duration::minutes(15 * i)).to_rfc3339(),
                   "power_kw": 10.0 + (i % 7) as f64, "energy_kwh": 2.5, "production_units": 1.0})
        })
        .collect();
    for chunk in old.chunks(2_000) {
        let (status, body) = s.post("/api/v1/readings", &json!(chunk)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let whole = format!("start={}&end={}", q(first - Duration::days(1)), q(now + Duration::days(1)));
    let (_, daily_before) = s.get(&format!("/api/v1/machines/{id}/readings?resolution=1d&{whole}")).await;
    s.stop().await;

    // Restarted with raw readings kept 31 days, pruned in small batches,
    // while new readings arrive.
    let s = TestServer::start_in(dir.path(), |c| {
        c.retention = RetentionConfig {
            raw: Some(StdDuration::from_secs(31 * 86_400)),
            every: StdDuration::from_millis(200),
            batch: 100,
            ..RetentionConfig::default()
        }
    })
    .await;
    for i in 0..20 {
        let reading = json!({"machine_id": id, "timestamp": (now - Duration::days(25) + Duration::minutes(1) + Duration::seconds(i)).to_rfc3339(),
                             "power_kw": 1.0, "energy_kwh": 0.1});
        let (status, body) = s.post("/api/v1/readings", &json!([reading])).await;
        assert_eq!(status, StatusCode::OK, "a reading inside retention is taken while pruning: {body}");
    }
    let floor = (now - Duration::days(31)).duration_trunc(Duration::days(1)).expect("midnight");
    let kept = old.iter().filter(|r| r["timestamp"].as_str().map(|t| t >= floor.to_rfc3339().as_str()) == Some(true));
    let want_raw = kept.count() + 20;
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(30);
    let raw_count = |body: &Value| body["points"].as_array().map_or(0, Vec::len);
    loop {
        let (_, raw) = s
            .get(&format!(
                "/api/v1/machines/{id}/readings?resolution=raw&limit=100000&start={}&end={}",
                q(floor),
                q(now + Duration::days(1))
            ))
            .await;
        let (_, before_floor) = s
            .get(&format!(
                "/api/v1/machines/{id}/readings?resolution=raw&limit=100000&start={}&end={}",
                q(first - Duration::days(1)),
                q(floor)
            ))
            .await;
        if before_floor["answered_by"][0]["resolution"] == "1m" && raw_count(&raw) == want_raw {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pruned in time: {} raw of {want_raw}", raw_count(&raw));
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }

    // Daily buckets across the boundary: the same as before pruning, from
    // the day tier, plus the 20 new readings.
    let (_, daily) = s.get(&format!("/api/v1/machines/{id}/readings?resolution=1d&{whole}")).await;
    let samples = |v: &Value| {
        v["points"].as_array().expect("points").iter().map(|p| p["samples"].as_u64().expect("n")).sum::<u64>()
    };
    assert_eq!(samples(&daily), samples(&daily_before) + 20);
    assert_eq!(daily["answered_by"], json!([{"start": daily["start"], "end": daily["end"], "resolution": "1d"}]));

    // Raw asked across the floor: minute buckets before it, readings after,
    // and the answer says which is which.
    let span = format!("start={}&end={}", q(floor - Duration::days(2)), q(floor + Duration::days(1)));
    let (status, raw) = s.get(&format!("/api/v1/machines/{id}/readings?resolution=raw&limit=100000&{span}")).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let by = raw["answered_by"].as_array().expect("answered_by");
    assert_eq!(by.len(), 2, "{by:?}");
    assert_eq!((by[0]["resolution"].as_str(), by[1]["resolution"].as_str()), (Some("1m"), Some("raw")));
    assert_eq!(raw_count(&raw), 3 * 96, "one point per 15 minutes on both sides");

    // What needs raw readings from before the floor is refused by name.
    let old_reading = json!({"machine_id": id, "timestamp": (floor - Duration::days(3)).to_rfc3339(), "power_kw": 1.0, "energy_kwh": 0.1});
    let err = assert_error(
        &s.post("/api/v1/readings", &json!([old_reading])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "past_retention",
    );
    assert_eq!(err["field"], "readings[0].timestamp");
    // KPIs over whole hours read the hour cells, which outlive the raw
    // readings; an edge inside an hour needs the raw readings around it.
    let whole_hours = format!("start={}&end={}", q(floor - Duration::days(5)), q(floor - Duration::days(4)));
    let (status, kpis) = s.get(&format!("/api/v1/machines/{id}/kpis?{whole_hours}")).await;
    assert_eq!(status, StatusCode::OK, "{kpis}");
    assert_eq!(kpis["kpis"]["readings"], 96, "a day of 15-minute intervals: {kpis}");
    assert!((kpis["kpis"]["total_kwh"].as_f64().expect("kWh") - 96.0 * 0.25 * 13.0).abs() < 3.0 * 0.25 * 96.0);
    let cut = format!("start={}", q(floor - Duration::days(5) + Duration::minutes(7)));
    assert_error(
        &s.get(&format!("/api/v1/machines/{id}/kpis?{cut}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "past_retention",
    );
    let train = json!({"start": q(floor - Duration::days(5)), "end": q(floor + Duration::days(3))});
    let err = assert_error(
        &s.post(&format!("/api/v1/baseline/train/{id}"), &train).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "past_retention",
    );
    assert!(err["message"].as_str().is_some_and(|m| m.contains("retention.raw")), "{err}");
    let (_, jobs) = s.get("/api/v1/training/jobs").await;
    assert_eq!(jobs, json!([]), "nothing queued");
    s.stop().await;
}

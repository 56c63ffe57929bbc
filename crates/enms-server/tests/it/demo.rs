use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{C1, TestServer};

#[tokio::test]
async fn demo_has_five_machines_sixty_days_labelled_anomalies_and_live_readings() {
    let s = TestServer::demo(42).await;
    let (_, machines) = s.get("/api/v1/machines").await;
    let machines = machines.as_array().expect("array");
    let names: Vec<&str> = machines.iter().map(|m| m["name"].as_str().expect("name")).collect();
    for (i, name) in ["Compressor-1", "Compressor-2", "HVAC-1", "Furnace-1", "Conveyor-1"].iter().enumerate() {
        let m = machines.iter().find(|m| m["name"] == *name).unwrap_or_else(|| panic!("{name} missing: {names:?}"));
        assert_eq!(m["id"], format!("c0000000-0000-0000-0000-00000000000{}", i + 1));
        assert_eq!(m["status"], "online");
    }

    let (_, daily) = s.get(&format!("/api/v1/machines/{C1}/readings?start=2000-01-01T00:00:00Z&resolution=1d")).await;
    let days = daily["points"].as_array().expect("points");
    assert!((60..=62).contains(&days.len()), "{} days", days.len());
    let full_days = days.iter().filter(|d| d["samples"].as_u64().is_some_and(|n| n >= 96)).count();
    assert!(full_days >= 58, "{full_days} full days of 15-minute readings");

    let (status, injected) = s.get("/api/v1/demo/injected").await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> =
        injected.as_array().expect("array").iter().map(|a| a["kind"].as_str().expect("kind")).collect();
    for kind in ["spike", "stuck_sensor", "off_hours", "drift"] {
        assert!(kinds.contains(&kind), "{kind} not injected: {kinds:?}");
    }

    // Live readings arrive every 100 ms in this test.
    let before = s.get(&format!("/api/v1/machines/{C1}")).await.1["last_reading_at"].clone();
    let advanced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let now = s.get(&format!("/api/v1/machines/{C1}")).await.1["last_reading_at"].clone();
            if now != before {
                return now;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(advanced.is_ok(), "no live reading within 10 s");
    s.stop().await;
}

#[tokio::test]
async fn the_seed_makes_the_demo_reproducible() {
    let start = (chrono::Utc::now() - chrono::Duration::days(10)).date_naive().and_hms_opt(0, 0, 0).expect("midnight");
    let end = start + chrono::Duration::days(1);
    let day = format!(
        "/api/v1/machines/{C1}/readings?start={}Z&end={}Z&resolution=raw",
        start.format("%FT%T"),
        end.format("%FT%T")
    );
    let a = TestServer::demo(7).await;
    let first = a.get(&day).await.1["points"].clone();
    a.stop().await;
    let b = TestServer::demo(7).await;
    let second = b.get(&day).await.1["points"].clone();
    b.stop().await;
    let c = TestServer::demo(8).await;
    let other = c.get(&day).await.1["points"].clone();
    c.stop().await;
    assert_eq!(first.as_array().map(Vec::len), Some(96));
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[tokio::test]
async fn injected_list_is_not_served_without_demo() {
    let s = TestServer::start().await;
    let (status, body) = s.get("/api/v1/demo/injected").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("demo_disabled")));
    s.stop().await;
}

/// A fresh demo trains its first models, then runs detection over the whole
/// history as jobs: the faults injected into that history are stored
/// episodes before anyone asks, and each job says what it found.
#[tokio::test]
async fn a_fresh_demo_finds_the_faults_of_its_history_by_itself() {
    let end = enms_core::timestamp::parse("2026-01-20T00:00:00Z").expect("time");
    let s = TestServer::demo_until(42, Some(end)).await;
    let started = std::time::Instant::now();
    let (mut ws, _) = crate::wsclient::Ws::connect(&s, "/api/v1/ws/training?last_event_id=0-0").await;
    let mut detections = Vec::new();
    while detections.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(120), ws.next_json()).await.expect("the demo's jobs finish");
        if e["type"] == "training_completed" && e["data"]["model_type"] == "detection" {
            assert_eq!(e["data"]["status"], "completed", "{e}");
            detections.push(e);
        }
    }
    println!("history detection done {:.1} s after start", started.elapsed().as_secs_f64());
    let at = |v: &serde_json::Value, k: &str| v[k].as_str().and_then(enms_core::timestamp::parse).expect("time");
    let (_, injected) = s.get("/api/v1/demo/injected").await;
    let history: Vec<&serde_json::Value> =
        injected.as_array().expect("list").iter().filter(|a| at(a, "end") <= end).collect();
    assert!(history.len() >= 6, "{} faults injected into the history", history.len());
    let (status, episodes) = s.get("/api/v1/anomaly/episodes?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{episodes}");
    let episodes = episodes.as_array().expect("episodes");
    let mut missed = Vec::new();
    for fault in &history {
        let (from, to) = (at(fault, "start"), at(fault, "end") + chrono::Duration::minutes(15));
        let found = episodes
            .iter()
            .any(|e| e["machine_id"] == fault["machine_id"] && at(e, "start") <= to && at(e, "end") >= from);
        if !found {
            missed.push(fault["description"].clone());
        }
    }
    assert!(missed.is_empty(), "faults of the history without an episode: {missed:?}");
    let found: u64 = detections.iter().filter_map(|e| e["data"]["metrics"]["episodes_detected"].as_u64()).sum();
    assert!(found >= history.len() as u64, "the jobs report their episodes: {detections:?}");
}

/// The machine chart's band for raw readings is `expected ± 1.96 σ` from
/// the scores answer (the detector's reading-level spread at each level and
/// operating state). On the demo's normal history about 95 % of readings
/// fall inside it, on every machine: a "95 %" band means what it says.
#[tokio::test]
async fn about_95_percent_of_normal_readings_fall_inside_the_95_percent_band() {
    let end = enms_core::timestamp::parse("2026-03-10T00:00:00Z").expect("time");
    let s = TestServer::demo_until(7, Some(end)).await;
    let (mut ws, _) = crate::wsclient::Ws::connect(&s, "/api/v1/ws/training?last_event_id=0-0").await;
    let mut trained = 0;
    while trained < 10 {
        let e = tokio::time::timeout(Duration::from_secs(120), ws.next_json()).await.expect("the demo trains");
        if e["type"] == "training_completed" && e["data"]["model_type"] != "detection" {
            trained += 1;
        }
    }
    let at = |v: &serde_json::Value, k: &str| v[k].as_str().and_then(enms_core::timestamp::parse).expect("time");
    let (_, injected) = s.get("/api/v1/demo/injected").await;
    let faults: Vec<_> = injected
        .as_array()
        .expect("list")
        .iter()
        .map(|a| (a["machine_id"].clone(), at(a, "start"), at(a, "end")))
        .collect();
    let start = end - chrono::Duration::days(21);
    let mut shares = Vec::new();
    for i in 1..=5 {
        let machine = format!("c0000000-0000-0000-0000-00000000000{i}");
        let path = format!("/api/v1/machines/{machine}/scores?start={}&end={}", start.to_rfc3339(), end.to_rfc3339())
            .replace('+', "%2B");
        let (status, body) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (mut inside, mut n) = (0usize, 0usize);
        for p in body["scores"].as_array().expect("scores") {
            let t = at(p, "timestamp");
            let faulty = faults.iter().any(|(m, from, to)| {
                *m == machine.as_str()
                    && t >= *from - chrono::Duration::hours(1)
                    && t <= *to + chrono::Duration::hours(1)
            });
            let (Some(v), Some(e), Some(sd)) =
                (p["power_kw"].as_f64(), p["expected_power_kw"].as_f64(), p["sigma_power_kw"].as_f64())
            else {
                continue;
            };
            if faulty {
                continue;
            }
            n += 1;
            inside += usize::from((v - e).abs() <= 1.96 * sd);
        }
        let share = inside as f64 / n as f64;
        println!("{machine}: {inside} of {n} normal readings inside the band ({:.1} %)", share * 100.0);
        assert!(n > 1000, "{n} readings");
        shares.push(share);
    }
    shares.sort_by(f64::total_cmp);
    let median = shares[2];
    assert!((0.93..=0.97).contains(&median), "median share inside the band {:.1} %: {shares:?}", median * 100.0);
    assert!(shares[0] >= 0.90, "every machine's band holds at least 90 %: {shares:?}");
}

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

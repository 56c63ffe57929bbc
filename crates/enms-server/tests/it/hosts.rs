//! Hosts and the seed monitor's routes: a server sampling its own host
//! (`--monitor-self`), a host's readings sent by a client as the agent
//! sends them, the flat JSON of `/api/metrics/current|history`, the
//! `/api/ws/ws` and `/api/ws/alerts` WebSockets, the root `/health`, and
//! the refusals (unknown host, no samples, impossible values, bad windows).

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, assert_error};
use crate::wsclient::{WAIT, publish, ws_url};

fn monitored(interval_ms: u64) -> impl FnOnce(&mut enms_server::ServerConfig) {
    move |c| {
        c.monitor = Some(enms_host::MonitorConfig {
            interval: Duration::from_millis(interval_ms),
            name: Some("enms-self".into()),
            ..Default::default()
        })
    }
}

async fn create_host(s: &TestServer, name: &str) -> String {
    let (status, body) =
        s.post("/api/v1/machines", &json!({"name": name, "type": "host", "rated_power_kw": 0.3})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// A host reading as the agent sends it.
fn sample(machine: &str, at: chrono::DateTime<Utc>, cpu: f64) -> Value {
    json!({"machine_id": machine, "timestamp": at.to_rfc3339(), "power_kw": 0.2, "energy_kwh": 0.0003,
           "extra": {"cpu_percent": cpu, "memory_percent": 41.5, "disk_percent": 63.0, "disk_percent.root": 63.0,
                     "network_recv_bytes_per_s": 1200.0, "process_count": 212.0, "power_estimated": 1.0}})
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let msg =
            tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

#[tokio::test]
async fn the_server_samples_its_own_host_and_serves_it_as_the_seed_did() {
    let s = TestServer::with(monitored(300)).await;
    // The monitor registers the host and stores a sample within a few
    // intervals; the seed's poll then answers its flat JSON.
    let deadline = tokio::time::Instant::now() + WAIT;
    let current = loop {
        let (status, body) = s.get("/api/metrics/current").await;
        if status == StatusCode::OK {
            break body;
        }
        assert_error(&(status, body), StatusCode::NOT_FOUND, "no_samples");
        assert!(tokio::time::Instant::now() < deadline, "no sample of the server's host in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(current["host"], "enms-self");
    for field in ["cpu_percent", "memory_percent", "swap_percent", "disk_percent", "load_1", "process_count"] {
        assert!(current[field].is_number(), "{field} in {current}");
    }
    assert!((0.0..=100.0).contains(&current["cpu_percent"].as_f64().unwrap_or(-1.0)));
    assert_eq!(current["power_estimated"], true, "this VM has no readable RAPL counters");
    assert!(current["power_kw"].as_f64().unwrap_or(0.0) >= 0.1, "at least idle power of 0.2 kW rated: {current}");

    // The host is a machine of type host, listed with its newest sample.
    let (_, machines) = s.get("/api/v1/machines").await;
    let host = machines.as_array().unwrap().iter().find(|m| m["name"] == "enms-self").expect("registered").clone();
    assert_eq!(host["type"], "host");
    let (status, hosts) = s.get("/api/v1/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hosts[0]["name"], "enms-self");
    assert!(hosts[0]["latest"]["cpu_percent"].is_number(), "{hosts}");

    // /api/ws/ws sends the newest sample at once, then each new one as it
    // is stored, a few milliseconds after it was taken.
    let (mut ws, _) = connect_async(ws_url(&s, "/api/ws/ws")).await.expect("connects");
    let first = next_text(&mut ws).await;
    assert_eq!(first["host"], "enms-self");
    let first_at = first["timestamp"].as_str().unwrap().to_owned();
    let live = loop {
        let m = next_text(&mut ws).await;
        if m["timestamp"].as_str() != Some(first_at.as_str()) {
            break m;
        }
    };
    let taken = chrono::DateTime::parse_from_rfc3339(live["timestamp"].as_str().unwrap()).unwrap();
    let age = Utc::now() - taken.with_timezone(&Utc);
    assert!(age < Span::seconds(2), "a live sample arrives right after it is taken, got one {age} old");
    assert!(live["memory_percent"].is_number() && live["machine_id"] == host["id"], "{live}");

    // The history is the stored samples, oldest first.
    let (status, history) = s.get("/api/metrics/history?host=ENMS-SELF").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let samples = history["samples"].as_array().expect("samples");
    assert!(samples.len() >= 2, "{history}");
    assert!(samples.windows(2).all(|w| w[0]["timestamp"].as_str() < w[1]["timestamp"].as_str()));
    assert_eq!(history["truncated"], false);
    let (_, one) = s.get("/api/metrics/history?limit=1").await;
    assert_eq!((one["samples"].as_array().map(Vec::len), &one["truncated"]), (Some(1), &json!(true)));

    // The seed curls /health at the root.
    let (status, health) = s.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    s.stop().await;
}

#[tokio::test]
async fn a_hosts_readings_from_a_client_reach_the_seed_routes_and_bad_ones_are_refused_whole() {
    let s = TestServer::start().await;
    // No host yet: the seed's poll says so rather than inventing numbers.
    assert_error(&s.get("/api/metrics/current").await, StatusCode::NOT_FOUND, "no_samples");
    let web = create_host(&s, "web-1").await;
    let compressor = s.create_machine("Compressor-1").await;
    assert_error(&s.get("/api/metrics/current?host=web-1").await, StatusCode::NOT_FOUND, "no_samples");
    let err = assert_error(&s.get("/api/metrics/current?host=db-9").await, StatusCode::NOT_FOUND, "unknown_host");
    assert_eq!(err["field"], "host");
    // A compressor is a machine, not a host.
    assert_error(&s.get("/api/metrics/current?host=Compressor-1").await, StatusCode::NOT_FOUND, "unknown_host");

    let (mut ws, _) = connect_async(ws_url(&s, "/api/ws/ws?host=web-1")).await.expect("connects");
    let now = Utc::now();
    let (status, body) = s
        .post(
            "/api/v1/readings",
            &json!([sample(&web, now - Span::seconds(10), 12.5), sample(&web, now - Span::seconds(5), 14.0)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A compressor's reading with named values is not a host sample and
    // does not reach the host feed.
    let (status, _) = s
        .post(
            "/api/v1/readings",
            &json!([{"machine_id": compressor, "timestamp": now.to_rfc3339(),
        "power_kw": 40.0, "energy_kwh": 0.05, "extra": {"pressure_bar": 7.1}}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let pushed = next_text(&mut ws).await;
    assert_eq!((pushed["host"].as_str(), pushed["cpu_percent"].as_f64()), (Some("web-1"), Some(14.0)));
    assert_eq!(pushed["disk_percent.root"], 63.0);
    assert_eq!(pushed["power_estimated"], true);

    let (status, current) = s.get("/api/metrics/current").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((current["cpu_percent"].as_f64(), current["host"].as_str()), (Some(14.0), Some("web-1")));

    // Impossible values are refused with the row and field, nothing stored.
    for (extra, field) in [
        (json!({"cpu_percent": 140.0}), "readings[1].extra.cpu_percent"),
        (json!({"cpu_percent": 10.0, "memory_percent": -3.0}), "readings[1].extra.memory_percent"),
        (json!({"cpu_percent": 10.0, "disk_percent.var": 101.0}), "readings[1].extra.disk_percent.var"),
        (json!({"cpu_percent": 10.0, "network_sent_bytes_per_s": -1.0}), "readings[1].extra.network_sent_bytes_per_s"),
        (json!({"cpu_percent": 10.0, "process_count": 2.5}), "readings[1].extra.process_count"),
    ] {
        let good = sample(&web, now - Span::seconds(3), 20.0);
        let bad = json!({"machine_id": web, "timestamp": (now - Span::seconds(2)).to_rfc3339(), "power_kw": 0.2,
                         "energy_kwh": 0.0, "extra": extra});
        let err = assert_error(
            &s.post("/api/v1/readings", &json!([good, bad])).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "impossible_value",
        );
        assert_eq!(err["field"], field, "{err}");
    }
    assert_eq!(s.count(&web).await, 2, "no row of a refused batch was stored");

    // History windows are checked.
    let start = (now - Span::minutes(1)).to_rfc3339();
    let end = (now - Span::minutes(2)).to_rfc3339();
    let q = |k: &str, v: &str| format!("{k}={}", urlencode(v));
    let err = assert_error(
        &s.get(&format!("/api/metrics/history?host=web-1&{}&{}", q("start", &start), q("end", &end))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_range",
    );
    assert_eq!(err["field"], "start");
    assert_error(
        &s.get("/api/metrics/history?start=2020-01-01T00:00:00Z&end=2020-03-01T00:00:00Z").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "window_too_long",
    );
    assert_error(
        &s.get("/api/metrics/history?host=web-1&start=yesterday").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    assert_error(
        &s.get("/api/metrics/history?host=web-1&limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    let (status, history) = s.get("/api/metrics/history?host=web-1").await;
    assert_eq!(status, StatusCode::OK);
    let cpu: Vec<f64> =
        history["samples"].as_array().unwrap().iter().map(|v| v["cpu_percent"].as_f64().unwrap()).collect();
    assert_eq!(cpu, [12.5, 14.0]);

    // An unknown host on the WebSocket is refused before the upgrade.
    let refused = reqwest::Client::new()
        .get(format!("{}/api/ws/ws?host=nope", s.url))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let body: Value = refused.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "unknown_host");
    // A plain GET is told to upgrade.
    assert_error(&s.get("/api/ws/alerts").await, StatusCode::UPGRADE_REQUIRED, "websocket_upgrade_required");
    s.stop().await;
}

#[tokio::test]
async fn the_alerts_socket_pushes_anomalies_and_system_alerts_readably() {
    let s = TestServer::start().await;
    let m = s.create_machine("Compressor-2").await;
    let (mut ws, _) = connect_async(ws_url(&s, "/api/ws/alerts?min_severity=warning")).await.expect("connects");
    publish(
        &s,
        &json!({"type": "anomaly_detected", "data": {"machine_id": m, "severity": "info", "anomaly_type": "spike"}}),
    )
    .await;
    publish(
        &s,
        &json!({"type": "anomaly_detected", "data": {"machine_id": m, "severity": "critical",
        "anomaly_type": "spike", "metric": "power_kw", "value": 91.0, "expected_value": 40.0}}),
    )
    .await;
    publish(&s, &json!({"type": "metric_updated", "data": {"machine_id": m, "metric_name": "power_kw", "value": 1.0}}))
        .await;
    publish(&s, &json!({"type": "system_alert", "data": {"alert_type": "disk", "message": "disk 91 % full", "severity": "warning", "source": "it"}})).await;
    let a = next_text(&mut ws).await;
    assert_eq!(
        (a["type"].as_str(), a["event_type"].as_str(), a["severity"].as_str()),
        (Some("alert"), Some("anomaly_detected"), Some("critical")),
        "the info anomaly was filtered: {a}"
    );
    assert_eq!(a["machine_name"], "Compressor-2");
    assert_eq!(a["message"], "spike on Compressor-2: power_kw 91.00, expected 40.00");
    let b = next_text(&mut ws).await;
    assert_eq!(
        (b["event_type"].as_str(), b["message"].as_str()),
        (Some("system_alert"), Some("disk 91 % full")),
        "metric_updated is no alert: {b}"
    );
    let err = assert_error(
        &s.get("/api/ws/alerts?min_severity=loud").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    assert_eq!(err["field"], "min_severity");
    s.stop().await;
}

fn urlencode(v: &str) -> String {
    v.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_filling_disk_is_given_the_days_until_it_is_ninety_percent_full() {
    use chrono::DurationRound;
    let s = TestServer::start().await;
    let host = create_host(&s, "db-1").await;
    // Twelve days of samples every 10 minutes: the root disk grows from 60 %
    // by 1.5 points a day, a data disk stays at 40 %.
    let end = Utc::now().duration_trunc(Span::hours(1)).expect("hour");
    let start = end - Span::days(12);
    let mut readings = Vec::new();
    let mut at = start;
    while at < end {
        let days = (at - start).num_minutes() as f64 / 1_440.0;
        readings.push(json!({"machine_id": host, "timestamp": at.to_rfc3339(), "power_kw": 0.2, "energy_kwh": 0.0333,
            "extra": {"cpu_percent": 20.0, "disk_percent": 60.0 + 1.5 * days, "disk_percent.root": 60.0 + 1.5 * days,
                      "disk_percent.data": 40.0}}));
        at += Span::minutes(10);
    }
    let (status, body) = s.post("/api/v1/readings", &json!({"readings": readings})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = s.get(&format!("/api/v1/machines/{host}/thresholds")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let watches = body["thresholds"].as_array().expect("thresholds");
    let by_name = |n: &str| watches.iter().find(|t| t["name"] == n).unwrap_or_else(|| panic!("{n} in {body}"));
    for name in ["disk_percent", "disk_percent.root"] {
        let root = by_name(name);
        assert_eq!(root["limit"], 90.0);
        let slope = root["slope_per_day"].as_f64().expect("slope");
        assert!((slope - 1.5).abs() < 0.01, "{root}");
        // At the end the trend is at 78 %: 12 points to go at 1.5 a day.
        let days = root["days_to_limit"].as_f64().expect("rising");
        assert!((days - 8.0).abs() < 0.2, "{root}");
    }
    let data = by_name("disk_percent.data");
    assert!(data["days_to_limit"].is_null(), "a flat disk never fills: {data}");
    assert!(by_name("rated_power_kw")["days_to_limit"].is_null(), "flat power never reaches the rating: {body}");

    let unknown = s.get(&format!("/api/v1/machines/{}/thresholds", uuid::Uuid::new_v4())).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let bad = s.get("/api/v1/machines/not-a-uuid/thresholds").await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    s.stop().await;
}

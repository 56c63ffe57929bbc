//! The real `enms` binary: help, serve with a config file and graceful
//! SIGTERM, JSON logs, the CSV importer against a live server, and a
//! notification that outlives a crash.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::common::TestServer;
use crate::sinks::WAIT;

const BIN: &str = env!("CARGO_BIN_EXE_enms");

#[tokio::test]
async fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["import", "--help"],
        &["export", "--help"],
        &["db", "stats", "--help"],
        &["bench", "--help"],
        &["bench", "ingest", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().await.expect("run enms");
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[tokio::test]
async fn serve_prints_its_url_answers_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("enms.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n[demo]\nenabled = true\nhistory_days = 2\n", tmp.path().join("data")),
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn enms serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("URL printed in time")
        .expect("read");
    let line = line.expect("a line");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("URL in the line").to_owned();

    let health: serde_json::Value =
        reqwest::get(format!("{url}api/v1/health")).await.expect("get").json().await.expect("json");
    assert_eq!((health["status"].as_str(), health["demo"].as_bool()), (Some("ok"), Some(true)));

    let ws_url = format!("{}api/v1/ws/dashboard", url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket connects");

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    // The open WebSocket is drained with 1001 before the process exits.
    let close = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("close in time") {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let status =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "graceful exit: {status}");
    let mut logs = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut logs).await.expect("logs");
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(logs.contains("server stopped"), "{logs}");
}

#[tokio::test]
async fn serve_refuses_a_bad_config_file_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("enms.toml");
    std::fs::write(&config, "bind = 8080\n").expect("write");
    let out = Command::new(BIN).args(["serve", "--config"]).arg(&config).output().await.expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config file") && err.contains("bind"), "{err}");
}

#[tokio::test]
async fn import_sends_a_csv_file_and_names_the_bad_line() {
    let s = TestServer::start().await;
    let id = s.create_machine("Press-1").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("press.csv");
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let mut csv = String::from("timestamp,power_kw,energy_kwh\n");
    for i in 0..2500 {
        csv.push_str(&format!("{},{},{}\n", (end - chrono::Duration::minutes(i)).to_rfc3339(), 3.0, 0.05));
    }
    std::fs::write(&file, &csv).expect("write");
    let out = Command::new(BIN)
        .args(["import", "--quiet", "--batch", "1000", "--machine", "Press-1", "--server", &s.url])
        .arg(&file)
        .output()
        .await
        .expect("run import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2500 readings"));
    assert_eq!(s.count(&id).await, 2500);

    let bad = format!("{}x,1,1\n", csv);
    std::fs::write(&file, bad).expect("write");
    let out = Command::new(BIN)
        .args(["import", "--machine", "Press-1", "--server", &s.url])
        .arg(&file)
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2502"), "{err}");

    // Exported by the binary, imported back into another machine: the same.
    let copy = s.create_machine("Press-2").await;
    let exported = tmp.path().join("out.csv");
    let out = Command::new(BIN)
        .args(["export", "--machine", "press-1", "--server", &s.url, "--json", "-o"])
        .arg(&exported)
        .output()
        .await
        .expect("run export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["rows"], 2500, "{summary}");
    assert!(!tmp.path().join("out.csv.part").exists(), "renamed once whole");
    let out = Command::new(BIN)
        .args(["import", "--quiet", "--machine", "Press-2", "--server", &s.url])
        .arg(&exported)
        .output()
        .await
        .expect("run import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = |m: &str| format!("/api/v1/machines/{m}/readings?start=2000-01-01T00:00:00Z&limit=100000");
    assert_eq!(s.get(&all(&id)).await.1["points"], s.get(&all(&copy)).await.1["points"]);
    let out = Command::new(BIN)
        .args(["export", "--machine", "press-1", "--server", &s.url, "--resolution", "2h"])
        .output()
        .await
        .expect("run export");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resolution"), "the server's refusal is shown");
    s.stop().await;
}

/// `enms bench fanout` against a live server: its own WebSocket client
/// receives every event on every connection exactly once, and a message
/// reaches the client's socket no later than the client reads it.
#[tokio::test]
async fn bench_fanout_delivers_every_event_to_every_client_once() {
    let s = TestServer::start().await;
    let out = Command::new(BIN)
        .args(["bench", "fanout", "--url", &s.url, "--clients", "20", "--events", "50", "--rate", "1000", "--json"])
        .output()
        .await
        .expect("run enms bench fanout");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        (&report["expected"], &report["delivered"], &report["lost"], &report["duplicated"]),
        (&1000.into(), &1000.into(), &0.into(), &0.into()),
        "{report}"
    );
    for p in ["p50", "p99", "max"] {
        let (arrived, read) = (report["latency_ms"][p].as_f64(), report["read_latency_ms"][p].as_f64());
        assert!(arrived.zip(read).is_some_and(|(a, r)| a > 0.0 && a <= r), "{p}: {report}");
    }
    s.stop().await;
}

/// A secured server used with every way of sending a token — header, the
/// query string on the WebSocket and SSE handshakes (and, refused, on REST),
/// the WebSocket subprotocol, a wrong token — logs at debug level and
/// answers `/metrics` without the token appearing anywhere.
#[tokio::test]
async fn tokens_never_reach_the_log_or_the_metrics() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().to_str().expect("utf-8 path");
    let out = Command::new(BIN)
        .args(["token", "create", "--role", "admin", "--name", "ops", "--data-dir", data])
        .output()
        .await
        .expect("token create");
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let secret = token.trim_start_matches("enms_").to_owned();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--auth", "required", "--log-level", "debug", "--data-dir", data])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn enms serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("URL printed in time")
        .expect("read")
        .expect("a line");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("URL").trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{url}{path}"));
    assert_eq!(get("/api/v1/machines").bearer_auth(&token).send().await.expect("get").status(), 200);
    assert_eq!(get(&format!("/api/v1/machines?token={token}")).send().await.expect("get").status(), 401);
    let ws = url.replacen("http://", "ws://", 1);
    let (mut a, _) =
        tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws/dashboard?token={token}")).await.expect("ws ?token=");
    a.next().await.expect("connection message").expect("frame");
    let mut req = format!("{ws}/api/v1/ws/anomalies").into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", format!("enms, bearer.{token}").parse().expect("header"));
    let (mut b, _) = tokio_tungstenite::connect_async(req).await.expect("ws subprotocol");
    b.next().await.expect("connection message").expect("frame");
    assert!(tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws/dashboard?token={token}x")).await.is_err());
    let mut sse = get(&format!("/api/v1/events/stream?token={token}")).send().await.expect("sse");
    assert_eq!(sse.status(), 200);
    sse.chunk().await.expect("first bytes");
    drop(sse);
    let metrics = get("/metrics").bearer_auth(&token).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("enms_"), "{metrics}");
    drop((a, b));
    let pid = child.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("wait");
    let mut logs = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut logs).await.expect("logs");
    assert!(logs.lines().count() >= 5, "debug logs were written: {logs}");
    assert!(!logs.contains(&secret), "the token is in the log:\n{logs}");
    assert!(!metrics.contains(&secret), "the token is in /metrics");
}

/// A notification stored while its receiver is away survives a crash of
/// the server (SIGKILL) and is delivered once after the restart.
#[tokio::test]
async fn a_notification_stored_before_a_crash_is_delivered_once_after_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("enms.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[notify]\nretry_after = \"200ms\"\nretry_max = \"500ms\"\n\
             [notify.channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             [[notify.rules]]\nname = \"alerts\"\nevents = [\"system_alert\"]\nchannels = [\"ops\"]\n",
            tmp.path().join("data")
        ),
    )
    .expect("write");
    let start = || async {
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn enms serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.expect("URL in time");
        let line = line.expect("read").expect("a line");
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("URL").to_owned();
        (child, url)
    };
    let log = |url: String| async move {
        let list: Value =
            reqwest::get(format!("{url}api/v1/notifications")).await.expect("get").json().await.expect("json");
        list.as_array().expect("list").clone()
    };
    let (mut first, url) = start().await;
    let event = json!({"type": "system_alert", "data": {"alert_type": "disk", "message": "disk 95% full", "severity": "critical"}});
    let answer = reqwest::Client::new().post(format!("{url}api/v1/events")).json(&event).send().await.expect("publish");
    assert!(answer.status().is_success());
    // Stored and tried (nobody listens yet), then the process is killed.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = log(url.clone()).await;
        if list.len() == 1 && list[0]["attempts"].as_i64() >= Some(1) {
            assert_eq!(list[0]["status"], "pending");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stored and tried: {list:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().expect("SIGKILL");
    first.wait().await.expect("reaped");

    let receiver = crate::sinks::Receiver::start(port, &[]).await;
    let (mut second, url) = start().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let delivered = loop {
        let list = log(url.clone()).await;
        if list.first().is_some_and(|n| n["status"] == "delivered") {
            break list;
        }
        assert!(tokio::time::Instant::now() < deadline, "delivered after the restart: {list:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(delivered.len(), 1, "the event was not notified twice: {delivered:#?}");
    let got = receiver.got();
    assert_eq!(got.len(), 1, "once: {got:#?}");
    assert_eq!(got[0].body["title"], "disk 95% full (critical)");
    assert_eq!(crate::sinks::header(&got[0], "idempotency-key"), delivered[0]["key"].as_str().expect("key"));
    second.start_kill().expect("kill");
    second.wait().await.expect("reaped");
}

/// `enms db stats` reads the database directly: rows per level, bytes and
/// where retention keeps each level from.
#[tokio::test]
async fn db_stats_shows_rows_and_bytes_per_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let id = s.create_machine("Stats-1").await;
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let end = chrono::DurationRound::duration_trunc(end, chrono::Duration::hours(1)).expect("trunc");
    // 600 one-minute readings: 10 hours.
    let rows: Vec<serde_json::Value> = (0..600)
        .map(|i| {
            serde_json::json!({"machine_id": id, "timestamp": (end - chrono::Duration::minutes(i)).to_rfc3339(),
                               "power_kw": 5.0, "energy_kwh": 0.08})
        })
        .collect();
    let (status, body) = s.post("/api/v1/readings", &serde_json::json!(rows)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    s.stop().await;
    let out = Command::new(BIN)
        .args(["db", "stats", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("run db stats");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let level = |name: &str| stats["levels"].as_array().expect("levels").iter().find(|l| l["level"] == name).cloned();
    let (raw, minutes, hours) = (level("raw").expect("raw"), level("1m").expect("1m"), level("1h").expect("1h"));
    assert_eq!(
        (raw["rows"].as_u64(), minutes["rows"].as_u64(), hours["rows"].as_u64()),
        (Some(600), Some(600), Some(11))
    );
    assert!(raw["bytes"].as_u64().is_some_and(|b| b > 0), "{stats}");
    assert_eq!(raw["kept_from"], serde_json::Value::Null, "no retention: everything kept");
    let text = Command::new(BIN).args(["db", "stats", "--data-dir"]).arg(dir.path()).output().await.expect("run");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Stats-1: raw 600") && text.contains("everything"), "{text}");
}

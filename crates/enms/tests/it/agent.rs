//! `enms agent` against a live server: it registers its host, sends
//! samples through the ingest path, keeps them on disk through a server
//! outage and its own hard kill, and sends the backlog when the server is
//! back — every sample it spooled reaches the server.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::common::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_enms");
const WAIT: Duration = Duration::from_secs(20);

fn agent(url: &str, spool: &Path) -> Child {
    Command::new(BIN)
        .args(["agent", "--server", url, "--interval", "250ms", "--name", "line-gateway-1", "--spool"])
        .arg(spool)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn enms agent")
}

/// Timestamps (ms) of every reading the server holds for the machine.
async fn stored(s: &TestServer, machine: &str) -> BTreeSet<i64> {
    let (status, body) = s
        .get(&format!("/api/v1/machines/{machine}/readings?start=2000-01-01T00:00:00Z&resolution=raw&limit=100000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["points"].as_array().expect("points").iter().map(|p| millis(&p["timestamp"])).collect()
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).expect("RFC 3339").timestamp_millis()
}

/// The samples the spool still holds unsent (the cursor's file from its offset).
fn unsent(spool: &Path) -> BTreeSet<i64> {
    let cursor = std::fs::read_to_string(spool.join("cursor")).unwrap_or_else(|_| "0 0".into());
    let mut parts = cursor.split_whitespace().map(|p| p.parse::<u64>().expect("cursor numbers"));
    let (generation, offset) = (parts.next().expect("gen"), parts.next().expect("offset"));
    let bytes = std::fs::read(spool.join(format!("spool-{generation}.jsonl"))).unwrap_or_default();
    bytes[offset as usize..]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| millis(&serde_json::from_slice::<Value>(l).expect("a spooled reading")["timestamp"]))
        .collect()
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_agent_buffers_through_an_outage_and_its_own_kill_and_loses_no_sample() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    std::fs::create_dir_all(&db).expect("db dir");
    let spool = tmp.path().join("spool");
    let s = TestServer::start_in(&db, |_| {}).await;
    let url = s.url.clone();
    let bind = url.trim_start_matches("http://").to_owned();
    let mut child = agent(&url, &spool);

    // It registers its host and its samples arrive.
    until("the host to register and send", || async {
        let (_, hosts) = s.get("/api/v1/hosts").await;
        hosts.as_array().and_then(|h| h.first()).is_some_and(|h| h["latest"].is_object())
    })
    .await;
    let (_, hosts) = s.get("/api/v1/hosts").await;
    let machine = hosts[0]["machine_id"].as_str().expect("id").to_owned();
    let (_, m) = s.get(&format!("/api/v1/machines/{machine}")).await;
    assert_eq!((m["name"].as_str(), m["type"].as_str()), (Some("line-gateway-1"), Some("host")));
    until("a few samples", || async { stored(&s, &machine).await.len() >= 3 }).await;
    let before = stored(&s, &machine).await;

    // The server goes away; the agent keeps sampling into its spool.
    s.stop().await;
    until("samples spooled during the outage", || async { unsent(&spool).len() >= 4 }).await;
    // A hard kill of the agent mid-outage, then a new agent on the same spool.
    child.kill().await.expect("kill -9");
    let spooled_by_first = unsent(&spool);
    let mut child = agent(&url, &spool);
    until("the second agent to spool more", || {
        let spooled = spooled_by_first.clone();
        let spool = spool.clone();
        async move { unsent(&spool).len() >= spooled.len() + 3 }
    })
    .await;

    // The server is back where it was; the backlog goes in order.
    let s = TestServer::start_on(&db, &bind, |_| {}).await;
    let waiting = unsent(&spool);
    assert!(waiting.is_superset(&spooled_by_first), "the restart kept what the killed agent had spooled");
    until("the backlog to be sent", || async { stored(&s, &machine).await.is_superset(&waiting) }).await;
    let after = stored(&s, &machine).await;
    assert!(after.is_superset(&before), "nothing stored before the outage went missing");
    // Samples keep flowing after the backlog.
    let last = *after.last().expect("readings");
    until("live samples after the backlog", || async { stored(&s, &machine).await.last().is_some_and(|t| *t > last) })
        .await;
    // One host machine, not one per agent start.
    let (_, hosts) = s.get("/api/v1/hosts").await;
    assert_eq!(hosts.as_array().map(Vec::len), Some(1), "{hosts}");
    child.kill().await.expect("kill");
    s.stop().await;
}

#[tokio::test]
async fn the_agent_refuses_bad_flags_clearly() {
    for (args, needle) in [
        (&["--interval", "10ms"][..], "--interval: 10ms"),
        (&["--interval", "soon"][..], "--interval"),
        (&["--rated-power-kw=-1"][..], "--rated-power-kw"),
        (&["--name", " "][..], "--name"),
    ] {
        let out = Command::new(BIN)
            .args(["agent", "--server", "http://127.0.0.1:9"])
            .args(args)
            .output()
            .await
            .expect("run enms agent");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

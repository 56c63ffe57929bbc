//! The `enms` binary as a client: token and user management, watch (with a server
//! restart in the middle), train with its progress, publish, machines,
//! detect, and config check.

use std::process::Stdio;
use std::time::Duration;

use enms_core::access::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStderr, ChildStdout, Command};

use crate::common::seeded_machine;
use crate::common::{TestServer, db_url};
use crate::wsclient::{WAIT, alert, publish};

const BIN: &str = env!("CARGO_BIN_EXE_enms");

/// A server requiring tokens (the test's own requests use an admin one),
/// and an operator token for the CLI.
async fn secured(dir: &std::path::Path) -> (TestServer, String) {
    let store = enms_store::connect(&db_url(dir)).await.expect("store");
    let token = enms_server::auth::issue(store.as_ref(), "cli", Role::Operator).await.expect("issue").token;
    let admin = enms_server::auth::issue(store.as_ref(), "test", Role::Admin).await.expect("issue").token;
    store.close().await;
    let mut server = TestServer::start_on(dir, "127.0.0.1:0", |c| c.auth.required = true).await;
    server.token = Some(admin);
    (server, token)
}

fn enms(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("ENMS_TOKEN").env_remove("ENMS_SERVER").kill_on_drop(true);
    cmd
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> String {
    tokio::time::timeout(WAIT, lines.next_line()).await.expect("a line in time").expect("read").expect("not at the end")
}

async fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("finishes").expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn token_create_list_and_revoke_work_on_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let (ok, token, _) =
        output(&mut enms(&["token", "create", "--role", "operator", "--name", "ci", "--data-dir", data])).await;
    assert!(ok && token.trim().starts_with("enms_"), "{token}");
    let (ok, _, err) =
        output(&mut enms(&["token", "create", "--role", "viewer", "--name", "CI", "--data-dir", data])).await;
    assert!(!ok && err.contains("already taken"), "{err}");
    let (ok, _, err) =
        output(&mut enms(&["token", "create", "--role", "root", "--name", "x", "--data-dir", data])).await;
    assert!(!ok && err.contains("root"), "{err}");
    let (ok, list, _) = output(&mut enms(&["token", "list", "--data-dir", data])).await;
    assert!(ok && list.contains("ci") && list.contains("operator") && list.contains("active"), "{list}");
    assert!(!list.contains(token.trim()), "the secret is never listed");
    // The token works against a server on that database, until revoked.
    let mut server = TestServer::start_on(dir.path(), "127.0.0.1:0", |c| c.auth.required = true).await;
    server.token = Some(token.trim().to_owned());
    assert_eq!(server.get("/api/v1/machines").await.0, reqwest::StatusCode::OK);
    server.stop().await;
    let (ok, _, _) = output(&mut enms(&["token", "revoke", "ci", "--data-dir", data])).await;
    assert!(ok);
    let (_, list, _) = output(&mut enms(&["token", "list", "--data-dir", data])).await;
    assert!(list.contains("revoked"), "{list}");
}

/// `enms` with `input` on its standard input (no terminal: the password
/// is read as one line).
async fn with_stdin(args: &[&str], input: &str) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child =
        enms(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    output_of(child).await
}

async fn output_of(child: tokio::process::Child) -> (bool, String, String) {
    let out =
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("ends").expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_create_reads_the_password_and_the_user_signs_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let create = ["user", "create", "--role", "operator", "--name", "ada", "--data-dir", data];
    let (ok, _, err) = with_stdin(&create, "analytical engine\n").await;
    assert!(ok, "{err}");
    assert!(err.contains("Created operator user \"ada\""), "{err}");
    let (ok, _, err) = with_stdin(&create, "analytical engine\n").await;
    assert!(!ok && err.contains("already exists"), "{err}");
    let weak = ["user", "create", "--role", "viewer", "--name", "bob", "--data-dir", data];
    let (ok, _, err) = with_stdin(&weak, "short\n").await;
    assert!(!ok && err.contains("at least 8 characters"), "{err}");
    let (ok, _, err) = with_stdin(&weak, "").await;
    assert!(!ok && err.contains("no password"), "{err}");
    let (ok, list, _) = output(&mut enms(&["user", "list", "--data-dir", data])).await;
    assert!(ok && list.contains("ada") && list.contains("operator") && list.contains("never"), "{list}");
    assert!(!list.contains("bob") && !list.contains("argon2"), "{list}");

    let server = TestServer::start_on(dir.path(), "127.0.0.1:0", |c| c.auth.required = true).await;
    let login = |password: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/auth/login", server.url))
            .json(&json!({"username": "ada", "password": password}))
            .send()
    };
    let signed: Value = login("analytical engine").await.expect("send").json().await.expect("json");
    let session = signed["access_token"].as_str().expect("a session").to_owned();
    let me = reqwest::Client::new().get(format!("{}/api/auth/me", server.url)).bearer_auth(&session).send().await;
    let me: Value = me.expect("send").json().await.expect("json");
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("ada"), Some("operator")));
    // A new password from the CLI ends the session (within the token cache
    // time: the CLI is another process) and only the new one signs in.
    let (ok, _, err) = with_stdin(&["user", "passwd", "ada", "--data-dir", data], "difference engine\n").await;
    assert!(ok, "{err}");
    assert_eq!(login("analytical engine").await.expect("send").status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(login("difference engine").await.expect("send").status(), reqwest::StatusCode::OK);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            let r = reqwest::Client::new().get(format!("{}/api/auth/me", server.url)).bearer_auth(&session).send();
            if r.await.expect("send").status() == reqwest::StatusCode::UNAUTHORIZED {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    ended.await.expect("the old session ends within the token cache time");
    let (ok, _, err) = output(&mut enms(&["user", "disable", "ada", "--data-dir", data])).await;
    assert!(ok, "{err}");
    assert_eq!(login("difference engine").await.expect("send").status(), reqwest::StatusCode::UNAUTHORIZED);
    server.stop().await;
}

fn spawn_watch(
    server: &TestServer,
    token: &str,
    extra: &[&str],
) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>, Lines<BufReader<ChildStderr>>) {
    let mut child = enms(&["watch", "--server", &server.url, "--token", token])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enms watch");
    let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let err = BufReader::new(child.stderr.take().expect("stderr")).lines();
    (child, out, err)
}

#[tokio::test]
async fn watch_follows_the_stream_across_a_server_restart_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token) = secured(dir.path()).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let (mut child, mut out, mut err) = spawn_watch(&server, &token, &["events", "--json", "--count", "4"]);
    assert!(line(&mut err).await.starts_with("watching events"));
    let mut ids = vec![publish(&server, &alert("w0")).await, publish(&server, &alert("w1")).await];
    let first: Vec<Value> = vec![
        serde_json::from_str(&line(&mut out).await).expect("json"),
        serde_json::from_str(&line(&mut out).await).expect("json"),
    ];
    let admin = server.token.clone();
    server.stop().await;
    // Published on the restarted server possibly before watch is back:
    // resume must bring them, once.
    let mut server = TestServer::start_on(dir.path(), &addr, |c| c.auth.required = true).await;
    server.token = admin;
    ids.push(publish(&server, &alert("w2")).await);
    ids.push(publish(&server, &alert("w3")).await);
    let mut got = first;
    got.push(serde_json::from_str(&line(&mut out).await).expect("json"));
    got.push(serde_json::from_str(&line(&mut out).await).expect("json"));
    let got_ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().expect("id")).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let messages: Vec<&str> = got.iter().map(|e| e["data"]["message"].as_str().expect("message")).collect();
    assert_eq!(messages, ["w0", "w1", "w2", "w3"]);
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits after --count").expect("status");
    assert!(status.success());
    server.stop().await;
}

#[tokio::test]
async fn watch_refuses_a_bad_token_at_once_and_prints_a_readable_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token) = secured(dir.path()).await;
    let (ok, _, err) = output(&mut enms(&["watch", "--server", &server.url, "--token", "enms_wrong"])).await;
    assert!(!ok && err.contains("401"), "{err}");
    let machine = server.create_machine("Compressor-7").await;
    let (mut child, mut out, mut err) =
        spawn_watch(&server, &token, &["anomalies", "--machine", "compressor-7", "--count", "1"]);
    assert!(line(&mut err).await.starts_with("watching anomalies"));
    let event = json!({"type": "anomaly_detected", "data": {"machine_id": machine, "severity": "critical",
                       "anomaly_type": "spike", "metric": "power_kw", "value": 93.5, "expected_value": 40.0}});
    publish(&server, &event).await;
    let text = line(&mut out).await;
    for part in ["anomaly_detected", "CRITICAL", "Compressor-7", "spike power_kw 93.50 (expected 40.00)"] {
        assert!(text.contains(part), "{part:?} in {text:?}");
    }
    assert!(!text.contains('\x1b'), "no colour codes when stdout is not a terminal");
    assert!(tokio::time::timeout(WAIT, child.wait()).await.expect("exits").expect("status").success());
    server.stop().await;
}

#[tokio::test]
async fn train_shows_the_jobs_progress_and_fails_loudly_when_the_job_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token) = secured(dir.path()).await;
    seeded_machine(&server, "Press-9").await;
    let args = ["train", "--machine", "press-9", "--quiet", "--server", &server.url, "--token", &token];
    let (ok, out, err) = output(&mut enms(&args)).await;
    assert!(ok, "{out}\n{err}");
    // Progress lines start with their percentage (the summary has % too).
    let steps: Vec<&str> =
        out.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('%')).collect();
    assert!(steps.len() >= 3, "several progress steps: {out}");
    assert!(steps.last().is_some_and(|l| l.trim_start().starts_with("100%")), "{out}");
    // One line in plain words: model, version, quality, variables.
    let summary = out.lines().last().expect("a summary line");
    assert!(summary.starts_with("Press-9 baseline v1 · hourly · R² "), "{summary}");
    for part in [" · CV(RMSE) ", " %", " · NMBE ", " · G14 pass · ", "production"] {
        assert!(summary.contains(part), "{part:?} in {summary:?}");
    }
    assert!(!summary.contains('{'), "no JSON in the summary: {summary}");

    let args =
        ["train", "--machine", "press-9", "--model", "anomaly", "--json", "--server", &server.url, "--token", &token];
    let (ok, out, err) = output(&mut enms(&args)).await;
    assert!(ok, "{out}\n{err}");
    let full: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json prints JSON: {e}\n{out}"));
    assert_eq!(full["job"]["status"], "completed", "{full}");
    assert_eq!((full["model"]["model_type"].as_str(), full["model"]["version"].as_i64()), (Some("anomaly"), Some(1)));
    assert!(full["model"]["metrics"]["training_rows"].as_u64().is_some_and(|n| n > 500), "{full}");

    let thin = server.create_machine("Thin").await;
    let few = crate::common::readings(&thin, 10, 5.0);
    assert_eq!(server.post("/api/v1/readings", &json!({"readings": few})).await.0, reqwest::StatusCode::OK);
    let (ok, _, err) =
        output(&mut enms(&["train", "--machine", "Thin", "--quiet", "--server", &server.url, "--token", &token])).await;
    assert!(!ok && err.contains("training failed") && err.contains("not enough data"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn publish_machines_and_detect_talk_to_the_server_and_report_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token) = secured(dir.path()).await;
    let client = ["--server", server.url.as_str(), "--token", token.as_str()];
    let data = r#"{"alert_type":"maintenance","message":"line 2 stops at 14:00","severity":"info","source":"cli"}"#;
    let (ok, id, err) = output(enms(&["publish", "system_alert", "--data", data]).args(client)).await;
    assert!(ok, "{err}");
    let log = server.get("/api/v1/events?types=system_alert").await.1;
    assert_eq!(log["events"][0]["id"], id.trim(), "{log}");
    let (ok, _, err) = output(enms(&["publish", "system_alert", "--data", "{not json"]).args(client)).await;
    assert!(!ok && err.contains("not JSON"), "{err}");
    let (ok, _, err) = output(enms(&["publish", "system_alert", "--data", r#"{"message":"x"}"#]).args(client)).await;
    assert!(!ok && err.contains("422"), "the server's validation is shown: {err}");

    seeded_machine(&server, "Chiller-2").await;
    let (ok, list, _) = output(enms(&["machines"]).args(client)).await;
    assert!(ok && list.contains("Chiller-2") && list.contains("compressor"), "{list}");
    let (ok, out, err) = output(enms(&["detect", "--machine", "chiller-2", "--since", "3d"]).args(client)).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("Chiller-2 · ") && out.contains("readings analysed") && out.contains("episode"), "{out}");
    let (ok, _, err) = output(enms(&["detect", "--machine", "nope"]).args(client)).await;
    assert!(!ok && err.contains("no machine"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn config_check_accepts_a_good_file_and_names_the_bad_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enms.toml");
    std::fs::write(
        &path,
        "bind = \"0.0.0.0:8080\"\ndatabase_url = \"postgres://enms:pw@db/enms\"\n[security]\nauth = \"required\"\n",
    )
    .expect("write");
    let (ok, out, _) = output(&mut enms(&["config", "check", path.to_str().expect("utf-8")])).await;
    assert!(
        ok && out.contains("is valid") && out.contains("postgres://enms:***@db/enms") && out.contains("required"),
        "{out}"
    );
    std::fs::write(&path, "[realtime]\nping_interval = \"soon\"\n").expect("write");
    let (ok, _, err) = output(&mut enms(&["config", "check", path.to_str().expect("utf-8")])).await;
    assert!(!ok && err.contains("ping_interval"), "{err}");
    std::fs::write(&path, "[securty]\nauth = \"off\"\n").expect("write");
    let (ok, _, err) = output(&mut enms(&["config", "check", path.to_str().expect("utf-8")])).await;
    assert!(!ok && err.contains("securty"), "{err}");
    // [notify]: a rule naming a channel nobody configured, a bad URL, a
    // secret from an unset variable — each named.
    let hook = "[notify.channels.ops]\nkind = \"webhook\"\nurl = \"http://hooks.plant.example/enms\"\n";
    for (text, expected) in [
        (format!("{hook}[[notify.rules]]\nname = \"r\"\nchannels = [\"pager\"]\n"), "unknown channel \"pager\""),
        ("[notify.channels.ops]\nkind = \"webhook\"\nurl = \"hooks.plant.example\"\n".into(), "url is not a URL"),
        (format!("{hook}secret_env = \"ENMS_IT_NO_SUCH_SECRET\"\n"), "ENMS_IT_NO_SUCH_SECRET is not set"),
        (
            format!("{hook}[[notify.rules]]\nname = \"r\"\nchannels = [\"ops\"]\nquiet_hours = \"late\"\n"),
            "quiet_hours",
        ),
    ] {
        std::fs::write(&path, &text).expect("write");
        let (ok, _, err) = output(&mut enms(&["config", "check", path.to_str().expect("utf-8")])).await;
        assert!(!ok && err.contains(expected), "{text}\n→ {err}");
    }
    std::fs::write(&path, format!("{hook}[[notify.rules]]\nname = \"r\"\nchannels = [\"ops\"]\n")).expect("write");
    let (ok, out, err) = output(&mut enms(&["config", "check", path.to_str().expect("utf-8")])).await;
    assert!(ok && out.contains("is valid"), "{out}{err}");
}

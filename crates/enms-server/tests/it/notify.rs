//! Notifications end to end: events published to the real server reach a
//! local HTTP receiver (a real socket, answering what the test scripts)
//! and an SMTP sink that really speaks SMTP (aiosmtpd, scripts/smtp-sink),
//! through rules, escalation, reminders, resolution and retries; the
//! delivery log shows every attempt.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode as Status;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{TestServer, assert_error, db_url};
use crate::sinks::{Receiver, SmtpSink, WAIT, header};

fn notify_config(text: &str) -> enms_notify::NotifyConfig {
    let config: enms_notify::NotifyConfig = toml::from_str(text).expect("notify config");
    config.validate().expect("valid notify config");
    config
}

fn mail_channel(name: &str, port: u16) -> String {
    format!(
        "[channels.{name}]\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"enms@plant.example\"\nto = [\"oncall@plant.example\"]\n"
    )
}

/// An anomaly event for `machine`, of episode `episode`, naming `anomaly`.
fn anomaly_event(machine: &str, name: &str, episode: Uuid, anomaly: Uuid, severity: &str) -> Value {
    let now = Utc::now().to_rfc3339();
    json!({"type": "anomaly_detected", "data": {
        "anomaly_id": anomaly, "machine_id": machine, "machine_name": name, "severity": severity,
        "anomaly_type": "spike", "metric": "power_kw", "value": 91.5, "expected_value": 60.0, "timestamp": now,
        "details": {"episode": {"id": episode, "start": now, "end": now, "open": true}},
    }})
}

async fn publish(s: &TestServer, event: &Value) {
    let (status, body) = s.post("/api/v1/events", event).await;
    assert!(status.is_success(), "publish: {status} {body}");
}

async fn log(s: &TestServer, query: &str) -> Vec<Value> {
    let (status, body) = s.get(&format!("/api/v1/notifications{query}")).await;
    assert_eq!(status, Status::OK, "{body}");
    body.as_array().expect("list").clone()
}

async fn until_log(s: &TestServer, query: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = log(s, query).await;
        if check(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: log holds {list:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_rule_fires_its_channels_signed_and_in_each_format() {
    let hooks = Receiver::start(0, &[]).await;
    let smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "s3cret-key\n").expect("secret");
    let config = notify_config(&format!(
        "dashboard_url = \"http://enms.plant.example\"\n\
         [channels.hook]\nkind = \"webhook\"\nurl = \"{u}/hook\"\nsecret_file = \"{secret}\"\n\
         [channels.am]\nkind = \"alertmanager\"\nurl = \"{u}/am\"\n\
         [channels.chat]\nkind = \"slack\"\nurl = \"{u}/services/T000/B000/XXXX\"\n\
         [channels.other]\nkind = \"webhook\"\nurl = \"{u}/other\"\n{mail}\
         [[rules]]\nname = \"compressors\"\nmachines = [\"Compressor-1\"]\nmin_severity = \"warning\"\n\
         channels = [\"hook\", \"am\", \"chat\", \"mail\"]\n\
         [[rules]]\nname = \"furnaces\"\nmachines = [\"Furnace-1\"]\nchannels = [\"other\"]\n",
        u = hooks.url,
        secret = secret.display(),
        mail = mail_channel("mail", smtp.port),
    ));
    let s = TestServer::start_in(dir.path(), move |c| c.notify = Some(config)).await;
    let compressor = s.create_machine("Compressor-1").await;
    let (episode, anomaly) = (Uuid::new_v4(), Uuid::new_v4());
    // Below the rule's severity: nothing.
    publish(&s, &anomaly_event(&compressor, "Compressor-1", Uuid::new_v4(), Uuid::new_v4(), "info")).await;
    publish(&s, &anomaly_event(&compressor, "Compressor-1", episode, anomaly, "critical")).await;

    let got = hooks.until("hook, am and chat", |g| g.len() >= 3).await;
    let mails = smtp.until("one mail", |m| !m.is_empty()).await;
    let by_path = |p: &str| got.iter().find(|g| g.path == p).unwrap_or_else(|| panic!("{p} in {got:#?}")).clone();

    let hook = by_path("/hook");
    assert_eq!(hook.body["kind"], "firing");
    assert_eq!(hook.body["facts"]["machine_name"], "Compressor-1");
    assert_eq!(hook.body["facts"]["data"]["anomaly_id"], anomaly.to_string());
    assert_eq!(hook.body["facts"]["link"], format!("http://enms.plant.example/ui/machines/{compressor}"));
    assert_eq!(header(&hook, "idempotency-key"), hook.body["idempotency_key"].as_str().expect("key"));
    let expected = enms_notify::send::signature("s3cret-key", header(&hook, "x-enms-timestamp"), &hook.raw);
    assert_eq!(header(&hook, "x-enms-signature"), expected, "signed with the file's secret");

    let am = by_path("/am");
    assert_eq!(am.body["version"], "4");
    assert_eq!(am.body["status"], "firing");
    assert_eq!(am.body["alerts"][0]["labels"]["machine"], "Compressor-1");
    assert_eq!(am.body["alerts"][0]["labels"]["severity"], "critical");
    assert!(am.headers.get("x-enms-signature").is_none(), "no secret, no signature");

    let chat = by_path("/services/T000/B000/XXXX");
    assert!(chat.body["text"].as_str().is_some_and(|t| t.contains("Compressor-1: spike anomaly (critical)")));

    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0]["rcpt_tos"], json!(["oncall@plant.example"]));
    assert_eq!(mails[0]["subject"], "[enms] FIRING: Compressor-1: spike anomaly (critical)");
    assert!(mails[0]["body"].as_str().is_some_and(|b| b.contains("power_kw was 91.50 where 60.00 was expected")));

    // The log: four, all delivered, none to the other rule's channel.
    let list =
        until_log(&s, "", "all delivered", |l| l.len() == 4 && l.iter().all(|n| n["status"] == "delivered")).await;
    let mut channels: Vec<&str> = list.iter().map(|n| n["channel"].as_str().expect("channel")).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["am", "chat", "hook", "mail"]);
    assert!(list.iter().all(|n| n["attempt_log"].as_array().is_some_and(|a| a.len() == 1 && a[0]["ok"] == true)));
    assert!(hooks.got().iter().all(|g| g.path != "/other"));

    // Channels are listed without secrets: a Slack URL's path is one.
    let (_, listed) = s.get("/api/v1/notifications/channels").await;
    let text = listed.to_string();
    assert!(!text.contains("XXXX") && !text.contains("s3cret"), "{text}");
    let hook_info = listed.as_array().expect("list").iter().find(|c| c["name"] == "hook").expect("hook").clone();
    assert_eq!((hook_info["kind"].as_str(), hook_info["signed"].as_bool()), (Some("webhook"), Some(true)));
    assert_eq!(s.get("/api/v1/health").await.1["notify"]["delivered"], 4);
    s.stop().await;
}

async fn insert_anomaly(dir: &Path, machine: &str) -> Uuid {
    let store = enms_store::connect(&db_url(dir)).await.expect("second handle on the database");
    let id = Uuid::new_v4();
    let record = enms_store::AnomalyRecord {
        id,
        machine_id: machine.parse().expect("uuid"),
        timestamp: Utc::now(),
        metric: "power_kw".into(),
        severity: "critical".into(),
        anomaly_type: "spike".into(),
        value: 91.5,
        expected_value: 60.0,
        anomaly_score: -0.7,
        deviation: 9.0,
        source: "stream".into(),
        model_id: None,
        detected_at: Utc::now(),
        acknowledged_at: None,
        acknowledged_by: None,
        note: None,
    };
    store.insert_anomalies(&[record]).await.expect("anomaly stored");
    store.close().await;
    id
}

#[tokio::test]
async fn unacknowledged_alerts_escalate_remind_until_acknowledged_then_resolve() {
    let hooks = Receiver::start(0, &[]).await;
    let smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = notify_config(&format!(
        "[channels.first]\nkind = \"webhook\"\nurl = \"{u}/first\"\n{mail}\
         [[rules]]\nname = \"oncall\"\nchannels = [\"first\"]\nremind_every = \"3s\"\n\
         [[rules.escalate]]\nafter = \"1s\"\nchannels = [\"mail\"]\n",
        u = hooks.url,
        mail = mail_channel("mail", smtp.port),
    ));
    let s = TestServer::start_in(dir.path(), move |c| c.notify = Some(config)).await;
    let machine = s.create_machine("Compressor-2").await;
    let anomaly = insert_anomaly(dir.path(), &machine).await;
    let episode = Uuid::new_v4();
    publish(&s, &anomaly_event(&machine, "Compressor-2", episode, anomaly, "critical")).await;

    hooks.until("firing to the first channel", |g| g.iter().any(|x| x.body["kind"] == "firing")).await;
    let mails = smtp.until("escalation by mail", |m| !m.is_empty()).await;
    assert!(mails[0]["subject"].as_str().is_some_and(|s| s.starts_with("[enms] ESCALATED:")), "{mails:#?}");
    // The first reminder goes to every channel told so far.
    hooks.until("a reminder", |g| g.iter().any(|x| x.body["kind"] == "reminder")).await;
    smtp.until("a reminder by mail", |m| {
        m.iter().any(|x| x["subject"].as_str().is_some_and(|s| s.contains("REMINDER")))
    })
    .await;

    let (status, body) = s.post(&format!("/api/v1/anomalies/{anomaly}/acknowledge"), &json!({"by": "ana"})).await;
    assert_eq!(status, Status::OK, "{body}");
    let alert_id = format!("oncall/episode:{episode}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let alert = loop {
        let (_, alerts) = s.get("/api/v1/notifications/alerts").await;
        let alert = alerts.as_array().and_then(|a| a.iter().find(|x| x["id"] == alert_id.as_str()).cloned());
        if let Some(a) = alert.filter(|a| a["acknowledged_by"] == "ana") {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "the alert is seen acknowledged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    // The episode ends: a resolved notification to both channels.
    let ended = json!({"type": "anomaly_updated", "data": {
        "anomaly_id": anomaly, "machine_id": machine, "severity": "critical", "anomaly_type": "spike",
        "details": {"episode": {"id": episode, "end": Utc::now().to_rfc3339(), "open": false}},
    }});
    publish(&s, &ended).await;
    hooks.until("resolved to the first channel", |g| g.iter().any(|x| x.body["kind"] == "resolved")).await;
    smtp.until("resolved by mail", |m| m.iter().any(|x| x["subject"].as_str().is_some_and(|s| s.contains("RESOLVED"))))
        .await;

    let list = log(&s, &format!("?alert_id={alert_id}")).await;
    let acknowledged: chrono::DateTime<Utc> =
        alert["acknowledged_at"].as_str().expect("time").parse().expect("rfc3339");
    for n in &list {
        let created: chrono::DateTime<Utc> = n["created_at"].as_str().expect("time").parse().expect("rfc3339");
        assert!(n["kind"] != "reminder" || created < acknowledged, "no reminder after the acknowledgement: {n:#}");
    }
    let kinds = |channel: &str| {
        let mut k: Vec<String> = list
            .iter()
            .filter(|n| n["channel"] == channel)
            .map(|n| n["kind"].as_str().expect("kind").to_owned())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds("first"), ["firing", "reminder", "resolved"]);
    assert_eq!(kinds("mail"), ["escalation", "reminder", "resolved"]);
    let (_, open) = s.get("/api/v1/notifications/alerts?open=true").await;
    assert_eq!(open, json!([]), "resolved alerts are not open");
    s.stop().await;
}

/// On call for incidents: one page per incident however many episodes it
/// gathers, escalation until the incident is acknowledged, a resolved
/// notice when it is resolved, and a link to it.
#[tokio::test]
async fn an_incident_pages_once_escalates_until_acknowledged_and_resolves() {
    let hooks = Receiver::start(0, &[]).await;
    let config = notify_config(&format!(
        "dashboard_url = \"https://enms.plant.example\"\n\
         [channels.first]\nkind = \"webhook\"\nurl = \"{u}/first\"\n\
         [channels.lead]\nkind = \"webhook\"\nurl = \"{u}/lead\"\n\
         [[rules]]\nname = \"incidents\"\nevents = [\"incident_opened\"]\nchannels = [\"first\"]\n\
         remind_every = \"2s\"\n\
         [[rules.escalate]]\nafter = \"1s\"\nchannels = [\"lead\"]\n",
        u = hooks.url,
    ));
    let s = TestServer::with(move |c| c.notify = Some(config)).await;
    let machine = s.create_machine("Compressor-4").await;
    // Two episodes of one kind: one incident, one page.
    publish(&s, &anomaly_event(&machine, "Compressor-4", Uuid::new_v4(), Uuid::new_v4(), "warning")).await;
    let got = hooks.until("the incident's page", |g| g.iter().any(|x| x.body["kind"] == "firing")).await;
    let page = got.iter().find(|x| x.body["kind"] == "firing").expect("firing").body.clone();
    assert_eq!(page["facts"]["event_type"], "incident_opened", "{page:#}");
    let incident = page["facts"]["data"]["incident_id"].as_str().expect("incident id").to_owned();
    assert_eq!(page["facts"]["link"], format!("https://enms.plant.example/ui/incidents/{incident}"));
    assert!(page["title"].as_str().is_some_and(|t| t.contains("Compressor-4: spike incident")), "{page:#}");
    publish(&s, &anomaly_event(&machine, "Compressor-4", Uuid::new_v4(), Uuid::new_v4(), "critical")).await;
    hooks.until("escalation to the lead", |g| g.iter().any(|x| x.body["kind"] == "escalation")).await;
    let alert_id = format!("incidents/incident:{incident}");
    until_log(&s, &format!("?alert_id={alert_id}"), "a reminder", |l| l.iter().any(|n| n["kind"] == "reminder")).await;

    let (status, body) =
        s.post(&format!("/api/v1/incidents/{incident}/acknowledge"), &json!({"note": "on my way"})).await;
    assert_eq!(status, Status::OK, "{body}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let alert = loop {
        let (_, alerts) = s.get("/api/v1/notifications/alerts").await;
        let alert = alerts.as_array().and_then(|a| a.iter().find(|x| x["id"] == alert_id.as_str()).cloned());
        if let Some(a) = alert.filter(|a| a["acknowledged_at"].is_string()) {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "the alert is seen acknowledged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(alert["severity"], "critical", "the second episode raised it: {alert}");
    let (status, body) =
        s.post(&format!("/api/v1/incidents/{incident}/resolve"), &json!({"note": "valve closed"})).await;
    assert_eq!(status, Status::OK, "{body}");
    hooks.until("resolved to both", |g| g.iter().filter(|x| x.body["kind"] == "resolved").count() == 2).await;

    let list = log(&s, &format!("?alert_id={alert_id}")).await;
    let acknowledged: chrono::DateTime<Utc> =
        alert["acknowledged_at"].as_str().expect("time").parse().expect("rfc3339");
    assert_eq!(list.iter().filter(|n| n["kind"] == "firing").count(), 1, "one page for the incident: {list:#?}");
    for n in &list {
        let created: chrono::DateTime<Utc> = n["created_at"].as_str().expect("time").parse().expect("rfc3339");
        assert!(n["kind"] != "reminder" || created < acknowledged, "no reminder after the acknowledgement: {n:#}");
    }
    let (_, open) = s.get("/api/v1/notifications/alerts?open=true").await;
    assert_eq!(open, json!([]), "the resolved incident's alert is not open");
    s.stop().await;
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_it_with_every_attempt_logged() {
    let hooks = Receiver::start(0, &[500, 503, 500]).await;
    let config = notify_config(&format!(
        "retry_after = \"100ms\"\n[channels.flaky]\nkind = \"webhook\"\nurl = \"{}/flaky\"\n\
         [[rules]]\nname = \"all\"\nevents = [\"system_alert\"]\nchannels = [\"flaky\"]\n",
        hooks.url
    ));
    let s = TestServer::with(move |c| c.notify = Some(config)).await;
    let alert = json!({"type": "system_alert", "data": {"alert_type": "disk", "message": "disk 91% full", "severity": "warning"}});
    publish(&s, &alert).await;
    let list = until_log(&s, "?status=delivered", "delivered at the fourth try", |l| l.len() == 1).await;
    let attempts: Vec<(i64, bool)> = list[0]["attempt_log"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| (a["status_code"].as_i64().expect("code"), a["ok"].as_bool().expect("ok")))
        .collect();
    assert_eq!(attempts, [(500, false), (503, false), (500, false), (200, true)]);
    assert_eq!(list[0]["attempts"], 4);
    let got = hooks.got();
    assert_eq!(got.len(), 4);
    let keys: std::collections::HashSet<&str> = got.iter().map(|g| header(g, "idempotency-key")).collect();
    assert_eq!(keys.len(), 1, "every retry carries the same key");
    assert_eq!(got[0].body["title"], "disk 91% full (warning)");
    s.stop().await;
}

#[tokio::test]
async fn a_receiver_refusing_for_good_fails_at_once_and_raises_an_alert() {
    let hooks = Receiver::start(0, &[400, 400]).await;
    let config = notify_config(&format!(
        "[channels.strict]\nkind = \"webhook\"\nurl = \"{}/strict\"\n\
         [[rules]]\nname = \"r\"\nevents = [\"system_alert\"]\nchannels = [\"strict\"]\n",
        hooks.url
    ));
    let s = TestServer::with(move |c| c.notify = Some(config)).await;
    let (mut events, _) = crate::wsclient::Ws::connect(&s, "/api/v1/ws/events").await;
    publish(&s, &json!({"type": "system_alert", "data": {"alert_type": "x", "message": "m", "severity": "warning"}}))
        .await;
    let list = until_log(&s, "?status=failed", "failed", |l| !l.is_empty()).await;
    assert_eq!(list[0]["attempts"], 1, "a 400 is not tried again");
    assert!(list[0]["last_error"].as_str().is_some_and(|e| e.starts_with("HTTP 400")), "{:#}", list[0]);
    // Its own alert about the failure; the failure of that one raises none.
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            let e = events.next_json().await;
            if e["data"]["alert_type"] == "notification_failed" {
                return e;
            }
        }
    })
    .await
    .expect("a notification_failed alert in time");
    assert!(failed["data"]["message"].as_str().is_some_and(|m| m.contains("strict")), "{failed:#}");
    // The notification of that alert fails too, and raises nothing more: a
    // marker published after it is the only other notification.
    until_log(&s, "?status=failed", "the alert's own notification fails too", |l| l.len() == 2).await;
    publish(
        &s,
        &json!({"type": "system_alert", "data": {"alert_type": "marker", "message": "m2", "severity": "warning"}}),
    )
    .await;
    until_log(&s, "?status=delivered", "the marker", |l| l.len() == 1).await;
    let all = log(&s, "").await;
    assert_eq!(all.len(), 3, "{all:#?}");
    s.stop().await;
}

#[tokio::test]
async fn the_test_button_sends_through_a_channel_and_bad_requests_are_refused() {
    let hooks = Receiver::start(0, &[]).await;
    let config = notify_config(&format!("[channels.ops]\nkind = \"teams\"\nurl = \"{}/teams\"\n", hooks.url));
    let s = TestServer::with(move |c| c.notify = Some(config)).await;
    let (status, note) = s.post("/api/v1/notifications/test", &json!({"channel": "ops"})).await;
    assert_eq!(status, Status::ACCEPTED, "{note}");
    let got = hooks.until("the test", |g| !g.is_empty()).await;
    assert_eq!(got[0].body["attachments"][0]["content"]["type"], "AdaptiveCard");
    let id = note["id"].as_str().expect("id");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, one) = s.get(&format!("/api/v1/notifications/{id}")).await;
        if one["status"] == "delivered" {
            assert_eq!(one["kind"], "test");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "test delivered: {one:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let unknown = s.post("/api/v1/notifications/test", &json!({"channel": "pager"})).await;
    let err = assert_error(&unknown, Status::UNPROCESSABLE_ENTITY, "unknown_channel");
    assert_eq!(err["field"], "channel");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("ops")), "names the channels: {err}");
    assert_error(
        &s.post("/api/v1/notifications/test", &json!({"chanel": "ops"})).await,
        Status::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_error(&s.get("/api/v1/notifications?status=lost").await, Status::UNPROCESSABLE_ENTITY, "invalid_parameter");
    assert_error(&s.get("/api/v1/notifications?limit=0").await, Status::UNPROCESSABLE_ENTITY, "invalid_parameter");
    assert_error(&s.get(&format!("/api/v1/notifications/{}", Uuid::new_v4())).await, Status::NOT_FOUND, "not_found");
    assert_error(
        &s.get("/api/v1/notifications/alerts?open=maybe").await,
        Status::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    s.stop().await;

    let plain = TestServer::start().await;
    assert_error(&plain.get("/api/v1/notifications").await, Status::NOT_FOUND, "notifications_off");
    assert_error(
        &plain.post("/api/v1/notifications/test", &json!({"channel": "ops"})).await,
        Status::NOT_FOUND,
        "notifications_off",
    );
    plain.stop().await;
}

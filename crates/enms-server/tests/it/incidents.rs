//! Incidents end to end: anomaly events gathered into an incident per
//! machine and kind, its whole lifecycle with the events it publishes and
//! who did what, resume of those events by id, refusals (unknown incident,
//! a transition its state forbids, bad input, a viewer acting), and
//! resolution by itself once the machine has been normal long enough.

use std::time::Duration;

use chrono::Utc;
use enms_core::access::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{TestServer, assert_error, db_url};
use crate::wsclient::{Ws, publish};

fn resolving_after(d: Duration) -> impl FnOnce(&mut enms_server::ServerConfig) {
    move |c| c.incidents.resolve_after = d
}

/// An `anomaly_detected` as streaming detection publishes it.
fn detected(machine: &str, kind: &str, severity: &str, episode: Uuid, open: bool, escalated: bool) -> Value {
    let now = Utc::now();
    json!({"type": "anomaly_detected", "data": {
        "machine_id": machine, "severity": severity, "anomaly_type": kind, "metric": "power_kw",
        "value": 91.0, "expected_value": 40.0, "timestamp": now.to_rfc3339(),
        "details": {"escalated": escalated, "episode": {"id": episode, "start": (now - chrono::Duration::minutes(2)).to_rfc3339(),
            "end": now.to_rfc3339(), "open": open}}}})
}

fn ended(machine: &str, kind: &str, episode: Uuid) -> Value {
    let now = Utc::now();
    json!({"type": "anomaly_updated", "data": {
        "machine_id": machine, "severity": "critical", "anomaly_type": kind, "timestamp": now.to_rfc3339(),
        "details": {"episode": {"id": episode, "start": (now - chrono::Duration::minutes(5)).to_rfc3339(),
            "end": now.to_rfc3339(), "open": false}}}})
}

/// The next incident event on the socket.
async fn next_incident(ws: &mut Ws) -> Value {
    loop {
        let v = ws.next_json().await;
        if v["type"].as_str().is_some_and(|t| t.starts_with("incident_")) {
            return v;
        }
    }
}

const INCIDENT_TYPES: &str = "/api/v1/ws?types=incident_opened,incident_updated,incident_resolved";

#[tokio::test]
async fn an_incident_goes_through_its_lifecycle_with_events_a_timeline_and_resume() {
    let s = TestServer::with(resolving_after(Duration::from_secs(3600))).await;
    let m = s.create_machine("Compressor-7").await;
    let (mut ws, _) = Ws::connect(&s, INCIDENT_TYPES).await;
    let e1 = Uuid::new_v4();

    // The first warning episode opens an incident.
    publish(&s, &detected(&m, "spike", "warning", e1, true, false)).await;
    let opened = next_incident(&mut ws).await;
    assert_eq!(opened["type"], "incident_opened", "{opened}");
    let d = &opened["data"];
    assert_eq!(
        (d["state"].as_str(), d["severity"].as_str(), d["machine_name"].as_str()),
        (Some("open"), Some("warning"), Some("Compressor-7"))
    );
    let id = d["incident_id"].as_str().unwrap().to_owned();
    assert_eq!(d["title"], "spike on Compressor-7");
    // Its escalation to critical updates the same incident.
    publish(&s, &detected(&m, "spike", "critical", e1, true, true)).await;
    let up = next_incident(&mut ws).await;
    assert_eq!(
        (up["type"].as_str(), up["data"]["change"].as_str(), up["data"]["severity"].as_str()),
        (Some("incident_updated"), Some("escalated"), Some("critical"))
    );
    assert_eq!(up["data"]["incident_id"], id.as_str());
    // Another kind on the same machine is another incident; an info-level
    // anomaly opens none.
    publish(&s, &detected(&m, "drift", "warning", Uuid::new_v4(), true, false)).await;
    let drift = next_incident(&mut ws).await;
    assert_eq!(drift["type"], "incident_opened");
    assert_ne!(drift["data"]["incident_id"], id.as_str());
    publish(&s, &detected(&m, "stuck", "info", Uuid::new_v4(), true, false)).await;

    let (status, list) = s.get(&format!("/api/v1/incidents?machine_id={m}&state=open")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let (_, seed) = s.get(&format!("/api/incidents?machine_id={m}&state=open")).await;
    assert_eq!(seed, list, "the seed's /api/incidents lists the same");

    // Acknowledge, comment, assign, resolve — each once, by whom it was.
    let (status, acked) = s.post(&format!("/api/v1/incidents/{id}/acknowledge"), &json!({"note": "looking"})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!((acked["state"].as_str(), acked["acknowledged_by"].as_str()), (Some("acknowledged"), Some("anonymous")));
    assert_error(
        &s.post(&format!("/api/v1/incidents/{id}/acknowledge"), &json!({})).await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    let (status, _) =
        s.post(&format!("/api/v1/incidents/{id}/comments"), &json!({"text": "valve V3 found open"})).await;
    assert_eq!(status, StatusCode::OK);
    let err = assert_error(
        &s.post(&format!("/api/v1/incidents/{id}/comments"), &json!({"text": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    );
    assert_eq!(err["field"], "text");
    assert_error(
        &s.post(&format!("/api/v1/incidents/{id}/comments"), &json!({"words": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    let (status, assigned) = s.post(&format!("/api/v1/incidents/{id}/assign"), &json!({"assignee": "bob"})).await;
    assert_eq!((status, assigned["assignee"].as_str()), (StatusCode::OK, Some("bob")));
    let (status, resolved) = s.post(&format!("/api/v1/incidents/{id}/resolve"), &json!({"note": "valve closed"})).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!((resolved["state"].as_str(), resolved["resolution"].as_str()), (Some("resolved"), Some("manual")));
    for action in ["resolve", "acknowledge"] {
        assert_error(
            &s.post(&format!("/api/v1/incidents/{id}/{action}"), &json!({})).await,
            StatusCode::CONFLICT,
            "invalid_transition",
        );
    }
    assert_error(
        &s.post(&format!("/api/v1/incidents/{id}/assign"), &json!({"assignee": "eve"})).await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    let kinds: Vec<&str> =
        resolved["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "escalated", "acknowledged", "comment", "assigned", "resolved"]);
    let actors: Vec<&str> =
        resolved["timeline"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["system", "system", "anonymous", "anonymous", "anonymous", "anonymous"]);
    assert_eq!(resolved["timeline"][3]["text"], "valve V3 found open");

    // The events followed the actions, in order.
    let changes: Vec<(String, String)> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            let e = next_incident(&mut ws).await;
            out.push((e["type"].as_str().unwrap().to_owned(), e["data"]["change"].as_str().unwrap().to_owned()));
        }
        out
    };
    assert_eq!(
        changes,
        [
            ("incident_updated".into(), "acknowledged".into()),
            ("incident_updated".into(), "comment".into()),
            ("incident_updated".into(), "assigned".into()),
            ("incident_resolved".into(), "resolved".into()),
        ]
    );

    // A new episode after the resolution opens a new incident.
    publish(&s, &detected(&m, "spike", "warning", Uuid::new_v4(), true, false)).await;
    let again = next_incident(&mut ws).await;
    assert_eq!(again["type"], "incident_opened");
    assert_ne!(again["data"]["incident_id"], id.as_str());
    ws.close().await;

    // Incident events are durable: a client resuming after the first one
    // gets every later one, in order.
    let first = opened["id"].as_str().unwrap();
    let (mut resumed, hello) = Ws::connect(&s, &format!("{INCIDENT_TYPES}&last_event_id={first}")).await;
    assert_eq!(hello["recovered"], true, "{hello}");
    let mut replayed = Vec::new();
    for _ in 0..7 {
        replayed.push(next_incident(&mut resumed).await["data"]["change"].as_str().unwrap().to_owned());
    }
    assert_eq!(replayed, ["escalated", "opened", "acknowledged", "comment", "assigned", "resolved", "opened"]);

    // Refusals.
    assert_error(&s.get(&format!("/api/v1/incidents/{}", Uuid::new_v4())).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &s.post(&format!("/api/v1/incidents/{}/resolve", Uuid::new_v4()), &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&s.get("/api/v1/incidents/nope").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    let err = assert_error(
        &s.get("/api/v1/incidents?state=closed").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    );
    assert_eq!(err["field"], "state");
    s.stop().await;
}

#[tokio::test]
async fn an_incident_resolves_itself_once_its_machine_has_been_normal_long_enough() {
    let s = TestServer::with(resolving_after(Duration::from_secs(1))).await;
    let m = s.create_machine("HVAC-9").await;
    let (mut ws, _) = Ws::connect(&s, INCIDENT_TYPES).await;
    let e = Uuid::new_v4();
    publish(&s, &detected(&m, "off_hours", "warning", e, true, false)).await;
    let opened = next_incident(&mut ws).await;
    let id = opened["data"]["incident_id"].as_str().unwrap().to_owned();
    // While the episode is open the incident stays, however long.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, now) = s.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(now["state"], "open", "an open episode keeps it open: {now}");
    // The episode ends; a second later the incident resolves by itself.
    publish(&s, &ended(&m, "off_hours", e)).await;
    let up = next_incident(&mut ws).await;
    assert_eq!(up["data"]["change"], "episode_ended");
    let done = next_incident(&mut ws).await;
    assert_eq!((done["type"].as_str(), done["data"]["by"].as_str()), (Some("incident_resolved"), Some("system")));
    assert_eq!(done["data"]["text"], "normal for 1 s");
    let (_, stored) = s.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!((stored["state"].as_str(), stored["resolution"].as_str()), (Some("resolved"), Some("auto")));
    // An anomaly published without an episode counts as one that ended at once.
    publish(&s, &json!({"type": "anomaly_detected", "data": {"machine_id": m, "severity": "critical", "anomaly_type": "spike"}})).await;
    let opened = next_incident(&mut ws).await;
    assert_eq!(opened["type"], "incident_opened");
    let resolved = next_incident(&mut ws).await;
    assert_eq!(resolved["type"], "incident_resolved");
    assert_eq!(resolved["data"]["incident_id"], opened["data"]["incident_id"]);
    s.stop().await;
}

#[tokio::test]
async fn viewers_read_incidents_and_operators_act_on_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = enms_store::connect(&db_url(dir.path())).await.expect("store");
    let viewer = enms_server::auth::issue(store.as_ref(), "wall-screen", Role::Viewer).await.expect("issue").token;
    let operator = enms_server::auth::issue(store.as_ref(), "alice", Role::Operator).await.expect("issue").token;
    let admin = enms_server::auth::issue(store.as_ref(), "admin", Role::Admin).await.expect("issue").token;
    store.close().await;
    let mut s = TestServer::start_in(dir.path(), |c| c.auth.required = true).await;
    s.token = Some(admin);
    let m = s.create_machine("Furnace-3").await;
    publish(&s, &detected(&m, "spike", "critical", Uuid::new_v4(), true, false)).await;
    let id = loop {
        let (_, list) = s.get("/api/v1/incidents").await;
        if let Some(id) = list[0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    s.token = Some(viewer);
    assert_eq!(s.get(&format!("/api/v1/incidents/{id}")).await.0, StatusCode::OK);
    assert_error(
        &s.post(&format!("/api/v1/incidents/{id}/acknowledge"), &json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    s.token = Some(operator);
    let (status, acked) = s.post(&format!("/api/v1/incidents/{id}/acknowledge"), &json!({})).await;
    assert_eq!(
        (status, acked["acknowledged_by"].as_str()),
        (StatusCode::OK, Some("alice")),
        "the token's name is who did it"
    );
    s.stop().await;
}

//! Events in, alerts followed: the intake reads the durable events after
//! its stored cursor, opens an alert per rule and subject and stores its
//! first notifications; the escalation watch looks at every open alert each
//! tick and stores what has fallen due (escalation steps, reminders).
//!
//! A subject is what an alert follows until it ends: an anomaly episode
//! (ended by the `anomaly_updated` that closes it, acknowledged with its
//! anomaly) or an incident (`incident_updated` raises its severity or
//! acknowledges it, `incident_resolved` ends it). Any other event is an
//! alert that ends as it opens.
//!
//! Every notification's key is `<alert id>:<step>:<channel>`, so doing a
//! step twice (a re-read event after a crash, two instances, a tick that
//! repeats) stores it once.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::event::{EventId, EventType, Severity};
use enms_core::feed::EventSource;
use enms_store::follow::{Follow, Follower};
use enms_store::{AlertRecord, DeliveryStatus, NotificationQuery, NotificationRecord, StoreError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Inner;
use crate::config::Rule;
use crate::rules::Facts;

const CURSOR: &str = "notify";
/// How soon a new event is seen (a read of the bus's in-memory window;
/// the event-to-webhook budget is 200 ms).
const IDLE: Duration = Duration::from_millis(10);
const RETRY: Duration = Duration::from_secs(1);
/// How often open alerts are looked at for due steps.
const TICK: Duration = Duration::from_millis(250);
/// Open alerts looked at per tick.
const OPEN_ALERTS: u32 = 1000;

async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// Follows the events the rules name (and the ends of what their alerts
/// follow) until `stop`, through `enms_store::follow`.
pub(crate) async fn intake(inner: Arc<Inner>, events: Arc<dyn EventSource>, stop: CancellationToken) {
    let mut types: Vec<EventType> =
        inner.config.rules.iter().flat_map(|r| r.events.iter().filter_map(|e| e.parse().ok())).collect();
    types.extend([EventType::AnomalyUpdated, EventType::IncidentUpdated, EventType::IncidentResolved]);
    types.sort_by_key(|t| t.as_str());
    types.dedup();
    let follow = Follow { name: CURSOR, types, idle: IDLE, retry: RETRY, started: inner.started };
    enms_store::follow::run(inner.store.as_ref(), &*events, &follow, &Intake(inner.clone()), &stop).await;
}

struct Intake(Arc<Inner>);

#[async_trait::async_trait]
impl Follower for Intake {
    async fn take(&self, id: EventId, kind: EventType, envelope: &[u8]) -> Result<(), String> {
        let inner = &self.0;
        match take(inner, id, kind, envelope).await {
            Ok(()) => {
                inner.status().events_read += 1;
                Ok(())
            }
            Err(e) => {
                inner.status().last_error = Some(e.to_string());
                Err(e.to_string())
            }
        }
    }

    async fn missed(&self, after: EventId) {
        let inner = &self.0;
        inner.status().events_missed += 1;
        let message = format!("the notifier fell behind the event log after {after}; some events were not notified");
        tracing::warn!("{message}");
        inner.alerts.alert("notifications_missed", message).await;
    }
}

/// The facts kept with an alert, and put in each notification's body.
fn facts_value(f: &Facts, event_id: EventId) -> Value {
    json!({
        "event_type": f.kind.as_str(),
        "event_id": event_id.to_string(),
        "severity": severity_name(f.severity()),
        "machine_id": f.machine_id,
        "machine_name": f.machine_name,
        "location": f.location,
        "data": f.data,
    })
}

fn severity_name(s: Severity) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "info".into())
}

async fn take(inner: &Inner, id: EventId, kind: EventType, envelope: &[u8]) -> Result<(), StoreError> {
    let Ok(event) = serde_json::from_slice::<Value>(envelope) else {
        tracing::warn!(event = %id, "notifier: an event that is not JSON is skipped");
        return Ok(());
    };
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let event_time = event
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let machine_id = data.get("machine_id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
    let machine = match machine_id {
        Some(m) => inner.store.get_machine(m).await?,
        None => None,
    };
    let facts = Facts {
        kind,
        data: &data,
        machine_id,
        machine_name: machine
            .as_ref()
            .map(|m| m.name.clone())
            .or_else(|| data.get("machine_name").and_then(Value::as_str).map(str::to_owned)),
        location: machine.as_ref().map(|m| m.location.clone()).filter(|l| !l.is_empty()),
    };
    let now = Utc::now();
    if kind == EventType::AnomalyUpdated {
        let Some(episode) = facts.episode() else { return Ok(()) };
        for rule in &inner.config.rules {
            let alert_id = format!("{}/episode:{episode}", rule.name);
            if let Some(alert) = inner.store.get_alert(&alert_id).await?
                && alert.resolved_at.is_none()
            {
                resolve(inner, rule, alert, facts.happened(now)).await?;
            }
        }
        return Ok(());
    }
    if matches!(kind, EventType::IncidentUpdated | EventType::IncidentResolved) {
        return follow_incident(inner, &facts, id, event_time).await;
    }
    for rule in &inner.config.rules {
        if !rule.matches(&facts, event_time, now) {
            continue;
        }
        let episode = facts.episode();
        let followed = facts.subject();
        let subject = followed.clone().unwrap_or_else(|| format!("event:{id}"));
        let alert_id = format!("{}/{subject}", rule.name);
        let value = facts_value(&facts, id);
        if let Some(mut alert) = inner.store.get_alert(&alert_id).await? {
            // The same episode again (escalated): keep the alert, raise its
            // severity; the people told already need no second firing.
            if alert.resolved_at.is_none() && facts.severity() > alert.severity.parse().unwrap_or(Severity::Info) {
                alert.severity = severity_name(facts.severity());
                alert.title = facts.title();
                alert.data = value;
                inner.store.update_alert(&alert).await?;
            }
            continue;
        }
        let alert = AlertRecord {
            id: alert_id,
            rule: rule.name.clone(),
            subject,
            anomaly_id: facts.anomaly_id(),
            machine_id,
            severity: severity_name(facts.severity()),
            title: facts.title(),
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            // Without an episode or incident there is nothing to follow.
            resolved_at: followed.is_none().then_some(now),
            data: value,
        };
        if !inner.store.insert_alert(&alert).await? {
            continue; // another instance took it a moment ago
        }
        let batch =
            rule.channels.iter().map(|c| notification(inner, rule, &alert, "firing", "firing", c, now)).collect();
        inner.enqueue(batch).await?;
        if episode.is_some() && facts.episode_closed() {
            resolve(inner, rule, alert, facts.happened(now)).await?;
        }
    }
    Ok(())
}

/// An incident's change reaches the alerts its opening made: a raised
/// severity is kept (no second firing), an acknowledgement stops their
/// escalation and reminders, a resolution resolves them.
async fn follow_incident(inner: &Inner, facts: &Facts<'_>, id: EventId, at: DateTime<Utc>) -> Result<(), StoreError> {
    let Some(incident) = facts.incident() else { return Ok(()) };
    for rule in &inner.config.rules {
        let alert_id = format!("{}/incident:{incident}", rule.name);
        let Some(mut alert) = inner.store.get_alert(&alert_id).await? else { continue };
        if alert.resolved_at.is_some() {
            continue;
        }
        if facts.kind == EventType::IncidentResolved {
            resolve(inner, rule, alert, at).await?;
            continue;
        }
        let mut changed = false;
        if facts.severity() > alert.severity.parse().unwrap_or(Severity::Info) {
            alert.severity = severity_name(facts.severity());
            alert.title = facts.title();
            alert.data = facts_value(facts, id);
            changed = true;
        }
        // The first change that finds the incident acknowledged is the
        // acknowledgement itself; `by` is who made it.
        let acknowledged = facts.data.get("state").and_then(Value::as_str) == Some("acknowledged");
        if acknowledged && alert.acknowledged_at.is_none() {
            alert.acknowledged_at = Some(at);
            alert.acknowledged_by = facts.data.get("by").and_then(Value::as_str).map(str::to_owned);
            changed = true;
        }
        if changed {
            inner.store.update_alert(&alert).await?;
        }
    }
    Ok(())
}

/// Marks the alert resolved and tells every channel that heard of it.
async fn resolve(inner: &Inner, rule: &Rule, mut alert: AlertRecord, at: DateTime<Utc>) -> Result<(), StoreError> {
    alert.resolved_at = Some(at.max(alert.opened_at));
    inner.store.update_alert(&alert).await?;
    if !rule.resolved {
        return Ok(());
    }
    let query = NotificationQuery { alert_id: Some(alert.id.clone()), limit: 1000, ..NotificationQuery::default() };
    let told: BTreeSet<String> = inner
        .store
        .list_notifications(&query)
        .await?
        .into_iter()
        .filter(|n| n.kind != "resolved")
        .map(|n| n.channel)
        .collect();
    let now = Utc::now();
    let batch = told.iter().map(|c| notification(inner, rule, &alert, "resolved", "resolved", c, now)).collect();
    inner.enqueue(batch).await?;
    Ok(())
}

/// One notification of `alert` for `channel`; `step` names it in the key.
fn notification(
    inner: &Inner,
    rule: &Rule,
    alert: &AlertRecord,
    kind: &str,
    step: &str,
    channel: &str,
    now: DateTime<Utc>,
) -> NotificationRecord {
    let mut body = alert.data.clone();
    body["rule"] = json!(rule.name);
    body["alert_id"] = json!(alert.id);
    body["severity"] = json!(alert.severity);
    body["opened_at"] = json!(alert.opened_at.to_rfc3339());
    if let Some(at) = alert.resolved_at.filter(|_| kind == "resolved") {
        body["resolved_at"] = json!(at.to_rfc3339());
    }
    if let Some(url) = &inner.config.dashboard_url {
        let base = url.trim_end_matches('/');
        body["dashboard_url"] = json!(base);
        body["link"] = json!(match (alert.subject.strip_prefix("incident:"), alert.machine_id) {
            (Some(incident), _) => format!("{base}/ui/incidents/{incident}"),
            (None, Some(m)) => format!("{base}/ui/machines/{m}"),
            (None, None) => format!("{base}/ui/anomalies"),
        });
    }
    NotificationRecord {
        id: Uuid::new_v4(),
        key: format!("{}:{step}:{channel}", alert.id),
        channel: channel.to_owned(),
        kind: kind.to_owned(),
        rule: Some(rule.name.clone()),
        alert_id: Some(alert.id.clone()),
        event_id: alert.data.get("event_id").and_then(Value::as_str).map(str::to_owned),
        title: alert.title.clone(),
        body,
        status: DeliveryStatus::Pending,
        attempts: 0,
        created_at: now,
        next_attempt_at: rule.send_time(now, inner.offset),
        delivered_at: None,
        last_error: None,
    }
}

pub(crate) async fn escalate(inner: Arc<Inner>, stop: CancellationToken) {
    // Keys stored by this process: a tick does not store a step twice.
    let mut done: HashSet<String> = HashSet::new();
    while pause(TICK, &stop).await {
        if let Err(e) = tick(&inner, &mut done).await {
            inner.status().last_error = Some(e.to_string());
            tracing::warn!(error = %e, "notifier: open alerts not looked at");
        }
    }
}

async fn tick(inner: &Inner, done: &mut HashSet<String>) -> Result<(), StoreError> {
    let now = Utc::now();
    for mut alert in inner.store.list_alerts(true, OPEN_ALERTS).await? {
        let Some(rule) = inner.config.rules.iter().find(|r| r.name == alert.rule) else { continue };
        if alert.acknowledged_at.is_none()
            && let Some(anomaly) = alert.anomaly_id
            && let Some(a) = inner.store.get_anomaly(anomaly).await?
            && a.acknowledged_at.is_some()
        {
            alert.acknowledged_at = a.acknowledged_at;
            alert.acknowledged_by = a.acknowledged_by.clone();
            inner.store.update_alert(&alert).await?;
        }
        if alert.acknowledged_at.is_some() {
            continue;
        }
        let open_for = (now - alert.opened_at).to_std().unwrap_or_default();
        let mut told: Vec<&String> = rule.channels.iter().collect();
        let mut batch = Vec::new();
        for (i, step) in rule.escalate.iter().enumerate() {
            if open_for < step.after {
                break;
            }
            for c in &step.channels {
                if !told.contains(&c) {
                    told.push(c);
                    batch.push(notification(inner, rule, &alert, "escalation", &format!("escalate{}", i + 1), c, now));
                }
            }
        }
        if let Some(every) = rule.remind_every {
            let n = (open_for.as_secs_f64() / every.as_secs_f64()).floor() as u64;
            if n >= 1 {
                for c in &told {
                    batch.push(notification(inner, rule, &alert, "reminder", &format!("remind{n}"), c, now));
                }
            }
        }
        batch.retain(|n| !done.contains(&n.key));
        if batch.is_empty() {
            continue;
        }
        let keys: Vec<String> = batch.iter().map(|n| n.key.clone()).collect();
        inner.enqueue(batch).await?;
        // Bounded: forgetting only costs a no-op insert next tick.
        if done.len() > 100_000 {
            done.clear();
        }
        done.extend(keys);
    }
    Ok(())
}
